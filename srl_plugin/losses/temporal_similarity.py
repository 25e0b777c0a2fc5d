"""VideoSAUR's temporal feature-similarity target and loss (docs/METHODS.md §2.3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from srl_plugin.losses._checks import at_least_float32, check_positive, check_tensor


def _check_time_shift(time_shift: int, frames: int) -> None:
    if isinstance(time_shift, bool) or not isinstance(time_shift, int) or not 1 <= time_shift < frames:
        raise ValueError(f"time_shift must be an int with 1 <= time_shift < T={frames}, got {time_shift!r}")


def temporal_similarity_target(
    keys: torch.Tensor, temperature: float, threshold: float = 0.0, time_shift: int = 1
) -> torch.Tensor:
    """Distribution of each patch over the patches ``time_shift`` frames later (no gradient).

    ``A_t = normalize(keys_t) normalize(keys_{t+shift})^T``; entries below ``threshold`` are excluded and
    ``P_t = softmax(A_t / temperature)`` over the later frame's patches; a row with every entry excluded
    becomes uniform.

    Args:
        keys: (B, T, N, F) last-block keys of the frozen backbone.
        temperature: 0.075 (MOVi), 0.25 (YT-VIS DINO), 0.15 (YT-VIS DINOv2).
        threshold: similarity threshold (0.0 in every official config).
        time_shift: frame offset of the target (1).

    Returns:
        (B, T - time_shift, N, N) probabilities; the last axis sums to 1.
    """
    check_tensor(keys, "keys", "(B, T, N, F)")
    check_positive(temperature, "temperature")
    _check_time_shift(time_shift, keys.shape[1])
    with torch.no_grad():
        z = F.normalize(at_least_float32(keys.detach()), dim=-1)
        similarity = torch.matmul(z[:, :-time_shift], z[:, time_shift:].transpose(-1, -2))
        excluded = similarity < threshold
        logits = (similarity / temperature).masked_fill(excluded, float("-inf"))
        logits = logits.masked_fill(excluded.all(dim=-1, keepdim=True), 0.0)
        return logits.softmax(dim=-1)


def temporal_similarity_loss(
    pred_logits: torch.Tensor, keys: torch.Tensor, temperature: float, threshold: float = 0.0, time_shift: int = 1
) -> torch.Tensor:
    """Soft-label cross-entropy between decoded affinity logits and :func:`temporal_similarity_target`.

    ``L = mean over (b, t < T - shift, n) of -sum_n' P_t[n, n'] log softmax(pred_logits[b, t, n])[n']``;
    the last ``time_shift`` frames of ``pred_logits`` have no target and are dropped.

    Args:
        pred_logits: (B, T, N, N) decoder channels read as logits over the later frame's N patches.
        keys: (B, T, N, F) frozen last-block keys. temperature, threshold, time_shift: as for the target.

    Returns:
        0-dim tensor.
    """
    check_tensor(pred_logits, "pred_logits", "(B, T, N, N)")
    check_tensor(keys, "keys", "(B, T, N, F)")
    batch, frames, patches = keys.shape[:3]
    if tuple(pred_logits.shape) != (batch, frames, patches, patches):
        raise ValueError(
            f"pred_logits must be (B, T, N, N) = {(batch, frames, patches, patches)} to match keys "
            f"{tuple(keys.shape)}, got {tuple(pred_logits.shape)}"
        )
    log_prob = at_least_float32(pred_logits[:, : frames - time_shift]).log_softmax(dim=-1)
    target = temporal_similarity_target(keys, temperature, threshold, time_shift).to(log_prob.dtype)
    return -(target * log_prob).sum(-1).mean()
