"""Deterministic per-video transforms of docs/METHODS.md §1.2-1.3, as plain functions so that the data module and
the feature cache produce exactly the same inputs.

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


def prepare_video(video: np.ndarray, input_size: int, dataset_type: str = "movi") -> torch.Tensor:
    """Deterministic evaluation transform: uint8 `(T, H, W, 3)` -> float32 `(T, 3, S, S)`, S = `input_size`.

    MOVi: bicubic resize to S x S, clamp, normalise. YT-VIS: central square crop of side min(H, W), then the
    same (§1.3). No chunking, no flip.
    """
    frames = to_float_frames(video)
    if dataset_type == "ytvis":
        height, width = frames.shape[-2:]
        side = min(height, width)
        top, left = center_crop_box(height, width, side)
        frames = frames[..., top : top + side, left : left + side]
    return normalize(resize_frames(frames, (input_size, input_size)))


def prepare_ytvis_train_clip(clip: np.ndarray, input_size: int, rng: random.Random) -> torch.Tensor:
    """YT-VIS training transform (§1.2): short side -> S (bicubic, clamp), random S x S crop (one for the
    clip), normalise. uint8 `(T, H, W, 3)` -> float32 `(T, 3, S, S)`."""
    frames = to_float_frames(clip)
    frames = resize_frames(frames, short_side_size(frames.shape[-2], frames.shape[-1], input_size))
    height, width = frames.shape[-2:]
    top, left = rng.randint(0, height - input_size), rng.randint(0, width - input_size)
    return normalize(frames[..., top : top + input_size, left : left + input_size])


def prepare_train_clip(video: np.ndarray, chunk_size: int, input_size: int, h_flip_prob: float,
                       rng: random.Random, dataset_type: str = "movi") -> torch.Tensor:
    """One training clip (§1.2): a random chunk-aligned chunk, resized/cropped and normalised, flipped as a
    whole with probability `h_flip_prob`. uint8 `(T, H, W, 3)` -> float32 `(chunk_size, 3, S, S)`."""
    clip = take_chunk(video, sample_chunk_start(video.shape[0], chunk_size, rng), chunk_size)
    if dataset_type == "ytvis":
        frames = prepare_ytvis_train_clip(clip, input_size, rng)
    else:
        frames = prepare_video(clip, input_size)
    return maybe_hflip(frames, h_flip_prob, rng)


def _resize_nearest(masks: torch.Tensor, size: int) -> torch.Tensor:
    """nearest-exact resize of integer maps `(T, C, H, W)` to `size` x `size`."""
    if tuple(masks.shape[-2:]) == (size, size):
        return masks
    return F.interpolate(masks, size=(size, size), mode="nearest-exact")


def prepare_masks(segmentations: np.ndarray, num_classes: int, mask_size: int,
                  dataset_type: str = "movi") -> torch.Tensor:
    """Ground-truth masks for the metrics: float32 one-hot `(T, C, Hm, Wm)`, C = `num_classes`, Hm = Wm = mask_size.

    MOVi: `segmentations` uint8 `(T, H, W, 1)` instance ids; channel 0 = background (§1.3); ids must be
    < num_classes. YT-VIS: uint8 `(T, H, W, I)` one channel per instance (category id or 0), central square
    crop, binarised, zero-padded to C channels, no background channel (unlabelled pixels are all-zero).
    """
    masks = torch.from_numpy(np.ascontiguousarray(segmentations)).permute(0, 3, 1, 2)
    if dataset_type == "ytvis":
        instances = masks.shape[1]
        if instances > num_classes:
            raise ValueError(f"video has {instances} instances, more than num_classes={num_classes}")
        height, width = masks.shape[-2:]
        side = min(height, width)
        top, left = center_crop_box(height, width, side)
        binary = (masks[..., top : top + side, left : left + side] > 0).float()
        binary = _resize_nearest(binary, mask_size)
        return F.pad(binary, (0, 0, 0, 0, 0, num_classes - instances))
    largest = int(masks.max()) if masks.numel() else 0
    if largest >= num_classes:
        raise ValueError(
            f"segmentation id {largest} does not fit num_classes={num_classes} (ids 0..{num_classes - 1}; "
            "MOVi-C uses 11, MOVi-E 24): raise num_classes"
        )
    ids = _resize_nearest(masks.float(), mask_size).long()
    return torch.zeros((ids.shape[0], num_classes, *ids.shape[-2:]), dtype=torch.float32).scatter_(1, ids, 1.0)
