"""Parts that only the OCL front door needs, around the shared parts of ``configs/models/`` (docs/OCL.md).

- :class:`FrozenFeatureExtractor`: the method's frozen backbone (the one ``experiment.model.backbone`` describes)
  as OCL's first model part (``models.backbone``); it runs on ``input.video`` or passes cached features through
  (``experiment.features=cached``).
- :class:`CurriculumErrors`: SlotCurri's per-slot reconstruction errors, recorded into its conditioning part
  before each slot split (what ``SlotCurriModel.compute_losses`` does in ``srl-train``).
- :class:`EvalMasks`: what ``srl-eval`` scores, as a routed part: the decoder masks bilinearly upsampled to the
  ground truth and arg-maxed (docs/METHODS.md §1.10), next to the ground truth, for OCL's ``ARIMetric`` /
  ``AverageBestOverlapMetric`` and the plugin's per-frame metrics.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig
from torch import nn

from srl_plugin.losses import per_slot_reconstruction_error
from srl_plugin.metrics import hard_masks_from_soft
from srl_plugin.models import CurriculumLearnedInit
from srl_plugin.runtime import instantiate_backbone, root_cause


class FrozenFeatureExtractor(nn.Module):
    """The method's frozen backbone, whatever the experiment's backbone node describes (the timm ViT
    :class:`srl_plugin.models.FrozenViTBackbone`, :class:`srl_plugin.models.PatchPixelBackbone`, ...), built by
    :func:`srl_plugin.runtime.instantiate_backbone`, with OCL's feature-extractor output fields.

    The backbone keeps its weights under ``model`` (the layout of the standalone model's ``backbone``, which the
    checkpoint format relies on); this part holds that same ``model`` module, so its state-dict keys are the
    standalone backbone's. It stays in eval mode whatever ``train()`` is asked (the backbone is frozen).

    Args:
        backbone: the backbone config node (``experiment.model.backbone``: ``_target_`` plus its keywords).

    Raises:
        FileNotFoundError: the pretrained weights are missing; the message names the ``ocl_train`` override.
    """

    def __init__(self, backbone: Mapping[str, Any] | DictConfig) -> None:
        super().__init__()
        try:
            built = instantiate_backbone(backbone)
        except InstantiationException as error:
            missing = root_cause(error)
            if not isinstance(missing, FileNotFoundError):
                raise
            raise FileNotFoundError(
                f"the backbone's weights were not found ({missing})\nInside OCL, pass the weights file to the experiment: ocl_train +experiment=<method>/<dataset> "
                "experiment.model.backbone.weights_path=/abs/path/to/weights.safetensors"
            ) from error
        if set(dict(built.named_children())) != {"model"} or any(built.parameters(recurse=False)) or any(
            built.buffers(recurse=False)
        ):
            raise TypeError(f"backbone {type(built).__name__} must hold all its weights and buffers in one submodule "
                            "`model` (the layout of srl-plugin's backbones, which checkpoints rely on)")
        self.model = built.model.eval().requires_grad_(False)
        self._encode = built.forward  # runs on the same `model` module
        self.model_name = built.model_name
        self.input_size = built.input_size
        self.feature_dim = built.feature_dim
        self.num_patches = built.num_patches

    def train(self, mode: bool = True) -> FrozenFeatureExtractor:
        """Keeps the backbone in eval mode whatever ``mode`` is (it is frozen)."""
        super().train(mode)
        self.model.eval()
        return self

    def forward(
        self,
        video: torch.Tensor | None = None,
        backbone_features: torch.Tensor | None = None,
        backbone_keys: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``video`` (B, T, 3, H, W) normalised frames, or cached ``backbone_features`` (B, T, N, D_f) (and
        ``backbone_keys``), which are passed through.

        Returns ``backbone_features`` (B, T, N, D_f) (also as OCL's ``features``) and, with keys,
        ``backbone_keys`` (B, T, N, D_f) (also as OCL's ``aux_features.keys``).
        """
        if backbone_features is None:
            if video is None:
                raise ValueError("FrozenFeatureExtractor needs input.video or input.backbone_features in the batch")
            encoded = self._encode(video)
        else:
            encoded = {"backbone_features": backbone_features}
            if backbone_keys is not None:
                encoded["backbone_keys"] = backbone_keys
        encoded = {name: value.detach() for name, value in encoded.items()}
        outputs: dict[str, Any] = {**encoded, "features": encoded["backbone_features"]}
        if "backbone_keys" in encoded:
            outputs["aux_features"] = {"keys": encoded["backbone_keys"]}
        return outputs


