"""Dataset families: everything that differs between dataset layouts, in one object per layout
(docs/ARCHITECTURE.md "Adding a dataset layout"; transforms of docs/METHODS.md §1.2-§1.3).

A family says how its validation masks are stored in the shards (``mask_channels``, what the torch-free shard
reader checks), which part of a frame the model sees, how a training clip is resized / cropped, how masks become
the metrics' one-hot targets, and whether training clips can be cached as frozen features. The config names it (``data.dataset_type``); :func:`dataset_family` looks it up in
:data:`DATASET_FAMILIES`. Everything else (chunking, flips, resizing, normalisation) is shared, in
:mod:`srl_plugin.data.transforms`.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from srl_plugin.data.transforms import (
    center_crop_box,
    maybe_hflip,
    normalize,
    resize_frames,
    resize_nearest,
    sample_chunk_start,
    short_side_size,
    take_chunk,
    to_float_frames,
)


class DatasetFamily(ABC):
    """One dataset layout: its shards' masks and the transforms of its frames and masks.

    Attributes:
        name: the ``data.dataset_type`` value that selects it.
        mask_channels: the channel count of stored ``segmentations`` (T, H, W, C), or ``None`` for one channel per
            instance (any count); :func:`srl_plugin.data.shards.validate_sample` checks it.
        cacheable_training: whether training clips are deterministic up to chunk choice and flip (so the
            frozen-feature cache can hold them).
    """

    name: ClassVar[str]
    mask_channels: ClassVar[int | None]
    cacheable_training: ClassVar[bool]

    def model_view(self, frames: np.ndarray) -> np.ndarray:
        """The part of ``(T, H, W, C)`` frames (or segmentations) the model sees; the whole frame by default."""
        return frames

    def prepare_video(self, video: np.ndarray, input_size: int) -> torch.Tensor:
        """Deterministic evaluation transform: uint8 ``(T, H, W, 3)`` -> float32 ``(T, 3, S, S)``, S = ``input_size``:
        :meth:`model_view`, bicubic resize to S x S, clamp, ImageNet normalisation. No chunking, no flip."""
        frames = to_float_frames(self.model_view(video))
        return normalize(resize_frames(frames, (input_size, input_size)))

    def prepare_train_frames(self, clip: np.ndarray, input_size: int, rng: random.Random) -> torch.Tensor:
        """Training transform of one chosen chunk (before the flip): uint8 ``(T, H, W, 3)`` -> ``(T, 3, S, S)``;
        the evaluation transform by default."""
        return self.prepare_video(clip, input_size)

    @abstractmethod
    def prepare_masks(self, segmentations: np.ndarray, num_classes: int, mask_size: int) -> torch.Tensor:
        """Ground-truth masks for the metrics: float32 one-hot ``(T, C, Hm, Wm)``, C = ``num_classes``."""


class MOViFamily(DatasetFamily):
    """MOVi-C / MOVi-E and the synthetic set: square frames resized whole; masks are instance ids
    ``(T, H, W, 1)`` with 0 = background (channel 0 of the one-hot masks)."""

    name = "movi"
    mask_channels = 1
    cacheable_training = True

    def prepare_masks(self, segmentations: np.ndarray, num_classes: int, mask_size: int) -> torch.Tensor:
        """Ids must be < ``num_classes``; nearest-exact resize of the id maps, then one-hot."""
        masks = torch.from_numpy(np.ascontiguousarray(segmentations)).permute(0, 3, 1, 2)
        largest = int(masks.max()) if masks.numel() else 0
        if largest >= num_classes:
            raise ValueError(
                f"segmentation id {largest} does not fit num_classes={num_classes} (ids 0..{num_classes - 1}; "
                "MOVi-C uses 11, MOVi-E 24): raise num_classes"
            )
        ids = resize_nearest(masks.float(), mask_size).long()
        return torch.zeros((ids.shape[0], num_classes, *ids.shape[-2:]), dtype=torch.float32).scatter_(1, ids, 1.0)


class YTVISFamily(DatasetFamily):
    """YouTube-VIS: the model sees the central square of side min(H, W); training takes a random square crop
    after a short-side resize (§1.2), so its training clips cannot be cached; masks hold one channel per instance
    ``(T, H, W, I)`` (category id or 0), no background channel (unlabelled pixels are all-zero)."""

    name = "ytvis"
    mask_channels = None
    cacheable_training = False

    def model_view(self, frames: np.ndarray) -> np.ndarray:
        height, width = frames.shape[1:3]
        side = min(height, width)
        top, left = center_crop_box(height, width, side)
        return frames[:, top : top + side, left : left + side]

    def prepare_train_frames(self, clip: np.ndarray, input_size: int, rng: random.Random) -> torch.Tensor:
        """Short side -> S (bicubic, clamp), one random S x S crop for the clip, normalise."""
        frames = to_float_frames(clip)
        frames = resize_frames(frames, short_side_size(frames.shape[-2], frames.shape[-1], input_size))
        height, width = frames.shape[-2:]
        top, left = rng.randint(0, height - input_size), rng.randint(0, width - input_size)
        return normalize(frames[..., top : top + input_size, left : left + input_size])

    def prepare_masks(self, segmentations: np.ndarray, num_classes: int, mask_size: int) -> torch.Tensor:
        """Central square crop, binarised, nearest-exact resize, zero-padded to ``num_classes`` channels."""
        instances = segmentations.shape[3]
        if instances > num_classes:
            raise ValueError(f"video has {instances} instances, more than num_classes={num_classes}")
        cropped = torch.from_numpy(np.ascontiguousarray(self.model_view(segmentations))).permute(0, 3, 1, 2)
        binary = resize_nearest((cropped > 0).float(), mask_size)
        return F.pad(binary, (0, 0, 0, 0, 0, num_classes - instances))


DATASET_FAMILIES: dict[str, DatasetFamily] = {family.name: family for family in (MOViFamily(), YTVISFamily())}


def dataset_family(family: str | DatasetFamily) -> DatasetFamily:
    """The family named ``family`` (a ``data.dataset_type`` value), or ``family`` itself.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if isinstance(family, DatasetFamily):
        return family
    if family not in DATASET_FAMILIES:
        raise ValueError(f"dataset_type must be one of {tuple(DATASET_FAMILIES)}, got {family!r}")
    return DATASET_FAMILIES[family]


