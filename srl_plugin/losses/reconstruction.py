"""Feature reconstruction loss shared by SlotContrast, SRL and VideoSAUR on YT-VIS (METHODS.md §2.3, §3.3, §4.3)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from srl_plugin.losses._checks import check_tensor


def feature_reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements between the decoder output and the frozen features.

    Args:
        reconstruction: (B, T, N, D_f) decoder reconstruction.
        target: (B, T, N, D_f) frozen backbone features; detached here (the target is never trained).

    Returns:
        0-dim tensor.
    """
    check_tensor(reconstruction, "reconstruction", "(B, T, N, D_f)")
    check_tensor(target, "target", "(B, T, N, D_f)")
    if reconstruction.shape != target.shape:
        raise ValueError(
            f"reconstruction {tuple(reconstruction.shape)} and target {tuple(target.shape)} must have the same shape"
        )
    return F.mse_loss(reconstruction, target.detach())
