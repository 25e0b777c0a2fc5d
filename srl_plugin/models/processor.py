"""Recurrent corrector/predictor scan over the frames of a clip (METHODS.md §1.8)."""
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
    """

    def __init__(
        self,
        corrector: SlotAttention,
        predictor: TransformerPredictor,
        first_frame_iterations: int = 3,
        later_iterations: int = 2,
    ) -> None:
        super().__init__()
        self.corrector = corrector
        self.predictor = predictor
        self.first_frame_iterations = first_frame_iterations
        self.later_iterations = later_iterations

    def forward(
        self, initial_slots: torch.Tensor, features: torch.Tensor, continuation: bool = False
    ) -> dict[str, torch.Tensor]:
        """``initial_slots`` (B, K, D), ``features`` (B, T, N, D).

        Returns ``slots`` and ``predicted_slots`` (B, T, K, D), ``grouping_masks`` and
        ``redundancy_attn`` (B, T, K, N).
        """
        if features.dim() != 4:
            raise ValueError(f"features must be (B, T, N, D), got shape {tuple(features.shape)}")
        if initial_slots.dim() != 3 or initial_slots.shape[0] != features.shape[0]:
            raise ValueError(
                f"initial slots must be (B, K, D) with B={features.shape[0]}, got {tuple(initial_slots.shape)}"
            )
        slots = initial_slots
        per_frame: dict[str, list[torch.Tensor]] = {
            "slots": [], "predicted_slots": [], "grouping_masks": [], "redundancy_attn": []
        }
        for t in range(features.shape[1]):
            first = t == 0 and not continuation
            iterations = self.first_frame_iterations if first else self.later_iterations
            corrected = self.corrector(slots, features[:, t], iterations)
            slots = self.predictor(corrected["slots"])
            per_frame["slots"].append(corrected["slots"])
            per_frame["predicted_slots"].append(slots)
            per_frame["grouping_masks"].append(corrected["masks"])
            per_frame["redundancy_attn"].append(corrected["redundancy_attn"])
        return {name: torch.stack(values, dim=1) for name, values in per_frame.items()}
