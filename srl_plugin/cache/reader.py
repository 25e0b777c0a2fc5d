"""Read a feature cache through the one data pipeline: `CachedFeatures` is a sample source
(`srl_plugin.data.sources`) and `CachedFeatureDataModule` the `SampleDataModule` over it, so sharding over
ranks and workers, resampling, shuffling, limits, chunking, the evaluation protocols and collation are the
video pipeline's own (docs/ARCHITECTURE.md, "Batches").

Training batch: `{"__key__": list[str], "backbone_features": (B, T, N, D_f) float32, "backbone_keys":
(B, T, N, D_f) (if cached)}`: one clip per video, its chunk and orientation drawn exactly as the video
source draws chunk and flip (docs/METHODS.md §1.2), so a cache and the video shards it was made from give the
same clips in the same order for the same seed.

Validation batch: `{"__key__", "backbone_features": (B, T, N, D_f), "backbone_keys" (if cached), "masks":
(B, T, C, Hm, Wm) one-hot float32, "chunk_index": long (B,)}`, as the video pipeline's (whole videos in
shard order, or their chunks).
"""
from __future__ import annotations

import json
import os
import random
import tarfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
import webdataset as wds

from srl_plugin.cache.format import decode_masks, decode_meta, feature_entry, from_npy_bytes
from srl_plugin.cache.meta import CacheMismatchError, check_fingerprint, read_meta, split_info
from srl_plugin.cache.writer import cache_shard_path
from srl_plugin.data.datamodule import SampleDataModule
from srl_plugin.data.shards import CorruptShardError

__all__ = ["CachedFeatureDataModule", "CachedFeatures", "select_clip"]
# The cache's split folders for the data module's splits.
CACHE_SPLITS = {"train": "train", "validation": "val"}


def _tensor(sample: Mapping[str, Any], entry: str) -> torch.Tensor:
    return torch.from_numpy(from_npy_bytes(sample[entry]))


def _corrupt(url: str, error: Exception) -> CorruptShardError:
    return CorruptShardError(f"cache shard {url} is corrupted or truncated ({error}); rebuild it with "
                             "srl-cache-features --overwrite")


def select_clip(sample: Mapping[str, Any], chunk: int, orientation: str, with_keys: bool) -> dict[str, Any]:
    """Decode one clip `(T, N, D_f)` float16 (and its keys) of a raw cached training video."""
    clip = {"__key__": sample["__key__"], "backbone_features": _tensor(sample, feature_entry("feat", chunk, orientation))}
    if with_keys:
        clip["backbone_keys"] = _tensor(sample, feature_entry("keys", chunk, orientation))
    return clip


