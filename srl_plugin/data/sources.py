"""Sample sources: what the one data pipeline (`SampleDataModule`) reads, and how a sample becomes an item.

The data module owns everything that does not depend on what a sample holds (`srl_plugin.data.pipeline`):
sharding over DDP ranks and DataLoader workers, resampling, shuffling, `val_size` limits, the evaluation
protocols, validation chunks, the short-video and bad-input policies and collation. A source answers the rest:

- `shards(split)`: the shard urls of `split` ("train" / "validation"), in order;
- `read(url, split)`: the raw samples of one shard, `{"__key__", "__url__", ...}` (`CorruptShardError` when
  the shard cannot be read);
- `check(sample, split)`: raise `BadSampleError` (naming shard and sample) for a sample the source cannot use;
- `num_frames(sample, split)`: the frames the short-video policy compares with a clip / chunk;
- `clip_frames`: frames of a training clip;
- `train_item(sample, rng)`: one training clip; `rng` is drawn in the order chunk (`rng.choice` of the chunk
  starts, i.e. `rng.randrange(num_chunks)`), then flip (`rng.random() < flip probability`), so that every
  source draws the same clip of the same video for the same seed;
- `val_item(sample)`: the whole validation video `{"__key__", <tensors with the frame axis first>, "masks"}`;
- `frame_counts(url)`: `(key, frames)` of every sample of a validation shard, read without decoding frames
  (what the official protocol replays).

`VideoShards` reads decoded video shards (docs/ARCHITECTURE.md, "Data shards"); the frozen-feature cache
(`srl_plugin.cache.reader.CachedFeatures`) reads cached backbone features.
"""
from __future__ import annotations

import random
from typing import Any, Iterator, Protocol

import torch

from srl_plugin.data.families import dataset_family, prepare_train_clip
from srl_plugin.data.shards import expand_shards, iter_raw_samples, shard_frame_counts, validate_sample


class SampleSource(Protocol):
    """What the data module reads (module docstring)."""

    clip_frames: int

    def shards(self, split: str) -> list[str]: ...

    def read(self, url: str, split: str) -> Iterator[dict[str, Any]]: ...

    def check(self, sample: dict[str, Any], split: str) -> None: ...

    def num_frames(self, sample: dict[str, Any], split: str) -> int: ...

    def train_item(self, sample: dict[str, Any], rng: random.Random) -> dict[str, Any]: ...

    def val_item(self, sample: dict[str, Any]) -> dict[str, Any]: ...

    def frame_counts(self, url: str) -> list[tuple[str, int]]: ...


class VideoShards:
    """Decoded video shards: items `{"video": float32 (chunk_size, 3, S, S)}` for training and
    `{"__key__", "video": (T, 3, S, S), "masks": float32 one-hot (T, C, Hm, Wm)}` for validation.

    train_shards / val_shards: brace patterns (or wildcards) relative to `root` (else $SRL_DATA_ROOT), or
    absolute. dataset_type: the dataset family's name ("movi" or "ytvis", `srl_plugin.data.families`).
    mask_size: metric resolution. num_classes: mask channels.
    """

    def __init__(self, train_shards: str, val_shards: str, root: str | None, dataset_type: str, input_size: int,
                 mask_size: int, num_classes: int, chunk_size: int, h_flip_prob: float) -> None:
        self.patterns = {"train": train_shards, "validation": val_shards}
        self.root = root
        self.family = dataset_family(dataset_type)
        self.input_size = input_size
        self.mask_size = mask_size
        self.num_classes = num_classes
        self.clip_frames = chunk_size
        self.h_flip_prob = h_flip_prob

    def shards(self, split: str) -> list[str]:
        return expand_shards(self.patterns[split], self.root)

    def read(self, url: str, split: str) -> Iterator[dict[str, Any]]:
        return iter_raw_samples(url)

    def check(self, sample: dict[str, Any], split: str) -> None:
        validate_sample(sample, self.family.mask_channels, require_segmentations=split == "validation")

    def num_frames(self, sample: dict[str, Any], split: str) -> int:
        return int(sample["video"].shape[0])

    def train_item(self, sample: dict[str, Any], rng: random.Random) -> dict[str, torch.Tensor]:
        return {"video": prepare_train_clip(sample["video"], self.clip_frames, self.input_size, self.h_flip_prob,
                                            rng, self.family)}

    def video(self, sample: dict[str, Any]) -> torch.Tensor:
        """The whole video, prepared by the family's evaluation transform: float32 `(T, 3, S, S)`
        (what validation scores and what the feature cache runs the backbone on)."""
        return self.family.prepare_video(sample["video"], self.input_size)

    def val_item(self, sample: dict[str, Any]) -> dict[str, Any]:
        return {
            "__key__": sample["__key__"],
            "video": self.video(sample),
            "masks": self.family.prepare_masks(sample["segmentations"], self.num_classes, self.mask_size),
        }

    def frame_counts(self, url: str) -> list[tuple[str, int]]:
        return shard_frame_counts(url)
