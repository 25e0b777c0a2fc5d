"""SlotCurri's structure-aware loss: 3-D SSIM between min-max-normalised features (docs/METHODS.md §11.3)."""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from srl_plugin.losses._checks import check_prediction_and_target, check_tensor

SSIM_WINDOW_SIZE = 3
SSIM_WINDOW_SIGMA = 1.5
SSIM_CONSTANTS = (0.01, 0.03)
NORMALISATION_EPS = 1e-6


def gaussian_window(size: int = SSIM_WINDOW_SIZE, sigma: float = SSIM_WINDOW_SIGMA) -> torch.Tensor:
    """(size,) normalised 1-D Gaussian centred on the middle tap, computed in float32 like ``pytorch_msssim``
    (then cast to the input dtype by the caller)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the SSIM window size must be a positive odd number, got {size}")
    offsets = torch.arange(size, dtype=torch.float32) - size // 2
    weights = torch.exp(-offsets.square() / (2 * sigma**2))
    return weights / weights.sum()


def _blur(volume: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter of (B, C, T, H, W) along T, then H, then W; an axis shorter than the
    window is left unfiltered (with a warning), as ``pytorch_msssim`` does."""
    channels, size = volume.shape[1], window.numel()
    blurred = volume
    for axis in range(3):
        if volume.shape[2 + axis] < size:
            warnings.warn(
                f"SSIM: axis {('T', 'H', 'W')[axis]} of {tuple(volume.shape)} is shorter than the {size}-tap "
                "window and is not smoothed (as in pytorch_msssim)",
                stacklevel=3,
            )
            continue
        kernel_shape = [1, 1, 1, 1, 1]
        kernel_shape[2 + axis] = size
        kernel = window.reshape(kernel_shape).expand(channels, *kernel_shape[1:])
        blurred = F.conv3d(blurred, kernel, groups=channels)
    return blurred


def structural_similarity(first: torch.Tensor, second: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM over every element of the SSIM map of two (B, C, T, H, W) volumes (Gaussian window 3, σ 1.5,
    ``K = (0.01, 0.03)``, valid filtering); 0-dim."""
    window = gaussian_window().to(device=first.device, dtype=first.dtype)
    c1 = (SSIM_CONSTANTS[0] * data_range) ** 2
    c2 = (SSIM_CONSTANTS[1] * data_range) ** 2
    mean_first, mean_second = _blur(first, window), _blur(second, window)
    mean_first_sq, mean_second_sq, mean_product = mean_first.square(), mean_second.square(), mean_first * mean_second
    var_first = _blur(first * first, window) - mean_first_sq
    var_second = _blur(second * second, window) - mean_second_sq
    covariance = _blur(first * second, window) - mean_product
    contrast_structure = (2 * covariance + c2) / (var_first + var_second + c2)
    luminance = (2 * mean_product + c1) / (mean_first_sq + mean_second_sq + c1)
    per_channel = (luminance * contrast_structure).flatten(2).mean(-1)
    return per_channel.mean()


def ssim_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM`` after a joint per-video min-max normalisation of both volumes (SlotCurri's ``SSIMLoss``).

    Per video ``b``, ``lo`` / ``hi`` are the minimum / maximum over both tensors together (no gradient), and both
    become ``(x - lo) / (hi - lo + 1e-6)``; the target is detached, so the gradient reaches the reconstruction only.

    Args:
        reconstruction: (B, C, T, H, W) decoder output laid out as a volume (``C`` = feature channels).
        target: (B, C, T, H, W) frozen features in the same layout.

    Returns:
        0-dim tensor.
    """
    check_prediction_and_target(reconstruction, target, "(B, C, T, H, W)")
    if sum(size > 1 for size in reconstruction.shape[2:]) < 2:
        raise ValueError(
            f"SSIM needs at least two of T, H, W longer than 1, got {tuple(reconstruction.shape)}"
        )
    target = target.detach()
    batch = reconstruction.shape[0]
    both = torch.cat([target.reshape(batch, -1), reconstruction.detach().reshape(batch, -1)], dim=1)
    low = both.min(dim=1).values.view(batch, 1, 1, 1, 1)
    span = both.max(dim=1).values.view(batch, 1, 1, 1, 1) - low + NORMALISATION_EPS
    return 1.0 - structural_similarity((reconstruction - low) / span, (target - low) / span)


def patches_to_volume(tokens: torch.Tensor) -> torch.Tensor:
    """(B, T, N, C) patch tokens on a square grid -> (B, C, T, H, W) with ``H = W = sqrt(N)``."""
    check_tensor(tokens, "tokens", "(B, T, N, C)")
    side = math.isqrt(tokens.shape[2])
    if side * side != tokens.shape[2]:
        raise ValueError(f"the patch count N={tokens.shape[2]} is not a square grid")
    return tokens.unflatten(2, (side, side)).permute(0, 4, 1, 2, 3)

