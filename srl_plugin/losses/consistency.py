"""SRL's decoder-side (DEC) and encoder-side (ENC) consistency losses (docs/METHODS.md §4.6, §4.7, §6.3 items 11-12).

Both split every clip into groups of ``group_frames`` consecutive frames and contrast the ``L = g*N`` tokens
of a group with each other. Sums over label-defined (semi-)positive sets are computed from per-label
feature sums instead of dense ``L x L`` masks; only the log-normaliser (and ENC's frozen-feature top-k)
needs the dense ``L x L`` matrix.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from srl_plugin.losses._checks import (
    at_least_float32,
    check_group_frames,
    check_positive,
    check_same_leading,
    check_tensor,
)


def _group_tokens(tokens: torch.Tensor, group_frames: int) -> torch.Tensor:
    """(B, T, N, C) -> (B*T/g, g*N, C) with consecutive frames of one video in a group."""
    batch, frames, patches, channels = tokens.shape
    return tokens.reshape(batch * frames // group_frames, group_frames * patches, channels)


def _group_labels(masks: torch.Tensor, group_frames: int) -> torch.Tensor:
    """(B, T, K, N) soft masks -> (B*T/g, g*N) hard labels (argmax over slots)."""
    labels = masks.argmax(dim=2)  # (B, T, N)
    batch, frames, patches = labels.shape
    return labels.reshape(batch * frames // group_frames, group_frames * patches)


def _same_label_sums(labels: torch.Tensor, values: torch.Tensor, num_labels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For every token i, the sum of ``values_j`` over tokens j with ``labels_j == labels_i`` (i included),
    and the number of such tokens.

    The per-label sums run outside autocast, so under fp16 mixed precision they keep ``values``' precision.

    Args:
        labels: (G, L) integer labels in ``[0, num_labels)``. values: (G, L, C).

    Returns:
        ((G, L, C) sums, (G, L) counts in ``values.dtype``).
    """
    one_hot = F.one_hot(labels, num_labels)  # (G, L, K)
    with torch.autocast(device_type=values.device.type, enabled=False):
        per_label = torch.matmul(one_hot.transpose(1, 2).to(values.dtype), values)  # (G, K, C)
    sums = per_label.gather(1, labels.unsqueeze(-1).expand(-1, -1, values.shape[-1]))
    counts = one_hot.sum(dim=1).gather(1, labels)
    return sums, counts.to(values.dtype)


def decoder_consistency_loss(
    decoded: torch.Tensor,
    target: torch.Tensor,
    grouping_masks: torch.Tensor,
    temperature: float = 0.1,
    base_temperature: float = 0.07,
    group_frames: int = 4,
) -> torch.Tensor:
    """DEC ("deblurring") loss of docs/METHODS.md §4.6.

    With ``u = normalize(decoded)``, ``w = normalize(target)``, ``l_ij = u_i . w_j / temperature`` and
    ``lp_ij = l_ij - log sum_{j'} exp l_ij'`` over all tokens of the group, each token's loss is
    ``-(temperature/base_temperature) * 0.5 * (mean_{j: c_j = c_i} lp_ij + lp_ii)``, with ``c`` the argmax of
    ``grouping_masks`` over slots (the anchor itself is one of its semi-positives). Mean over tokens.

    Args:
        decoded: (B, T, N, C) ``projector(reconstruction)`` (trainable branch).
        target: (B, T, N, C) ``projector(frozen features)``; pass it detached (it is not detached here).
        grouping_masks: (B, T, K, N) slot-attention masks; only their argmax is used (no gradient).
        temperature: 0.1 in the official configs. base_temperature: 0.07 (code default).
        group_frames: frames per contrast group; must divide T.

    Returns:
        0-dim tensor.
    """
    check_tensor(decoded, "decoded", "(B, T, N, C)")
    check_tensor(target, "target", "(B, T, N, C)")
    check_tensor(grouping_masks, "grouping_masks", "(B, T, K, N)")
    if decoded.shape != target.shape:
        raise ValueError(f"decoded {tuple(decoded.shape)} and target {tuple(target.shape)} must have the same shape (B, T, N, C)")
    check_same_leading(decoded, "decoded", grouping_masks, "grouping_masks", 2)
    if grouping_masks.shape[3] != decoded.shape[2]:
        raise ValueError(
            f"grouping_masks must be (B, T, K, N) with N={decoded.shape[2]} patches, got {tuple(grouping_masks.shape)}"
        )
    check_group_frames(decoded.shape[1], group_frames, "decoded")
    check_positive(temperature, "temperature")
    check_positive(base_temperature, "base_temperature")

    anchors = F.normalize(at_least_float32(_group_tokens(decoded, group_frames)), dim=-1)  # (G, L, C)
    candidates = F.normalize(at_least_float32(_group_tokens(target, group_frames)), dim=-1)
    labels = _group_labels(grouping_masks.detach(), group_frames)

    logits = at_least_float32(torch.matmul(anchors, candidates.transpose(-1, -2))) / temperature
    log_norm = logits.logsumexp(dim=-1)  # (G, L)
    semi_sum, semi_count = _same_label_sums(labels, candidates, grouping_masks.shape[2])
    semi_mean = (anchors * semi_sum).sum(-1) / (temperature * semi_count) - log_norm
    positive = (anchors * candidates).sum(-1) / temperature - log_norm
    return -(temperature / base_temperature) * 0.5 * (semi_mean + positive).mean()


