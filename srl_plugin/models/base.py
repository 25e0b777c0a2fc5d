"""What every method model shares around its frozen backbone, and the weighted loss total."""
from __future__ import annotations

import torch
from torch import nn


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


def total_loss(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """Adds ``total = sum_i weights[i] * losses[i]`` to the per-loss dict (dtype of the losses)."""
    if not losses:
        raise ValueError("no loss is active at this step; check the loss weights and windows")
    total = sum(weights[name] * value for name, value in losses.items())
    return {"total": total, **losses}
