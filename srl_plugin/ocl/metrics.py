"""FG-ARI / mBO for OCL, scored from soft masks: ``routed.srl_plugin.ocl.metrics.<VideoARI|...>``.

Routed: ``soft_masks_path: <model>.eval_masks`` (B, T, K, N) and ``true_masks_path: <model>.eval_true_masks``
(B, T, C, H, W) (``input.masks`` cut like the soft masks, see :class:`srl_plugin.ocl.modules.MethodModel`).
The soft masks are upsampled to the ground truth and arg-maxed with
:func:`srl_plugin.metrics.hard_masks_from_soft` (docs/METHODS.md §1.10), then scored as in ``srl-eval`` (§1.11).
"""
from __future__ import annotations

import torch

from srl_plugin import metrics


class _FromSoftMasks:
    def update(self, soft_masks: torch.Tensor, true_masks: torch.Tensor) -> None:
        """``soft_masks`` (B, T, K, N), ``true_masks`` (B, T, C, H, W) one-hot."""
        if not isinstance(true_masks, torch.Tensor) or true_masks.dim() != 5:
            shape = tuple(true_masks.shape) if isinstance(true_masks, torch.Tensor) else type(true_masks).__name__
            raise ValueError(f"true_masks must be (B, T, C, H, W) one-hot, got {shape}")
        hard = metrics.hard_masks_from_soft(soft_masks, tuple(true_masks.shape[-2:]))
        super().update(hard, true_masks)  # type: ignore[misc]


class VideoARI(_FromSoftMasks, metrics.VideoARI):
    """Video FG-ARI from soft masks."""


class ImageARI(_FromSoftMasks, metrics.ImageARI):
    """Per-frame FG-ARI from soft masks."""


class VideoMBO(_FromSoftMasks, metrics.VideoMBO):
    """Video mBO from soft masks."""


class ImageMBO(_FromSoftMasks, metrics.ImageMBO):
    """Per-frame mBO from soft masks."""
