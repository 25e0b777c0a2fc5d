"""Hard evaluation masks from soft per-patch masks (docs/METHODS.md §1.10)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Upper bound on elements of one upsampled chunk (frames * K * H * W), to keep long videos cheap.
_CHUNK_ELEMENTS = 1 << 24


def slot_ids_from_soft(soft: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinearly upsamples soft masks on the square patch grid and takes the argmax over slots.

    Args:
        soft: (B, T, K, N) soft masks (the decoder masks), ``N`` a perfect square.
        size: output side ``H = W`` or ``(H, W)``.

    Returns:
        (B, T, H, W) int64 slot ids (``align_corners=False`` upsampling, first slot wins ties), computed in
        chunks of frames so that long videos at full resolution stay cheap.
    """
    if not isinstance(soft, torch.Tensor) or soft.dim() != 4 or not soft.is_floating_point():
        shape = tuple(soft.shape) if isinstance(soft, torch.Tensor) else type(soft).__name__
        raise ValueError(f"soft must be a floating tensor of shape (B, T, K, N), got {shape}")
    batch, frames, slots, patches = soft.shape
    side = math.isqrt(patches)
    if side * side != patches:
        raise ValueError(f"soft has N={patches} patches, which is not a perfect square (square patch grid expected)")
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    grid = soft.reshape(batch * frames, slots, side, side)
    chunk = max(1, _CHUNK_ELEMENTS // (slots * height * width))
    labels = torch.cat(
        [
            F.interpolate(part, size=(height, width), mode="bilinear", align_corners=False).argmax(dim=1)
            for part in grid.split(chunk)
        ]
    )
    return labels.reshape(batch, frames, height, width)


def hard_masks_from_soft(soft: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """One-hot encoding of :func:`slot_ids_from_soft`.

    Args:
        soft: (B, T, K, N) soft masks (the decoder masks), ``N`` a perfect square.
        size: output side ``H = W`` or ``(H, W)`` (the ground-truth resolution).

    Returns:
        (B, T, K, H, W) one-hot masks in ``soft``'s dtype.
    """
    labels = slot_ids_from_soft(soft, size)
    return F.one_hot(labels, soft.shape[2]).permute(0, 1, 4, 2, 3).to(soft.dtype)
