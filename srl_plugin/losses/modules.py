"""Losses as routed parts: one ``nn.Module`` per loss term, reading its tensors by path (docs/ARCHITECTURE.md).

Each module carries its weight and, optionally, the step window in which it is active (docs/METHODS.md §4.8,
evaluated on the optimizer step). :meth:`WeightedLoss.loss` is the unweighted 0-dim value (what a method
model's ``compute_losses`` reports); ``forward(..., global_step)`` returns ``weight * loss`` and a zero outside
the window, the contract of an OCL loss (OCL sums its losses). The tensor inputs are the arguments of
``forward``, so a config routes them with ``<argument>_path`` keys. In eval mode ``forward`` returns NaN
("not computed"): like ``srl-eval``, OCL's validation computes no losses, since whole validation videos may not
suit them (e.g. SRL's frame groups must divide the clip length).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from srl_plugin.losses.consistency import decoder_consistency_loss, encoder_consistency_loss
from srl_plugin.losses.reconstruction import feature_reconstruction_loss
from srl_plugin.losses.redundancy import slot_redundancy_loss
from srl_plugin.losses.schedule import LossWindow
from srl_plugin.losses.slot_contrast import slotcontrast_loss, srl_slot_contrastive_loss
from srl_plugin.losses.ssim import patches_to_volume, ssim_loss
from srl_plugin.losses.temporal_similarity import temporal_similarity_loss


def as_loss_window(spec: LossWindow | Mapping[str, Any] | None) -> LossWindow | None:
    """A ``LossWindow`` from itself or from a mapping of its constructor arguments (configs); ``None`` stays."""
    if spec is None or isinstance(spec, LossWindow):
        return spec
    return LossWindow(**dict(spec))


class WeightedLoss(nn.Module):
    """Base of the loss parts: ``weight`` and an optional step ``window`` (always active without one).

    Subclasses implement :meth:`loss` (unweighted) and a ``forward`` whose tensor arguments name the inputs.
    """

    def __init__(self, weight: float, window: LossWindow | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.weight = float(weight)
        self.window = as_loss_window(window)

    def is_active(self, global_step: int) -> bool:
        """Whether the term counts at optimizer step ``global_step``: non-zero weight, inside the window."""
        return self.weight != 0 and (self.window is None or self.window.is_active(global_step))

    def loss(self, **inputs: torch.Tensor) -> torch.Tensor:
        """The unweighted 0-dim loss."""
        raise NotImplementedError

    def weighted(self, global_step: int, **inputs: torch.Tensor) -> torch.Tensor:
        """``weight * loss(**inputs)``, or a zero (no graph) when inactive at ``global_step``; NaN in eval mode."""
        if not self.training:
            return next(iter(inputs.values())).new_full((), float("nan"))
        if not self.is_active(int(global_step)):
            return next(iter(inputs.values())).new_zeros(())
        return self.weight * self.loss(**inputs)


class FeatureReconstructionLoss(WeightedLoss):
    """MSE between decoded features and the frozen backbone features (docs/METHODS.md §2.3, §3.3, §4.3).

    ``reconstruction`` (B, T, N, C) with ``C >= D_f``: channels ``[first_channel, first_channel + D_f)`` are
    compared with ``target`` (B, T, N, D_f) (VideoSAUR on YT-VIS decodes features before its similarity logits).
    """

    def __init__(self, weight: float, first_channel: int = 0, window: Any = None) -> None:
        super().__init__(weight, window)
        self.first_channel = first_channel

    def loss(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        channels = slice(self.first_channel, self.first_channel + target.shape[-1])
        return feature_reconstruction_loss(reconstruction[..., channels], target.detach())

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        return self.weighted(global_step, reconstruction=reconstruction, target=target)


class SlotSlotContrastLoss(WeightedLoss):
    """SlotContrast's slot-slot InfoNCE between consecutive frames (docs/METHODS.md §3.3); ``slots`` (B, T, K, D)."""

    def __init__(self, weight: float, temperature: float, batch_contrast: bool, window: Any = None) -> None:
        super().__init__(weight, window)
        self.temperature = temperature
        self.batch_contrast = batch_contrast

    def loss(self, slots: torch.Tensor) -> torch.Tensor:
        return slotcontrast_loss(slots, temperature=self.temperature, batch_contrast=self.batch_contrast)

    def forward(self, slots: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        return self.weighted(global_step, slots=slots)


class SRLSlotContrastLoss(SlotSlotContrastLoss):
    """SRL's supervised-contrastive slot loss (docs/METHODS.md §4.4); ``slots`` (B, T, K, D)."""

    def loss(self, slots: torch.Tensor) -> torch.Tensor:
        return srl_slot_contrastive_loss(slots, temperature=self.temperature, batch_contrast=self.batch_contrast)


class SlotRedundancyLoss(WeightedLoss):
    """SRL's REG loss (docs/METHODS.md §4.5): ``attention`` (B, T, K, N) iteration-averaged per-slot softmax over
    patches, ``slots`` (B, T, K, D) (detached; they only select the ``k`` redundant slots)."""

    def __init__(self, weight: float, k: int, window: Any = None) -> None:
        super().__init__(weight, window)
        self.k = k

    def loss(self, attention: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        return slot_redundancy_loss(attention, slots.detach(), self.k)

    def forward(self, attention: torch.Tensor, slots: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        return self.weighted(global_step, attention=attention, slots=slots)


class DecoderConsistencyLoss(WeightedLoss):
    """SRL's DEC loss (docs/METHODS.md §4.6): ``decoded`` (B, T, N, D) projected reconstruction, ``target``
    (B, T, N, D) projected frozen features (detached), ``grouping_masks`` (B, T, K, N) (detached)."""

    def __init__(
        self, weight: float, temperature: float, base_temperature: float, group_frames: int, window: Any = None
    ) -> None:
        super().__init__(weight, window)
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.group_frames = group_frames

    def loss(self, decoded: torch.Tensor, target: torch.Tensor, grouping_masks: torch.Tensor) -> torch.Tensor:
        return decoder_consistency_loss(
            decoded, target.detach(), grouping_masks.detach(), temperature=self.temperature,
            base_temperature=self.base_temperature, group_frames=self.group_frames,
        )

    def forward(
        self, decoded: torch.Tensor, target: torch.Tensor, grouping_masks: torch.Tensor, global_step: int = 0
    ) -> torch.Tensor:
        return self.weighted(global_step, decoded=decoded, target=target, grouping_masks=grouping_masks)


class EncoderConsistencyLoss(WeightedLoss):
    """SRL's ENC loss (docs/METHODS.md §4.7): ``encoded`` (B, T, N, D) projected encoder features, ``frozen``
    (B, T, N, D_f) backbone features (detached), ``decoder_masks`` (B, T, K, N) (detached)."""

    def __init__(
        self, weight: float, temperature: float, base_temperature: float, topk: int, group_frames: int,
        window: Any = None,
    ) -> None:
        super().__init__(weight, window)
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.topk = topk
        self.group_frames = group_frames

    def loss(self, encoded: torch.Tensor, frozen: torch.Tensor, decoder_masks: torch.Tensor) -> torch.Tensor:
        return encoder_consistency_loss(
            encoded, frozen.detach(), decoder_masks.detach(), temperature=self.temperature,
            base_temperature=self.base_temperature, topk=self.topk, group_frames=self.group_frames,
        )

    def forward(
        self, encoded: torch.Tensor, frozen: torch.Tensor, decoder_masks: torch.Tensor, global_step: int = 0
    ) -> torch.Tensor:
        return self.weighted(global_step, encoded=encoded, frozen=frozen, decoder_masks=decoder_masks)


class TemporalSimilarityLoss(WeightedLoss):
    """VideoSAUR's next-frame similarity loss (docs/METHODS.md §2.3): channels ``[first_channel, first_channel + N)``
    of ``reconstruction`` (B, T, N, C) are logits over the next frame's patches, the target comes from the
    backbone ``keys`` (B, T, N, D_f) (detached)."""

    def __init__(
        self, weight: float, temperature: float, threshold: float = 0.0, first_channel: int = 0, window: Any = None
    ) -> None:
        super().__init__(weight, window)
        self.temperature = temperature
        self.threshold = threshold
        self.first_channel = first_channel

    def loss(self, reconstruction: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        logits = reconstruction[..., self.first_channel : self.first_channel + keys.shape[2]]
        return temporal_similarity_loss(logits, keys.detach(), temperature=self.temperature, threshold=self.threshold)

    def forward(self, reconstruction: torch.Tensor, keys: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        return self.weighted(global_step, reconstruction=reconstruction, keys=keys)


class SSIMLoss(WeightedLoss):
    """SlotCurri's structure loss (docs/METHODS.md §11.3): :func:`ssim_loss` between ``reconstruction`` and
    ``target`` (B, T, N, D_f) patch tokens, laid out as (B, D_f, T, sqrt(N), sqrt(N)) volumes; the target is
    detached."""

    def loss(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ssim_loss(patches_to_volume(reconstruction), patches_to_volume(target.detach()))

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor, global_step: int = 0) -> torch.Tensor:
        return self.weighted(global_step, reconstruction=reconstruction, target=target)
