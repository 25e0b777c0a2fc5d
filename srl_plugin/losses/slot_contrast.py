"""Slot-slot contrastive losses: SlotContrast's InfoNCE (docs/METHODS.md §3.3) and SRL's SupCon variant (§4.4).

Negatives come from the local batch only (no cross-process gather), as in the official DDP runs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from srl_plugin.losses._checks import at_least_float32, check_positive, check_tensor


def _tracks(slots: torch.Tensor, batch_contrast: bool) -> torch.Tensor:
    """Normalised slots arranged as (G, T, S, D) contrast groups.

    With ``batch_contrast`` all videos form one group of ``S = B*K`` tracks indexed ``b*K + k``;
    otherwise each video is its own group of ``S = K`` tracks.
    """
    check_tensor(slots, "slots", "(B, T, K, D)")
    if slots.shape[1] < 2:
        raise ValueError(f"slots must have at least 2 frames (B, T>=2, K, D), got {tuple(slots.shape)}")
    z = F.normalize(at_least_float32(slots), dim=-1)
    if batch_contrast:
        batch, frames, num_slots, dim = z.shape
        z = z.transpose(0, 1).reshape(1, frames, batch * num_slots, dim)
    return z


def slotcontrast_loss(slots: torch.Tensor, temperature: float = 0.1, batch_contrast: bool = True) -> torch.Tensor:
    """SlotContrast's slot-slot loss (docs/METHODS.md §3.3).

    For each transition t -> t+1 and each anchor track j at frame t+1, a softmax over the tracks of frame t
    (pooled over the batch when ``batch_contrast``) with the same track j as the positive;
    ``L = mean over t and j of -log softmax_i(z_{t,i} . z_{t+1,j} / temperature)[j]``.

    Args:
        slots: (B, T, K, D) corrected slots, T >= 2.
        temperature: softmax temperature (0.1 in the official configs).
        batch_contrast: pool the slots of all videos into one set of B*K tracks per frame.

    Returns:
        0-dim tensor.
    """
    check_positive(temperature, "temperature")
    z = _tracks(slots, batch_contrast)
    logits = at_least_float32(torch.matmul(z[:, :-1], z[:, 1:].transpose(-1, -2))) / temperature  # [g, t, i, j]
    log_prob = logits.log_softmax(dim=-2)
    return -log_prob.diagonal(dim1=-2, dim2=-1).mean()


def srl_slot_contrastive_loss(
    slots: torch.Tensor,
    temperature: float = 0.1,
    batch_contrast: bool = True,
    base_temperature: float = 0.07,
) -> torch.Tensor:
    """SRL's supervised-contrastive slot loss (docs/METHODS.md §4.4, §6.3 item 10).

    Every (track, frame) node is an anchor. Its positives are the same track at frames t-1 and t+1 (those
    that exist); its denominator runs over every node of the other tracks at all frames plus the positives.
    ``L_a = -(temperature / base_temperature) * mean_p [z_a.z_p/temperature - log sum_c exp(z_a.z_c/temperature)]``,
    averaged over all anchors.

    Args:
        slots: (B, T, K, D) corrected slots, T >= 2.
        temperature: 0.1 in the official configs.
        batch_contrast: pool the slots of all videos into B*K tracks (otherwise one group per video).
        base_temperature: the SupCon scale ``τ_b`` (code default 0.07, §6.1 item 5).

    Returns:
        0-dim tensor.
    """
    check_positive(temperature, "temperature")
    check_positive(base_temperature, "base_temperature")
    z = _tracks(slots, batch_contrast)
    groups, frames, tracks, dim = z.shape
    nodes = z.reshape(groups, frames * tracks, dim)  # node index = t * S + s
    logits = at_least_float32(torch.matmul(nodes, nodes.transpose(-1, -2))) / temperature

    frame = torch.arange(frames, device=z.device).repeat_interleave(tracks)
    track = torch.arange(tracks, device=z.device).repeat(frames)
    same_track = track[:, None] == track[None, :]
    positive = same_track & ((frame[:, None] - frame[None, :]).abs() == 1)
    candidate = ~same_track | positive

    log_norm = logits.masked_fill(~candidate, float("-inf")).logsumexp(dim=-1, keepdim=True)
    positive_f = positive.to(logits.dtype)
    mean_log_prob = ((logits - log_norm) * positive_f).sum(-1) / positive_f.sum(-1)
    return -(temperature / base_temperature) * mean_log_prob.mean()
