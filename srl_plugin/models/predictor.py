"""Transformer predictor that maps corrected slots to the next frame's initial slots (docs/METHODS.md §1.8)."""
from __future__ import annotations

import torch
from torch import nn

from srl_plugin.models.attention import MultiHeadAttention


class PredictorBlock(nn.Module):
    """Pre-LN transformer block: ``s + MHSA(LN1(s))`` then ``+ FFN(LN2(.))`` with a ReLU FFN of width 4D."""

    def __init__(self, dim: int, num_heads: int, attention_scale_quirk: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, self_attention=True, attention_scale_quirk=attention_scale_quirk)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        """(B, K, D) -> (B, K, D)."""
        slots = slots + self.attn(self.norm1(slots))
        return slots + self.fc2(torch.relu(self.fc1(self.norm2(slots))))


class TransformerPredictor(nn.Module):
    """A stack of ``num_blocks`` pre-LN self-attention blocks over the set of slots (1 block, 4 heads officially).

    ``attention_scale_quirk=True`` (default) keeps the official ``q.k * sqrt(d_head)`` logits needed
    for checkpoint parity; ``False`` uses the standard ``1/sqrt(d_head)``.
    """

    def __init__(
        self, slot_dim: int, num_heads: int = 4, num_blocks: int = 1, attention_scale_quirk: bool = True
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            PredictorBlock(slot_dim, num_heads, attention_scale_quirk) for _ in range(num_blocks)
        )

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        """(B, K, D) corrected slots -> (B, K, D) predicted slots for the next frame."""
        for block in self.blocks:
            slots = block(slots)
        return slots
