"""Multi-head attention with the official attention-scale quirk (docs/METHODS.md §1.8)."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F


def attention_logit_scale(head_dim: int, attention_scale_quirk: bool) -> float:
    """Factor applied to ``q . k``: ``sqrt(head_dim)`` with the quirk, ``1/sqrt(head_dim)`` without.

    The original code divides the queries by ``head_dim**-0.5`` instead of multiplying, so its logits
    are ``head_dim`` times sharper than standard attention. Keep the quirk to reproduce official
    checkpoints; switch it off for the textbook scale.
    """
    return head_dim**0.5 if attention_scale_quirk else head_dim**-0.5


def _xavier_init_blocks(linear: nn.Linear, num_blocks: int) -> None:
    """Xavier-uniform on each of ``num_blocks`` equal row blocks of ``linear.weight``; zero bias."""
    for block in linear.weight.data.chunk(num_blocks, dim=0):
        nn.init.xavier_uniform_(block)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class MultiHeadAttention(nn.Module):
    """Multi-head attention of ``queries`` (B, Q, D) over ``memory`` (B, M, D) -> (B, Q, D).

    ``self_attention=True`` uses one fused ``qkv`` projection (queries = memory = the input);
    otherwise separate ``q`` and fused ``kv`` projections (cross-attention). Projections have biases,
    initialised Xavier-uniform per q/k/v block with zero bias, as is the output projection.
    """

    def __init__(
        self, dim: int, num_heads: int, self_attention: bool = True, attention_scale_quirk: bool = True
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.self_attention = self_attention
        self.logit_scale = attention_logit_scale(dim // num_heads, attention_scale_quirk)
        if self_attention:
            self.qkv = nn.Linear(dim, 3 * dim)
            _xavier_init_blocks(self.qkv, 3)
        else:
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(dim, 2 * dim)
            _xavier_init_blocks(self.q, 1)
            _xavier_init_blocks(self.kv, 2)
        self.out_proj = nn.Linear(dim, dim)
        _xavier_init_blocks(self.out_proj, 1)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        """``queries`` (B, Q, D), ``memory`` (B, M, D) (only for cross-attention) -> (B, Q, D)."""
        if self.self_attention:
            if memory is not None:
                raise ValueError("a self-attention module takes no memory; build it with self_attention=False")
            q, k, v = rearrange(self.qkv(queries), "b n (three h c) -> three b h n c", three=3, h=self.num_heads)
        else:
            if memory is None:
                raise ValueError("cross-attention needs a memory tensor (B, M, D)")
            q = rearrange(self.q(queries), "b n (h c) -> b h n c", h=self.num_heads)
            k, v = rearrange(self.kv(memory), "b m (two h c) -> two b h m c", two=2, h=self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.logit_scale)  # fused kernel, same math
        return self.out_proj(rearrange(out, "b h n c -> b n (h c)"))