def config_family(config: Mapping[str, Any] | Any) -> DatasetFamily:
    """The family of a composed or saved experiment config (``data.dataset_type``; ``movi`` as train.yaml sets)."""
    return dataset_family(str(OmegaConf.select(OmegaConf.create(config), "data.dataset_type", default="movi")))


def prepare_video(video: np.ndarray, input_size: int, dataset_type: str | DatasetFamily = "movi") -> torch.Tensor:
    """:meth:`DatasetFamily.prepare_video` of the family ``dataset_type``."""
    return dataset_family(dataset_type).prepare_video(video, input_size)


def prepare_train_clip(video: np.ndarray, chunk_size: int, input_size: int, h_flip_prob: float,
                       rng: random.Random, dataset_type: str | DatasetFamily = "movi") -> torch.Tensor:
    """One training clip (§1.2): a random chunk-aligned chunk, prepared by the family's training transform and
    flipped as a whole with probability ``h_flip_prob``. uint8 ``(T, H, W, 3)`` -> float32 ``(chunk_size, 3, S, S)``."""
    clip = take_chunk(video, sample_chunk_start(video.shape[0], chunk_size, rng), chunk_size)
    frames = dataset_family(dataset_type).prepare_train_frames(clip, input_size, rng)
    return maybe_hflip(frames, h_flip_prob, rng)


def prepare_masks(segmentations: np.ndarray, num_classes: int, mask_size: int,
                  dataset_type: str | DatasetFamily = "movi") -> torch.Tensor:
    """:meth:`DatasetFamily.prepare_masks` of the family ``dataset_type``."""
    return dataset_family(dataset_type).prepare_masks(segmentations, num_classes, mask_size)