class CachedFeatures:
    """The cache written by `srl-cache-features` as a sample source.

    cache_dir: folder holding `cache_meta.json`, `train/`, `val/`.
    expected_fingerprint: `srl_plugin.cache.fingerprint(...)` of the run's backbone and transform; the
        manifest is read and checked on first use (`meta`): another fingerprint raises `CacheMismatchError`,
        a missing cache or split (`shards`) `CacheMissingError`, both naming the command that (re)builds it.
    flip_prob: probability of the flipped orientation (the video pipeline's horizontal-flip probability).
    """

    def __init__(self, cache_dir: str | os.PathLike[str], expected_fingerprint: Mapping[str, Any], flip_prob: float,
                 experiment: str | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.expected_fingerprint = dict(expected_fingerprint)
        self.flip_prob = flip_prob
        self.experiment = experiment
        self._meta: dict[str, Any] | None = None

    @property
    def meta(self) -> dict[str, Any]:
        """The checked manifest (`cache_meta.json`)."""
        if self._meta is None:
            meta = read_meta(self.cache_dir, self.experiment)
            check_fingerprint(meta, self.expected_fingerprint, self.cache_dir, self.experiment)
            self._meta = meta
        return self._meta

    @property
    def with_keys(self) -> bool:
        return bool(self.meta["fingerprint"]["backbone"]["with_keys"])

    @property
    def clip_frames(self) -> int:
        """Frames of a cached training clip (the training split's chunk size)."""
        return int(split_info(self.meta, "train", self.cache_dir)["chunk_size"])

    def shards(self, split: str) -> list[str]:
        """Cache shards of `split` in the order of their source shards. Training needs the flipped clips when
        `flip_prob > 0` (a validation-only cache holds none, and evaluating from it needs none)."""
        if split == "train" and self.flip_prob > 0 and "hflip" not in self.meta["orientations"]:
            raise CacheMismatchError(
                f"flip_prob={self.flip_prob} but the cache at {self.cache_dir} holds no flipped clips; "
                "rebuild it with the flip probability of this run"
            )
        info = split_info(self.meta, CACHE_SPLITS[split], self.cache_dir)
        return [str(cache_shard_path(self.cache_dir, CACHE_SPLITS[split], source)) for source in info["source_shards"]]

    def read(self, url: str, split: str) -> Iterator[dict[str, Any]]:
        """Raw samples (undecoded entries: a training video's `C * O` clips are decoded only when drawn)."""
        try:
            yield from wds.tarfile_to_samples()([{"url": url}])
        except (tarfile.TarError, OSError) as error:
            raise _corrupt(url, error) from error

    def check(self, sample: dict[str, Any], split: str) -> None:
        """Refuse a sample written for another configuration (a cache folder mixing two runs)."""
        if decode_meta(sample)["fingerprint_sha256"] != self.meta["fingerprint_sha256"]:
            raise CacheMismatchError(
                f"sample {sample['__key__']} in {self.cache_dir} was written for another configuration than "
                f"{self.cache_dir}/cache_meta.json records (mixed caches); rebuild it with srl-cache-features "
                "--overwrite"
            )

    def num_frames(self, sample: dict[str, Any], split: str) -> int:
        """Validation: the video's frames; training: the frames of its cached chunks."""
        meta = decode_meta(sample)
        return int(meta["num_frames"]) if split == "validation" else int(meta["num_chunks"] * meta["chunk_size"])

    def train_item(self, sample: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        chunk = rng.randrange(decode_meta(sample)["num_chunks"])
        orientation = "hflip" if rng.random() < self.flip_prob else "orig"
        return select_clip(sample, chunk, orientation, self.with_keys)

    def val_item(self, sample: dict[str, Any]) -> dict[str, Any]:
        item = {
            "__key__": sample["__key__"],
            "backbone_features": _tensor(sample, "feat.npy"),
            "masks": decode_masks(sample, decode_meta(sample)["mask_shape"]),
        }
        if self.with_keys:
            item["backbone_keys"] = _tensor(sample, "keys.npy")
        return item

    def frame_counts(self, url: str) -> list[tuple[str, int]]:
        """`(key, frames)` of every video of a validation cache shard, from its `meta.json` members only."""
        counts = []
        try:
            with tarfile.open(url, mode="r:") as tar:
                for member in tar:
                    directory, _, name = member.name.rpartition("/")
                    key, _, extension = name.partition(".")
                    if member.isfile() and extension == "meta.json":
                        meta = json.loads(tar.extractfile(member).read())
                        counts.append((f"{directory}/{key}" if directory else key, int(meta["num_frames"])))
        except (tarfile.TarError, OSError) as error:
            raise _corrupt(url, error) from error
        return counts


class CachedFeatureDataModule(SampleDataModule):
    """`SampleDataModule` over a feature cache (`CachedFeatures`; module docstring for the batches).

    `setup` (through `CachedFeatures.meta`) first refuses a cache made for another backbone, input size or
    transform, then checks the first sample of each split used.
    The other arguments are `SampleDataModule`'s.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], expected_fingerprint: Mapping[str, Any], batch_size: int,
                 flip_prob: float = 0.0, experiment: str | None = None, **pipeline: Any) -> None:
        super().__init__(CachedFeatures(cache_dir, expected_fingerprint, flip_prob, experiment),
                         batch_size=batch_size, **pipeline)
