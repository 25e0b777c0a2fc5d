"""SRL's slot-redundancy warm-up regulariser ``Slot_Redundancy_Loss`` (docs/METHODS.md §4.5, §6.3 item 13)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from srl_plugin.losses._checks import at_least_float32, check_same_leading, check_tensor


def _redundant_slots(slots: torch.Tensor, score: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy choice of redundant slots per video: (B, min(k, K-1)) slot indices.

    Repeatedly takes the most similar pair ``i < j`` of not-yet-banned slots (cosine similarity of the last
    frame; ties go to the first pair in row-major order) and bans the less specialised one (lower ``score``;
    ``i`` on ties). Only the chosen slot is banned, so its partner stays eligible.

    Args:
        slots: (B, K, D) last-frame slots (no gradient needed).
        score: (B, K) mean-over-time KL of each slot's patch attention to uniform.
    """
    batch, num_slots, _ = slots.shape
    z = F.normalize(slots, dim=-1)
    similarity = torch.matmul(z, z.transpose(-1, -2))
    upper = torch.ones(num_slots, num_slots, dtype=torch.bool, device=slots.device).triu(diagonal=1)
    banned = torch.zeros(batch, num_slots, dtype=torch.bool, device=slots.device)
    rows = torch.arange(batch, device=slots.device)
    chosen = []
    for _ in range(min(k, num_slots - 1)):
        eligible = upper & ~banned[:, :, None] & ~banned[:, None, :]
        pair = similarity.masked_fill(~eligible, float("-inf")).flatten(1).argmax(dim=1)
        first, second = pair // num_slots, pair % num_slots
        redundant = torch.where(score[rows, first] <= score[rows, second], first, second)
        banned[rows, redundant] = True
        chosen.append(redundant)
    return torch.stack(chosen, dim=1)


def slot_redundancy_loss(attn: torch.Tensor, slots: torch.Tensor, k: int) -> torch.Tensor:
    """Pushes the patch attention of redundant slots towards uniform (docs/METHODS.md §4.5).

    ``KL[b,t,k] = sum_n R[b,t,k,n] (log(R[b,t,k,n] + 1e-8) + log N)``; the ``min(k, K-1)`` slots chosen by the
    greedy pair selection on the last frame (see :func:`_redundant_slots`) contribute the mean of their KL
    over all frames and videos. Gradient flows through ``attn`` only; ``slots`` only select.

    Args:
        attn: (B, T, K, N) per-slot softmax over patches averaged over the iterations (``redundancy_attn``).
        slots: (B, T, K, D) corrected slots (detached here).
        k: number of redundant slots to regularise per video (``floor(K/2)`` in the official configs).

    Returns:
        0-dim tensor.
    """
    check_tensor(attn, "attn", "(B, T, K, N)")
    check_tensor(slots, "slots", "(B, T, K, D)")
    check_same_leading(attn, "attn", slots, "slots", 3)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int (number of redundant slots), got {k!r}")
    if attn.shape[2] < 2:
        raise ValueError(f"attn needs at least 2 slots to find redundant pairs, got K={attn.shape[2]}")
    num_patches = attn.shape[-1]
    attn = at_least_float32(attn)  # 1e-8 underflows in float16
    kl = (attn * (torch.log(attn + 1e-8) + math.log(num_patches))).sum(-1)  # (B, T, K)
    with torch.no_grad():
        chosen = _redundant_slots(slots[:, -1].detach(), kl.detach().mean(dim=1), k)
    index = chosen[:, None, :].expand(-1, kl.shape[1], -1)
    return kl.gather(2, index).mean()
