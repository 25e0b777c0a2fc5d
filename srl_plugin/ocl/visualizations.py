"""Visualisations for OCL runs: ``routed.srl_plugin.ocl.visualizations.InputVideo`` (needs OCL when built)."""
from __future__ import annotations

from typing import Any

import torch

from srl_plugin.training.visualization import denormalize


class InputVideo:
    """OCL's ``Video`` visualisation of the denormalised input frames; nothing for feature-only batches.

    Routed: ``video_path: input.video``. Batches of cached backbone features (``features: cached``) carry no
    frames, so the visualisation is skipped for them instead of failing the training step.
    """

    def __init__(self, n_instances: int = 8, n_row: int = 8, fps: int = 10) -> None:
        from ocl.visualizations import Video

        self.video = Video(n_instances=n_instances, n_row=n_row, denormalization=denormalize, fps=fps)

    def __call__(self, video: torch.Tensor | None = None) -> Any:
        """``video`` (B, T, 3, H, W) ImageNet-normalised -> ``ocl.visualization_types.Video``, or None."""
        return None if video is None else self.video(video)