class CurriculumErrors(nn.Module):
    """Records SlotCurri's per-slot reconstruction errors at the step before each curriculum split.

    Routed: ``conditioning_path: model.models.initializer`` (the curriculum part itself),
    ``reconstruction_path``, ``target_path``, ``masks_path`` and ``global_step_path: model.global_step``.
    """

    def forward(
        self,
        conditioning: CurriculumLearnedInit,
        reconstruction: torch.Tensor,
        target: torch.Tensor,
        masks: torch.Tensor,
        global_step: int = 0,
    ) -> dict[str, torch.Tensor]:
        """``reconstruction`` (B, T, N, D_f), ``target`` (B, T, N, D_f) frozen features, ``masks`` (B, T, k, N)
        decoder masks of the k active slots. In training mode at a step before a split, stores the (k,)
        decoder-mask weighted errors in ``conditioning.slot_errors``; returns nothing."""
        if self.training and conditioning.records_errors_at(int(global_step)):
            conditioning.record_errors(per_slot_reconstruction_error(reconstruction, target.detach(), masks))
        return {}


class EvalMasks(nn.Module):
    """The masks ``srl-eval`` scores, for routed metrics.

    Args:
        num_patches: ``N`` of the decoder masks, a square ``h x w = N`` patch grid.
    """

    def __init__(self, num_patches: int) -> None:
        super().__init__()
        side = math.isqrt(int(num_patches))
        if side * side != num_patches:
            raise ValueError(f"num_patches must be a perfect square (square patch grid), got {num_patches}")
        self.patch_grid = (side, side)

    def forward(
        self,
        decoder_masks: torch.Tensor,
        true_masks: torch.Tensor | None = None,
        chunk_index: torch.Tensor | list[int] | None = None,
        padding: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``decoder_masks`` (B, T, K, N) soft masks; ``true_masks`` (B, T, C, H, W) one-hot ground truth
        (validation batches); ``chunk_index`` (B,) index of each row's chunk in its video (independently scored
        chunks, ``evaluation.independent_chunks``); ``padding`` (B,) rows added to even out ranks (dropped).

        Returns ``mask_grid`` (B, T, K, h, w) (for visualisation) and, with ``true_masks``, ``hard_masks``
        (B', T, K, H, W) one-hot predictions, ``true_masks`` (B', T, C, H, W), ``videos`` (0-dim, videos scored:
        rows with chunk index 0) and ``chunks`` (0-dim, rows scored), ``B'`` the rows that are not padding.
        """
        outputs = {"mask_grid": decoder_masks.unflatten(-1, self.patch_grid)}
        if true_masks is None:
            return outputs
        keep = torch.ones(true_masks.shape[0], dtype=torch.bool, device=true_masks.device)
        if padding is not None:
            keep = ~torch.as_tensor(padding, dtype=torch.bool, device=true_masks.device)
        rows = keep.sum().to(true_masks.dtype)
        videos = rows
        if chunk_index is not None:
            first = torch.as_tensor(chunk_index, device=true_masks.device) == 0
            videos = (first & keep).sum().to(true_masks.dtype)
        outputs.update(
            hard_masks=hard_masks_from_soft(decoder_masks[keep], tuple(true_masks.shape[-2:])),
            true_masks=true_masks[keep],
            videos=videos,
            chunks=rows,
        )
        return outputs
