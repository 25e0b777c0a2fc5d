"""Patch decoders: the MLP broadcast decoder (SlotContrast, SRL) and SlotMixer (VideoSAUR), docs/METHODS.md §1.9."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from srl_plugin.models.attention import MultiHeadAttention
from srl_plugin.models.broadcast_mixing import BroadcastMixing, hidden_and_mixing
from srl_plugin.models.mlp import build_relu_mlp


class MLPBroadcastDecoder(nn.Module):
    """Broadcasts every slot to every patch position, decodes features plus an alpha logit, mixes by softmax.

    Computes the official decoder (docs/METHODS.md §1.9) in an exactly equivalent, cheaper order:

    - the first linear acts on slots and positions separately, ``W (s_k + p_n) + b = (W s_k + b) + W p_n``,
      so it runs on ``K + N`` rows instead of ``K * N``;
    - the alpha masks sum to one over slots, so the feature part of the last linear commutes with the mixing,
      ``sum_k a_k (W h_k + b) = W (sum_k a_k h_k) + b``: per slot only the alpha row runs, and the feature rows
      run once per patch on the mixed hidden state;
    - the hidden layers, alpha row and mixing run on chunks of whole frames as one autograd function
      (:class:`srl_plugin.models.broadcast_mixing.BroadcastMixing`): the first hidden activation is recomputed
      in the backward pass instead of kept, the backward pass works in place in chunk-sized buffers, and
      without gradients no hidden activation outlives its chunk.

    The parameters (``mlp`` as the official ``Linear -> ReLU -> ... -> Linear`` stack, ``pos_emb``) and the
    outputs are those of the plain formulation; results differ only by floating-point reassociation. Under
    autocast the hidden layers run in the autocast dtype, as autocast would run them.

    Args:
        slot_dim: ``D``.
        output_dim: decoded feature width (``D_f``); the MLP outputs ``output_dim + 1`` channels.
        num_patches: ``N``, size of the learned positional embedding.
        hidden_dims: widths of the hidden layers (``(1024, 1024, 1024)`` officially; at least one).
    """

    def __init__(
        self, slot_dim: int, output_dim: int, num_patches: int, hidden_dims: Sequence[int] = (1024, 1024, 1024)
    ) -> None:
        super().__init__()
        if not hidden_dims:
            raise ValueError("MLPBroadcastDecoder needs at least one hidden layer: give hidden_dims, e.g. [1024]")
        self.output_dim = output_dim
        self.pos_emb = nn.Parameter(torch.randn(num_patches, slot_dim) * slot_dim**-0.5)
        self.mlp = build_relu_mlp([slot_dim, *hidden_dims, output_dim + 1])

    def forward(self, slots: torch.Tensor) -> dict[str, torch.Tensor]:
        """``slots`` (B, T, K, D) -> ``reconstruction`` (B, T, N, output_dim), ``masks`` (B, T, K, N) and
        ``alpha_logits`` (B, T, K, N) (the logits ``masks`` is the softmax over slots of; SSync)."""
        first, *hidden_layers, last = [layer for layer in self.mlp if isinstance(layer, nn.Linear)]
        per_slot = F.linear(slots, first.weight, first.bias)
        per_position = F.linear(self.pos_emb, first.weight)
        dtype = per_slot.dtype  # the autocast dtype under autocast
        alpha = (last.weight[self.output_dim :].to(dtype), last.bias[self.output_dim :].to(dtype))
        weights_and_biases = [parameter.to(dtype) for layer in hidden_layers for parameter in (layer.weight, layer.bias)]
        inputs = (per_slot, per_position, *alpha, *weights_and_biases)
        if torch.is_grad_enabled() and any(tensor.requires_grad for tensor in inputs):
            alpha_logits, masks, mixed = BroadcastMixing.apply(*inputs)
        else:
            alpha_logits, masks, mixed, _ = hidden_and_mixing(
                per_slot, per_position, weights_and_biases[0::2], weights_and_biases[1::2], *alpha, keep_hidden=False
            )
        reconstruction = F.linear(mixed, last.weight[: self.output_dim], last.bias[: self.output_dim])
        return {"reconstruction": reconstruction, "masks": masks, "alpha_logits": alpha_logits}


class AllocatorBlock(nn.Module):
    """Pre-LN block: positions cross-attend to the (normalised) slots, then a ReLU FFN of width 4D."""

    def __init__(self, dim: int, num_heads: int, attention_scale_quirk: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, self_attention=False, attention_scale_quirk=attention_scale_quirk)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, positions: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """``positions`` (B, N, D), ``memory`` (B, K, D) -> (B, N, D)."""
        positions = positions + self.attn(self.norm1(positions), memory)
        return positions + self.fc2(torch.relu(self.fc1(self.norm2(positions))))


class SlotMixerDecoder(nn.Module):
    """VideoSAUR's SlotMixer decoder: allocator transformer, slot mixing attention, MLP renderer.

    Args:
        slot_dim: ``D``.
        output_dim: channels per patch (``N`` on MOVi, ``D_f + N`` on YT-VIS).
        num_patches: ``N``.
        allocator_blocks: 2 on MOVi, 3 on YT-VIS.
        renderer_dims: widths of the ReLU renderer layers before the output linear
            (``(1024,) * 4`` on MOVi, ``(1024,) * 3`` on YT-VIS).
        num_heads: allocator heads.
        attention_scale_quirk: keep the official ``sqrt(d_head)`` allocator logits.
    """

    def __init__(
        self,
        slot_dim: int,
        output_dim: int,
        num_patches: int,
        allocator_blocks: int = 2,
        renderer_dims: Sequence[int] = (1024, 1024, 1024, 1024),
        num_heads: int = 4,
        attention_scale_quirk: bool = True,
    ) -> None:
        super().__init__()
        self.slot_dim = slot_dim
        self.pos_emb = nn.Parameter(torch.randn(num_patches, slot_dim) * slot_dim**-0.5)
        self.norm_memory = nn.LayerNorm(slot_dim)
        self.allocator = nn.ModuleList(
            AllocatorBlock(slot_dim, num_heads, attention_scale_quirk) for _ in range(allocator_blocks)
        )
        self.norm_query = nn.LayerNorm(slot_dim)
        self.norm_key = nn.LayerNorm(slot_dim)
        self.to_q = nn.Linear(slot_dim, slot_dim, bias=False)
        self.to_k = nn.Linear(slot_dim, slot_dim, bias=False)
        nn.init.xavier_uniform_(self.to_q.weight)
        nn.init.xavier_uniform_(self.to_k.weight)
        self.renderer = build_relu_mlp([slot_dim, *renderer_dims], final_activation=True)
        self.out = nn.Linear(renderer_dims[-1], output_dim)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, slots: torch.Tensor) -> dict[str, torch.Tensor]:
        """``slots`` (B, T, K, D) -> ``reconstruction`` (B, T, N, output_dim), ``masks`` (B, T, K, N)."""
        batch_size = slots.shape[0]
        flat_slots = rearrange(slots, "b t k d -> (b t) k d")
        memory = self.norm_memory(flat_slots)
        positions = self.pos_emb.unsqueeze(0).expand(flat_slots.shape[0], -1, -1)
        for block in self.allocator:
            positions = block(positions, memory)
        logits = torch.einsum(
            "bnd,bkd->bnk", self.to_q(self.norm_query(positions)), self.to_k(self.norm_key(flat_slots))
        )
        mixing = (logits * self.slot_dim**-0.5).softmax(dim=-1)
        mixed = torch.einsum("bnk,bkd->bnd", mixing, flat_slots)
        reconstruction = self.out(self.renderer(mixed + self.pos_emb))
        return {
            "reconstruction": rearrange(reconstruction, "(b t) n c -> b t n c", b=batch_size),
            "masks": rearrange(mixing, "(b t) n k -> b t k n", b=batch_size),
        }
