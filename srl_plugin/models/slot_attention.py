"""Slot attention corrector with the official quirks (docs/METHODS.md §1.7, §4.2)."""
from __future__ import annotations

import torch
from torch import nn

from srl_plugin.models.mlp import NormedMLP


class SlotAttention(nn.Module):
    """Iterative slot attention over one frame of features.

    Quirks kept from the original code: the GRU hidden state is the LayerNorm-ed slot, the returned
    masks are the last iteration's softmax over slots taken before the ``eps``, and (for SRL) the
    per-slot softmax over patches is averaged over the iterations and returned as ``redundancy_attn``.

    Args:
        slot_dim: slot and feature width ``D``.
        use_mlp: add the residual ``LN -> Linear(D, 4D) -> ReLU -> Linear(4D, D)`` after the GRU.
        eps: added to the attention before the weighted mean over inputs.
    """

    def __init__(self, slot_dim: int, use_mlp: bool = True, eps: float = 1e-8) -> None:
        super().__init__()
        self.slot_dim = slot_dim
        self.eps = eps
        self.scale = slot_dim**-0.5
        self.norm_inputs = nn.LayerNorm(slot_dim)
        self.norm_slots = nn.LayerNorm(slot_dim)
        self.to_q = nn.Linear(slot_dim, slot_dim, bias=False)
        self.to_k = nn.Linear(slot_dim, slot_dim, bias=False)
        self.to_v = nn.Linear(slot_dim, slot_dim, bias=False)
        self.gru = nn.GRUCell(slot_dim, slot_dim)
        self.mlp = NormedMLP(slot_dim, 4 * slot_dim, slot_dim) if use_mlp else None

    def forward(self, slots: torch.Tensor, features: torch.Tensor, num_iterations: int) -> dict[str, torch.Tensor]:
        """Refine ``slots`` (B, K, D) against ``features`` (B, N, D).

        Returns a dict with ``slots`` (B, K, D), ``masks`` (B, K, N) (last-iteration softmax over
        slots), ``logits`` (B, K, N) (last-iteration scaled ``q k^T``, before that softmax; SSync) and
        ``redundancy_attn`` (B, K, N) (softmax over patches, mean over iterations).
        """
        if num_iterations < 1:
            raise ValueError(f"num_iterations must be >= 1, got {num_iterations}")
        if slots.shape[-1] != self.slot_dim or features.shape[-1] != self.slot_dim:
            raise ValueError(
                f"slot attention expects width {self.slot_dim}, got slots {tuple(slots.shape)} and "
                f"features {tuple(features.shape)}"
            )
        batch_size, num_slots, _ = slots.shape
        normed_features = self.norm_inputs(features)
        keys = self.to_k(normed_features)
        values = self.to_v(normed_features)
        masks = logits = slots.new_empty(0)
        attn_over_patches_sum = torch.zeros(
            batch_size, num_slots, features.shape[1], dtype=features.dtype, device=features.device
        )
        for _ in range(num_iterations):
            normed_slots = self.norm_slots(slots)
            logits = torch.einsum("bkd,bnd->bkn", self.to_q(normed_slots), keys) * self.scale
            masks = logits.softmax(dim=1)
            attn_over_patches_sum = attn_over_patches_sum + logits.softmax(dim=2)
            weights = masks + self.eps
            weights = weights / weights.sum(dim=-1, keepdim=True)
            updates = torch.einsum("bkn,bnd->bkd", weights, values)
            slots = self.gru(updates.reshape(-1, self.slot_dim), normed_slots.reshape(-1, self.slot_dim))
            slots = slots.reshape(batch_size, num_slots, self.slot_dim)
            if self.mlp is not None:
                slots = slots + self.mlp(slots)
        return {
            "slots": slots,
            "masks": masks,
            "logits": logits,
            "redundancy_attn": attn_over_patches_sum / num_iterations,
        }
