"""Feature reconstruction loss shared by SlotContrast, SRL and VideoSAUR on YT-VIS (docs/METHODS.md §2.3, §3.3, §4.3),
and SlotCurri's per-slot reconstruction error (docs/METHODS.md §11.2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from srl_plugin.losses._checks import check_prediction_and_target, check_tensor


def feature_reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements between the decoder output and the frozen features.

    Args:
        reconstruction: (B, T, N, D_f) decoder reconstruction.
        target: (B, T, N, D_f) frozen backbone features; detached here (the target is never trained).

    Returns:
        0-dim tensor.
    """
    check_prediction_and_target(reconstruction, target, "(B, T, N, D_f)")
    return F.mse_loss(reconstruction, target.detach())


def per_slot_reconstruction_error(
    reconstruction: torch.Tensor, target: torch.Tensor, decoder_masks: torch.Tensor
) -> torch.Tensor:
    """Decoder-mask-weighted squared error of each slot (SlotCurri's split signal, docs/METHODS.md §11.2 item 2).

    ``e_k = mean over b, t, n of masks[b, t, k, n] * mean_c (reconstruction - target)[b, t, n, c]^2`` (averaged over
    all positions, not normalised by the mask mass). No gradient.

    Args:
        reconstruction: (B, T, N, D_f) decoder reconstruction.
        target: (B, T, N, D_f) frozen backbone features.
        decoder_masks: (B, T, K, N) decoder masks (softmax over slots).

    Returns:
        (K,) tensor.
    """
    check_prediction_and_target(reconstruction, target, "(B, T, N, D_f)")
    check_tensor(decoder_masks, "decoder_masks", "(B, T, K, N)")
    if decoder_masks.shape[:2] + decoder_masks.shape[3:] != reconstruction.shape[:3]:
        raise ValueError(
            f"decoder_masks {tuple(decoder_masks.shape)} (B, T, K, N) do not fit reconstruction "
            f"{tuple(reconstruction.shape)} (B, T, N, D_f)"
        )
    with torch.no_grad():
        per_patch = F.mse_loss(reconstruction, target, reduction="none").mean(-1, keepdim=True)
        return (per_patch * decoder_masks.transpose(2, 3)).flatten(1, 2).mean(dim=(0, 1))