def encoder_consistency_loss(
    encoded: torch.Tensor,
    frozen: torch.Tensor,
    decoder_masks: torch.Tensor,
    temperature: float = 0.1,
    base_temperature: float = 0.07,
    topk: int = 8,
    group_frames: int = 4,
) -> torch.Tensor:
    """ENC ("denoising") loss of docs/METHODS.md §4.7.

    Within a group, with ``v = normalize(encoded)``, ``f = normalize(frozen)``, ``s_ij = f_i . f_j``:
    positives ``P_i = {j != i : s_ij >= (topk*g)-th largest s_i.}`` (ties kept), semi-positives
    ``Q_i = {j != i : d_j = d_i}`` with ``d`` the argmax of ``decoder_masks``, ``l_ij = v_i . v_j / temperature``,
    ``lp_ij = l_ij - log sum_{j' != i} exp l_ij'``, and per token
    ``-(temperature/base_temperature) * 0.5 * (mean_P lp + mean_Q lp)``, where the mean over an empty set is 0.
    Mean over tokens. (docs/METHODS.md writes the means as ``sum / (|set| + 1e-8)``; the official reference values
    agree to float64 round-off only without that epsilon, so a plain mean is used.)

    Args:
        encoded: (B, T, N, C) ``projector2(features)`` (trainable branch).
        frozen: (B, T, N, F) frozen backbone features (detached here).
        decoder_masks: (B, T, K, N) decoder alpha masks; only their argmax is used (no gradient).
        temperature: 0.1. base_temperature: 0.07. topk: neighbours per frame; ``topk * group_frames``
            must not exceed the ``group_frames * N`` tokens of a group.
        group_frames: frames per contrast group; must divide T.

    Returns:
        0-dim tensor.
    """
    check_tensor(encoded, "encoded", "(B, T, N, C)")
    check_tensor(frozen, "frozen", "(B, T, N, F)")
    check_tensor(decoder_masks, "decoder_masks", "(B, T, K, N)")
    check_same_leading(encoded, "encoded", frozen, "frozen", 3)
    check_same_leading(encoded, "encoded", decoder_masks, "decoder_masks", 2)
    if decoder_masks.shape[3] != encoded.shape[2]:
        raise ValueError(
            f"decoder_masks must be (B, T, K, N) with N={encoded.shape[2]} patches, got {tuple(decoder_masks.shape)}"
        )
    check_group_frames(encoded.shape[1], group_frames, "encoded")
    check_positive(temperature, "temperature")
    check_positive(base_temperature, "base_temperature")
    neighbours = topk * group_frames
    group_size = group_frames * encoded.shape[2]
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= neighbours <= group_size:
        raise ValueError(
            f"topk must be an int with 1 <= topk * group_frames <= group_frames * N = {group_size}, got topk={topk!r}"
        )

    tokens = F.normalize(at_least_float32(_group_tokens(encoded, group_frames)), dim=-1)  # (G, L, C)
    reference = F.normalize(at_least_float32(_group_tokens(frozen.detach(), group_frames)), dim=-1)
    labels = _group_labels(decoder_masks.detach(), group_frames)
    not_self = ~torch.eye(group_size, dtype=torch.bool, device=encoded.device)

    with torch.no_grad():
        similarity = torch.matmul(reference, reference.transpose(-1, -2))
        threshold = similarity.topk(neighbours, dim=-1).values[..., -1:]
        positive = (similarity >= threshold) & not_self

    logits = at_least_float32(torch.matmul(tokens, tokens.transpose(-1, -2))) / temperature
    log_norm = logits.masked_fill(~not_self, float("-inf")).logsumexp(dim=-1)  # (G, L)

    positive_count = positive.sum(-1).to(logits.dtype)
    positive_sum = logits.masked_fill(~positive, 0.0).sum(-1) - positive_count * log_norm  # saves a bool mask only
    semi_sum, semi_count = _same_label_sums(labels, tokens, decoder_masks.shape[2])
    semi_count = semi_count - 1  # the anchor itself is not a semi-positive
    semi_logits = (tokens * (semi_sum - tokens)).sum(-1) / temperature
    semi_total = semi_logits - semi_count * log_norm
    per_token = positive_sum / positive_count.clamp(min=1) + semi_total / semi_count.clamp(min=1)
    return -(temperature / base_temperature) * 0.5 * per_token.mean()
