"""Recurrent corrector/predictor scan over the frames of a clip (docs/METHODS.md §1.8)."""
from __future__ import annotations

import torch
from torch import nn

from srl_plugin.models.predictor import TransformerPredictor
from srl_plugin.models.slot_attention import SlotAttention


class RecurrentProcessor(nn.Module):
    """Runs slot attention on each frame, initialised by the predictor applied to the previous frame.

    Frame 0 uses ``first_frame_iterations`` slot-attention iterations, later frames
    ``later_iterations``. With ``continuation=True`` (streaming: the initial slots are the previous
    window's predicted slots) frame 0 also uses ``later_iterations``.

    With ``cyclic_eval`` (SlotCurri, docs/METHODS.md §11.4) evaluation (``eval()`` mode) adds a backward sweep:
    starting from the last frame's predicted slots, frames ``T-2, ..., 0`` are corrected again
    (``later_iterations`` each) and predicted; the outputs of frames ``0..T-2`` come from that sweep, frame
    ``T-1`` from the forward sweep.
    """

    def __init__(
        self,
        corrector: SlotAttention,
        predictor: TransformerPredictor,
        first_frame_iterations: int = 3,
        later_iterations: int = 2,
        cyclic_eval: bool = False,
    ) -> None:
        super().__init__()
        self.corrector = corrector
        self.predictor = predictor
        self.first_frame_iterations = first_frame_iterations
        self.later_iterations = later_iterations
        self.cyclic_eval = cyclic_eval

    def forward(
        self, initial_slots: torch.Tensor, features: torch.Tensor, continuation: bool = False
    ) -> dict[str, torch.Tensor]:
        """``initial_slots`` (B, K, D), ``features`` (B, T, N, D).

        Returns ``slots`` and ``predicted_slots`` (B, T, K, D), ``grouping_masks``, ``grouping_logits``
        (last-iteration slot-attention logits) and ``redundancy_attn`` (B, T, K, N), plus OCL's names ``objects``
        (= ``slots``) and ``feature_attributions`` (= ``grouping_masks``); with a cyclic evaluation,
        ``predicted_slots[:, -1]`` is still the forward sweep's prediction for the frame after the clip.
        """
        if features.dim() != 4:
            raise ValueError(f"features must be (B, T, N, D), got shape {tuple(features.shape)}")
        if initial_slots.dim() != 3 or initial_slots.shape[0] != features.shape[0]:
            raise ValueError(
                f"initial slots must be (B, K, D) with B={features.shape[0]}, got {tuple(initial_slots.shape)}"
            )
        num_frames = features.shape[1]
        slots = initial_slots
        per_frame: list[dict[str, torch.Tensor]] = []
        for t in range(num_frames):
            first = t == 0 and not continuation
            iterations = self.first_frame_iterations if first else self.later_iterations
            per_frame.append(self._step(slots, features[:, t], iterations))
            slots = per_frame[-1]["predicted_slots"]
        if self.cyclic_eval and not self.training:
            for t in range(num_frames - 2, -1, -1):
                per_frame[t] = self._step(slots, features[:, t], self.later_iterations)
                slots = per_frame[t]["predicted_slots"]
        outputs = {name: torch.stack([frame[name] for frame in per_frame], dim=1) for name in per_frame[0]}
        outputs.update(objects=outputs["slots"], feature_attributions=outputs["grouping_masks"])
        return outputs

    def _step(self, slots: torch.Tensor, features: torch.Tensor, iterations: int) -> dict[str, torch.Tensor]:
        """One frame: slot attention from ``slots`` (B, K, D) on ``features`` (B, N, D), then the predictor."""
        corrected = self.corrector(slots, features, iterations)
        return {
            "slots": corrected["slots"],
            "predicted_slots": self.predictor(corrected["slots"]),
            "grouping_masks": corrected["masks"],
            "grouping_logits": corrected["logits"],
            "redundancy_attn": corrected["redundancy_attn"],
        }
