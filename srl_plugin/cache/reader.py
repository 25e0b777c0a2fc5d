"""Read a feature cache with the batch contract of `VideoDataModule` (docs/ARCHITECTURE.md, "Batches").

Training batch: `{"backbone_features": (B, T, N, D_f) float32, "backbone_keys": (B, T, N, D_f) (if cached),
"__key__": list[str]}`. Exactly like the video pipeline (docs/METHODS.md §1.2), the shards are resampled with
replacement (an infinite stream), **one chunk-aligned clip is drawn at random per video**, it is the
horizontally flipped orientation with probability `flip_prob`, and samples go through a shuffle buffer;
batches are formed inside each worker.

Validation batch: `{"backbone_features": (B, T, N, D_f), "backbone_keys" (if cached), "masks":
(B, T, C, Hm, Wm) one-hot float32, "__key__": list[str], "chunk_index": long (B,)}`, whole videos in shard
order, or with `val_chunk_size` their chunks cut before batching (`srl_plugin.data.chunks`, as the video
pipeline); a video shorter than a chunk is skipped with a warning.
"""
from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import lightning as L
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from srl_plugin.cache.format import decode_masks, decode_meta, feature_entry, from_npy_bytes
from srl_plugin.cache.meta import CacheMismatchError, check_fingerprint, read_meta, split_info
from srl_plugin.cache.writer import cache_shard_path
from srl_plugin.data.chunks import BatchedByLength, split_into_chunk_items
from srl_plugin.data.loading import loader_kwargs

log = logging.getLogger(__name__)


def _worker_rng(seed: int | None, epoch: int) -> random.Random:
    """A generator distinct per rank and DataLoader worker, reproducible when `seed` is given."""
    stream = wds.utils.pytorch_worker_seed()
    if seed is None:
        return random.Random(wds.utils.make_seed(stream, os.getpid(), os.urandom(8)))
    return random.Random(wds.utils.make_seed(seed, stream, epoch))


def _tensor(sample: Mapping[str, Any], entry: str) -> torch.Tensor:
    return torch.from_numpy(from_npy_bytes(sample[entry]))


def _check_sample(sample: Mapping[str, Any], fingerprint_sha256: str, cache_dir: Path) -> dict[str, Any]:
    meta = decode_meta(sample)
    if meta["fingerprint_sha256"] != fingerprint_sha256:
        raise CacheMismatchError(
            f"sample {sample['__key__']} in {cache_dir} was written for another configuration than "
            f"{cache_dir}/cache_meta.json records (mixed caches); rebuild it with srl-cache-features --overwrite"
        )
    return meta


def select_clip(
    sample: Mapping[str, Any], chunk: int, orientation: str, with_keys: bool
) -> dict[str, Any]:
    """Decode one clip `(T, N, D_f)` float16 (and its keys) of a raw cached training video."""
    clip = {"__key__": sample["__key__"], "backbone_features": _tensor(sample, feature_entry("feat", chunk, orientation))}
    if with_keys:
        clip["backbone_keys"] = _tensor(sample, feature_entry("keys", chunk, orientation))
    return clip


