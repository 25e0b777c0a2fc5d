"""The shared steps of the per-video transforms of docs/METHODS.md §1.2-1.3, as plain functions so that the data
module and the feature cache produce exactly the same inputs; what differs per dataset layout is its family's
(:mod:`srl_plugin.data.families`: ``prepare_video``, ``prepare_train_clip``, ``prepare_masks``).

Frames arrive as uint8 numpy `(T, H, W, 3)`; outputs are float32 torch tensors `(T, 3, S, S)`, ImageNet-
normalised. Resizing is bicubic without antialiasing (the originals used torchvision `Resize` on tensors with
the pre-0.15 default `antialias=False`), then clamped to [0, 1] before normalisation. Masks are resized with
`nearest-exact` (on the id maps; identical to resizing the one-hot channels).

Randomness comes from an explicit `random.Random` passed by the caller.
"""
from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_float_frames(video: np.ndarray) -> torch.Tensor:
    """uint8 `(T, H, W, 3)` -> float32 `(T, 3, H, W)` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).float().div_(255.0)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of `(T, 3, H, W)` in [0, 1] to `size` = (height, width), clamped to [0, 1]."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    resized = F.interpolate(frames, size=size, mode="bicubic", align_corners=False, antialias=False)
    return resized.clamp_(0.0, 1.0)


def normalize(frames: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of `(T, 3, H, W)` in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=frames.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=frames.dtype).view(1, 3, 1, 1)
    return (frames - mean) / std


def chunk_starts(num_frames: int, chunk_size: int) -> list[int]:
    """Offsets of the non-overlapping chunk-aligned clips 0, c, 2c, ... (`floor(T / c)` of them, §1.2)."""
    if num_frames < chunk_size:
        raise ValueError(f"video has {num_frames} frames, fewer than chunk_size={chunk_size}")
    return list(range(0, num_frames - chunk_size + 1, chunk_size))


def sample_chunk_start(num_frames: int, chunk_size: int, rng: random.Random) -> int:
    """One chunk-aligned offset drawn uniformly (`sample_one_chunk_per_video`, §1.2)."""
    return rng.choice(chunk_starts(num_frames, chunk_size))


def take_chunk(video: np.ndarray, start: int, chunk_size: int) -> np.ndarray:
    """Frames `start .. start + chunk_size - 1` of `(T, ...)`."""
    return video[start : start + chunk_size]


def hflip(video: torch.Tensor) -> torch.Tensor:
    """Horizontal flip of every frame of `(T, C, H, W)` (one decision for the whole clip)."""
    return torch.flip(video, dims=[-1])


def maybe_hflip(video: torch.Tensor, prob: float, rng: random.Random) -> torch.Tensor:
    """`hflip` with probability `prob` (one draw per clip)."""
    return hflip(video) if rng.random() < prob else video


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """Output (height, width) of a resize whose short side becomes `size` (torchvision `Resize(int)` rule)."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def center_crop_box(height: int, width: int, side: int) -> tuple[int, int]:
    """(top, left) of a central `side` x `side` crop (torchvision `CenterCrop` rounding)."""
    return int(round((height - side) / 2.0)), int(round((width - side) / 2.0))


def resize_nearest(masks: torch.Tensor, size: int) -> torch.Tensor:
    """nearest-exact resize of integer maps `(T, C, H, W)` to `size` x `size`."""
    if tuple(masks.shape[-2:]) == (size, size):
        return masks
    return F.interpolate(masks, size=(size, size), mode="nearest-exact")
