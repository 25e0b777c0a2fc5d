"""FG-ARI and mBO as torchmetrics ``Metric``s, per video or per frame (docs/METHODS.md §1.11).

Each metric accumulates ``(sum of per-sample scores, number of samples)`` in float64; both states are
summed across processes, so the result is the mean over all samples seen by every rank. State names are
unique per class, so a ``MetricCollection`` never merges two of these metrics into one compute group.
"""
from __future__ import annotations

import torch
from torchmetrics import Metric

from srl_plugin.metrics.scores import adjusted_rand_index, best_overlap, frame_statistics


class _SampleMean(Metric):
    """Mean of a per-sample score over videos (``per_frame=False``) or over all frames pooled."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    per_frame: bool
    state_prefix: str

    def __init__(self, ignore_background: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ignore_background = ignore_background
        self._sum_name = f"{self.state_prefix}_score_sum"
        self._count_name = f"{self.state_prefix}_samples"
        self.add_state(self._sum_name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state(self._count_name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    @property
    def num_samples(self) -> int:
        """Samples (videos or frames) counted so far on this process."""
        return int(getattr(self, self._count_name).item())

    def update(self, pred_masks: torch.Tensor, true_masks: torch.Tensor) -> None:
        """Adds the samples of one batch.

        Args:
            pred_masks: (B, T, K, H, W) one-hot predicted masks (see ``hard_masks_from_soft``).
            true_masks: (B, T, C, H, W) one-hot ground truth (channel 0 = background when ``ignore_background``).
        """
        stats = frame_statistics(pred_masks, true_masks, self.ignore_background)
        if not self.per_frame:
            stats = {name: value.sum(dim=1, keepdim=True) for name, value in stats.items()}
        scores, valid = self._scores(stats)
        score_sum, count = getattr(self, self._sum_name), getattr(self, self._count_name)
        setattr(self, self._sum_name, score_sum + scores[valid].sum().to(score_sum.device))
        setattr(self, self._count_name, count + valid.sum().to(count.device, torch.float64))

    def _scores(self, stats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T') per-sample scores and a (B, T') bool mask of the samples that count."""
        raise NotImplementedError

    def compute(self) -> torch.Tensor:
        """Mean score over the counted samples (float64; NaN when no sample counted)."""
        return getattr(self, self._sum_name) / getattr(self, self._count_name)


class _ARI(_SampleMean):
    def _scores(self, stats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        # Emptiness is judged before the background channel is removed (§1.11).
        return adjusted_rand_index(stats["table"]), stats["labelled"] > 0


class _MBO(_SampleMean):
    def _scores(self, stats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return best_overlap(stats["table"], stats["true_area"], stats["pred_area"])


class VideoARI(_ARI):
    """Adjusted Rand index per video over all ``T*H*W`` points, averaged over videos (FG-ARI with
    ``ignore_background``). Videos without any ground-truth label are skipped."""

    per_frame = False
    state_prefix = "video_ari"


class ImageARI(_ARI):
    """Adjusted Rand index per frame, averaged over all frames pooled across videos. With
    ``ignore_background`` a frame with only background scores 1 and counts (official behaviour)."""

    per_frame = True
    state_prefix = "image_ari"


class VideoMBO(_MBO):
    """Mean best overlap per video (space-time IoU), averaged over videos; videos without any
    foreground object are skipped."""

    per_frame = False
    state_prefix = "video_mbo"


class ImageMBO(_MBO):
    """Mean best overlap per frame, averaged over all frames pooled; frames without any foreground
    object are skipped."""

    per_frame = True
    state_prefix = "image_mbo"
