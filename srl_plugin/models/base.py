"""Shared skeleton of the three method models: frozen backbone -> MLP -> recurrent slot attention -> decoder."""
from __future__ import annotations

import math

import torch
from torch import nn

from srl_plugin.models.backbone import FrozenViTBackbone
from srl_plugin.models.mlp import NormedMLP
from srl_plugin.models.processor import RecurrentProcessor


class FrozenBackboneModel(nn.Module):
    """What every method model shares around its frozen backbone: ``forward(video)`` runs the backbone and then
    ``forward_features``, the shape check of precomputed features, and ``eval_masks``.

    Subclasses set ``backbone`` (or ``None``), ``num_patches`` and ``feature_dim`` and implement
    ``forward_features``.
    """

    backbone: nn.Module | None
    num_patches: int
    feature_dim: int

    def forward(
        self, video: torch.Tensor, initial_slots: torch.Tensor | None = None, global_step: int | None = None
    ) -> dict[str, torch.Tensor]:
        """``video`` (B, T, 3, H, W) -> the outputs of ``forward_features``."""
        if self.backbone is None:
            raise RuntimeError(
                f"{type(self).__name__} was built without a backbone, so it only runs on precomputed "
                "features: call forward_features(backbone_features) or build it with a FrozenViTBackbone"
            )
        encoded = self.backbone(video)
        return self.forward_features(
            encoded["backbone_features"], encoded.get("backbone_keys"), initial_slots=initial_slots,
            global_step=global_step,
        )

    def check_features(self, backbone_features: torch.Tensor) -> None:
        """Raises ``ValueError`` unless ``backbone_features`` is (B, T, N, D_f) for this model's N and D_f."""
        if backbone_features.dim() != 4 or tuple(backbone_features.shape[2:]) != (self.num_patches, self.feature_dim):
            raise ValueError(
                f"backbone_features must be (B, T, {self.num_patches}, {self.feature_dim}), "
                f"got {tuple(backbone_features.shape)}"
            )

    def eval_masks(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The soft masks the metrics score: the decoder masks (B, T, K, N)."""
        return outputs["decoder_masks"]


class VideoSlotModel(FrozenBackboneModel):
    """Common ``forward`` / ``forward_features`` / ``eval_masks`` of docs/ARCHITECTURE.md.

    Subclasses build the parts and implement ``compute_losses``.

    Attributes:
        num_slots: ``K``. patch_grid: ``(h, w)`` with ``h * w = N``. input_size: frame side in pixels
        (``None`` when there is no backbone and none was given).
    """

    def __init__(
        self,
        backbone: FrozenViTBackbone | None,
        encoder_mlp: NormedMLP,
        initializer: nn.Module,
        processor: RecurrentProcessor,
        decoder: nn.Module,
        num_slots: int,
        feature_dim: int,
        num_patches: int,
        input_size: int | None,
    ) -> None:
        super().__init__()
        side = math.isqrt(num_patches)
        if side * side != num_patches:
            raise ValueError(f"num_patches must be a perfect square (square patch grid), got {num_patches}")
        if backbone is not None:
            if backbone.num_patches != num_patches or backbone.feature_dim != feature_dim:
                raise ValueError(
                    f"backbone gives {backbone.num_patches} patches of width {backbone.feature_dim} but the "
                    f"model was configured with num_patches={num_patches}, feature_dim={feature_dim}"
                )
            if input_size is not None and input_size != backbone.input_size:
                raise ValueError(f"input_size {input_size} differs from the backbone's {backbone.input_size}")
            input_size = backbone.input_size
        self.backbone = backbone
        self.encoder_mlp = encoder_mlp
        self.initializer = initializer
        self.processor = processor
        self.decoder = decoder
        self.num_slots = num_slots
        self.feature_dim = feature_dim
        self.num_patches = num_patches
        self.patch_grid = (side, side)
        self.input_size = input_size

    def forward_features(
        self,
        backbone_features: torch.Tensor,
        backbone_keys: torch.Tensor | None = None,
        initial_slots: torch.Tensor | None = None,
        global_step: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Runs everything after the frozen backbone.

        Args:
            backbone_features: (B, T, N, D_f) frozen last-block tokens.
            backbone_keys: (B, T, N, D_f) last-block keys (used by VideoSAUR only; passed through).
            initial_slots: (B, K, D) slots for frame 0 (streaming continuation) or ``None``.
            global_step: optimizer steps done; part of the common API (SlotCurri's composed model reads it),
                unused by these models.

        Returns a dict with ``backbone_features`` (detached), ``features`` (B, T, N, D), ``slots`` and
        ``predicted_slots`` (B, T, K, D), ``grouping_masks`` (B, T, K, N), ``decoder_masks`` (B, T, K, N),
        ``reconstruction`` (B, T, N, C_out), plus what :meth:`_extra_outputs` adds.
        """
        self.check_features(backbone_features)
        backbone_features = backbone_features.detach()
        features = self.encoder_mlp(backbone_features)
        continuation = initial_slots is not None
        if initial_slots is None:
            initial_slots = self.initializer(backbone_features.shape[0])
        processed = self.processor(initial_slots, features, continuation=continuation)
        decoded = self.decoder(processed["slots"])
        outputs = {
            "backbone_features": backbone_features,
            "features": features,
            "slots": processed["slots"],
            "predicted_slots": processed["predicted_slots"],
            "grouping_masks": processed["grouping_masks"],
            "decoder_masks": decoded["masks"],
            "reconstruction": decoded["reconstruction"],
        }
        if backbone_keys is not None:
            outputs["backbone_keys"] = backbone_keys.detach()
        outputs.update(self._extra_outputs(processed, decoded))
        return outputs

    def _extra_outputs(
        self, processed: dict[str, torch.Tensor], decoded: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Method-specific outputs taken from the processor and decoder results; none by default."""
        return {}


def total_loss(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """Adds ``total = sum_i weights[i] * losses[i]`` to the per-loss dict (dtype of the losses)."""
    if not losses:
        raise ValueError("no loss is active at this step; check the loss weights and windows")
    total = sum(weights[name] * value for name, value in losses.items())
    return {"total": total, **losses}