class _SampleClips:
    """Pipeline stage: one random clip per video (random chunk, flipped with `flip_prob`), then a shuffle buffer."""

    def __init__(
        self, flip_prob: float, with_keys: bool, shuffle_buffer: int, seed: int | None,
        fingerprint_sha256: str, cache_dir: Path,
    ) -> None:
        self.flip_prob = flip_prob
        self.with_keys = with_keys
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.fingerprint_sha256 = fingerprint_sha256
        self.cache_dir = cache_dir
        self.epoch = -1

    def __call__(self, samples: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        self.epoch += 1
        rng = _worker_rng(self.seed, self.epoch)
        buffer: list[dict[str, Any]] = []
        for sample in samples:
            meta = _check_sample(sample, self.fingerprint_sha256, self.cache_dir)
            chunk = rng.randrange(meta["num_chunks"])
            orientation = "hflip" if rng.random() < self.flip_prob else "orig"
            buffer.append(select_clip(sample, chunk, orientation, self.with_keys))
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer


def collate_clips(clips: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack clips (float16 on disk) into a float32 batch; `__key__` stays a list."""
    batch: dict[str, Any] = {"__key__": [clip["__key__"] for clip in clips]}
    for name in clips[0]:
        if name != "__key__":
            batch[name] = torch.stack([clip[name] for clip in clips]).float()
    return batch


def _decode_val(with_keys: bool, fingerprint_sha256: str, cache_dir: Path):
    def decode(sample: Mapping[str, Any]) -> dict[str, Any]:
        meta = _check_sample(sample, fingerprint_sha256, cache_dir)
        item = {
            "__key__": sample["__key__"],
            "backbone_features": _tensor(sample, "feat.npy"),
            "masks": decode_masks(sample, meta["mask_shape"]),
        }
        if with_keys:
            item["backbone_keys"] = _tensor(sample, "keys.npy")
        return item

    return decode


class _FirstVideos:
    """Pipeline stage: keep only the first `limits[shard]` samples of each shard (`val_size`)."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)

    def __call__(self, samples: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        seen: dict[str, int] = {}
        for sample in samples:
            url = sample["__url__"]
            seen[url] = seen.get(url, 0) + 1
            if seen[url] <= self.limits[url]:
                yield sample


def collate_videos(videos: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack validation videos (or chunks) of one frame count; `chunk_index` becomes a long tensor `(B,)`."""
    batch = collate_clips([{name: value for name, value in video.items() if name != "chunk_index"}
                           for video in videos])
    batch["chunk_index"] = torch.tensor([video["chunk_index"] for video in videos], dtype=torch.long)
    return batch


class _Chunks:
    """Pipeline stage: validation videos -> their chunks (`split_into_chunk_items`), warning about videos
    shorter than one chunk."""

    def __init__(self, chunk_size: int | None) -> None:
        self.chunk_size = chunk_size

    def __call__(self, videos: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for video in videos:
            chunks = split_into_chunk_items(video, self.chunk_size)
            if not chunks:
                log.warning("skipping cached validation video %r: %d frame(s), fewer than a %d-frame chunk",
                            video["__key__"], video["backbone_features"].shape[0], self.chunk_size)
            yield from chunks


class CachedFeatureDataModule(L.LightningDataModule):
    """Batches of cached backbone features (see the module docstring for the contract).

    cache_dir: folder written by `srl-cache-features` (holds `cache_meta.json`, `train/`, `val/`).
    expected_fingerprint: `srl_plugin.cache.fingerprint(...)` of the run's backbone and transform; a cache
        with another fingerprint raises `CacheMismatchError` in `setup`.
    flip_prob: probability of the flipped orientation (the video pipeline's horizontal-flip probability).
    val_size: evaluate only the first `val_size` validation videos in source-shard order (as the video
        pipeline does); None evaluates all.
    val_chunk_size: score every `val_chunk_size`-frame chunk as its own video (cut before batching).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        expected_fingerprint: Mapping[str, Any],
        batch_size: int,
        val_batch_size: int = 1,
        flip_prob: float = 0.0,
        shuffle_buffer: int = 512,
        num_workers: int = 0,
        seed: int | None = None,
        experiment: str | None = None,
        pin_memory: bool | None = None,
        val_size: int | None = None,
        val_chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        self.cache_dir = Path(cache_dir)
        self.expected_fingerprint = dict(expected_fingerprint)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.flip_prob = flip_prob
        self.shuffle_buffer = shuffle_buffer
        self.num_workers = num_workers
        self.seed = seed
        self.experiment = experiment
        self.pin_memory = pin_memory
        self.val_size = None if val_size is None else int(val_size)
        self.val_chunk_size = val_chunk_size
        self.meta: dict[str, Any] | None = None

    def setup(self, stage: str | None = None) -> None:
        """Read the manifest and refuse a cache made for another backbone, input size or transform."""
        meta = read_meta(self.cache_dir, self.experiment)
        check_fingerprint(meta, self.expected_fingerprint, self.cache_dir, self.experiment)
        if self.flip_prob > 0 and "hflip" not in meta["orientations"]:
            raise CacheMismatchError(
                f"flip_prob={self.flip_prob} but the cache at {self.cache_dir} holds no flipped clips; "
                "rebuild it with the flip probability of this run"
            )
        self.meta = meta

    @property
    def with_keys(self) -> bool:
        return bool(self._meta["fingerprint"]["backbone"]["with_keys"])

    @property
    def _meta(self) -> dict[str, Any]:
        if self.meta is None:
            self.setup()
        assert self.meta is not None
        return self.meta

    def _shards(self, split: str) -> list[str]:
        """Cache shards of `split` in the order of their source shards."""
        info = split_info(self._meta, split, self.cache_dir)
        return [str(cache_shard_path(self.cache_dir, split, source)) for source in info["source_shards"]]

    def _val_limits(self) -> dict[str, int]:
        """Videos to read from each validation shard so that the first `val_size` videos are evaluated."""
        counts = split_info(self._meta, "val", self.cache_dir)["shards"]
        remaining = sys.maxsize if self.val_size is None else self.val_size
        limits = {}
        for shard in self._shards("val"):
            limits[shard] = min(remaining, counts[Path(shard).name])
            remaining -= limits[shard]
        return limits

    def _loader(self, pipeline: wds.DataPipeline) -> DataLoader:
        return DataLoader(pipeline, batch_size=None, **loader_kwargs(self.num_workers, self.pin_memory))

    def train_dataloader(self) -> DataLoader:
        pipeline = wds.DataPipeline(
            wds.ResampledShards(self._shards("train"), seed=self.seed or 0, deterministic=self.seed is not None),
            wds.tarfile_to_samples(),
            _SampleClips(
                self.flip_prob, self.with_keys, self.shuffle_buffer, self.seed,
                self._meta["fingerprint_sha256"], self.cache_dir,
            ),
            wds.batched(self.batch_size, collation_fn=collate_clips, partial=False),
        )
        return self._loader(pipeline)

    def val_dataloader(self) -> DataLoader:
        pipeline = wds.DataPipeline(
            wds.SimpleShardList(self._shards("val")),
            wds.split_by_node,
            wds.split_by_worker,
            wds.tarfile_to_samples(),
            _FirstVideos(self._val_limits()),
            wds.map(_decode_val(self.with_keys, self._meta["fingerprint_sha256"], self.cache_dir)),
            _Chunks(self.val_chunk_size),
            BatchedByLength(self.val_batch_size, collate_videos, "backbone_features"),
        )
        return self._loader(pipeline)
