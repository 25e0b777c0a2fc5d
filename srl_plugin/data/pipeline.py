"""The stages of the one data pipeline, whatever the sample source (`srl_plugin.data.sources`).

`SampleDataModule` chains them: shards (resampled for training, this rank's share for validation) ->
`SampleStream` (read, check, short-video and bad-input policies, transform; per-shard `val_size` limits and
the official protocol's selection) -> `Shuffle` (training) -> batches (`collate`).

Randomness is explicit so that spawned DataLoader workers cannot get it wrong: every generator is seeded
from the run's seed, the DDP rank (passed in, decided in the main process), the DataLoader worker id and the
pass number (`worker_seed`, `pass_rng`).
"""
from __future__ import annotations

import logging
import random
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from srl_plugin.data.chunks import split_into_chunk_items
from srl_plugin.data.shards import BadSampleError, CorruptShardError, DataError, NoSamplesError
from srl_plugin.data.sources import SampleSource

log = logging.getLogger(__name__)
SHORT_VIDEO_POLICIES = ("skip", "error")
SPLITS = ("train", "validation")


class ShortVideoError(DataError):
    """A video is shorter than a training clip or a validation chunk (with `short_videos="error"`)."""


class BadSampleLog:
    """Counts skipped samples / shards of one split (per process, in total and in the current pass) and logs them."""

    def __init__(self, split: str) -> None:
        self.split = split
        self.counts: Counter[str] = Counter()
        self.pass_counts: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def start_pass(self) -> None:
        self.pass_counts = Counter()

    def record(self, error: DataError) -> None:
        self.counts[type(error).__name__] += 1
        self.pass_counts[type(error).__name__] += 1
        log.warning("skipping bad %s input (%d skipped so far in this process): %s", self.split, self.total, error)

    def summary(self) -> None:
        skipped = sum(self.pass_counts.values())
        if skipped:
            log.warning("%s pass finished with %d bad input(s) skipped: %s", self.split, skipped,
                        dict(self.pass_counts))


class ShortVideoLog:
    """Distinct videos of one split skipped for being too short (per process), each warned about once."""

    def __init__(self, split: str) -> None:
        self.split = split
        self.keys: set[tuple[str, str]] = set()
        self.pass_count = 0

    @property
    def total(self) -> int:
        return len(self.keys)

    def start_pass(self) -> None:
        self.pass_count = 0

    def record(self, url: str, key: str, frames: int, needed: int) -> None:
        self.pass_count += 1
        if (url, key) not in self.keys:
            self.keys.add((url, key))
            log.warning("skipping %s video %r of shard %s: %d frame(s), fewer than %d (%d short video(s) "
                        "skipped so far in this process; data.short_videos=error stops instead)",
                        self.split, key, url, frames, needed, self.total)

    def summary(self) -> None:
        if self.pass_count:
            log.warning("%s pass skipped %d video(s) shorter than a %s", self.split, self.pass_count,
                        "chunk" if self.split == "validation" else "clip")


@dataclass(frozen=True)
class ShortVideoPolicy:
    """Videos with fewer than `min_frames` frames are skipped (`action="skip"`, logged in `log`) or stop the
    run (`action="error"`)."""

    min_frames: int
    action: str
    log: ShortVideoLog


def worker_seed(rank: int) -> int:
    """Seed of this rank's current DataLoader worker: `rank * 1000 + worker id` (0 in the main process)."""
    info = get_worker_info()
    return rank * 1000 + (0 if info is None else info.id)


def pass_rng(seed: int, rank: int, epoch: int) -> random.Random:
    """The generator of one pass over the data in this rank's current worker."""
    return random.Random(wds.utils.make_seed(seed, worker_seed(rank), epoch))


class SampleStream:
    """Pipeline stage: shard urls -> batch items of `source`, with the bad-input and short-video policies.

    Training (`split="train"`) turns each sample into one clip (`source.train_item(sample, rng)`); validation
    into the whole video (`source.val_item`) cut into its `val_chunk_size` chunks (`split_into_chunk_items`).
    A transform's `ValueError` becomes a `BadSampleError` naming the shard and the sample. `limits` caps the
    number of videos read per shard; `wanted` (official protocol) names the videos (by key) and chunks to read
    per shard. `num_shards` (endless resampled streams): once that many distinct shards in a row gave no
    usable sample, a `NoSamplesError` is raised instead of looping forever.
    """

    def __init__(self, source: SampleSource, split: str, skip_bad_samples: bool, bad_samples: BadSampleLog,
                 short: ShortVideoPolicy, seed: int, rank: int, val_chunk_size: int | None = None,
                 limits: Mapping[str, int] | None = None, wanted: Mapping[str, Mapping[str, Any]] | None = None,
                 num_shards: int | None = None) -> None:
        self.source = source
        self.split = split
        self.skip_bad_samples = skip_bad_samples
        self.bad_samples = bad_samples
        self.short = short
        self.seed = seed
        self.rank = rank
        self.val_chunk_size = val_chunk_size
        self.limits = limits
        self.wanted = wanted
        self.num_shards = num_shards
        self.epoch = -1

    def _handle(self, error: DataError) -> None:
        if not self.skip_bad_samples:
            raise error
        self.bad_samples.record(error)

    def _too_short(self, url: str, sample: dict[str, Any]) -> bool:
        frames = self.source.num_frames(sample, self.split)
        if frames >= self.short.min_frames:
            return False
        if self.short.action == "error":
            raise ShortVideoError(
                f"shard {url}, sample {sample['__key__']!r}: {frames} frame(s), fewer than the "
                f"{self.short.min_frames} a {self.split} clip/chunk needs; set data.short_videos=skip "
                "to skip such videos (what the original code does)"
            )
        self.short.log.record(url, str(sample["__key__"]), frames, self.short.min_frames)
        return True

    def _items(self, sample: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
        if self.split == "train":
            return [self.source.train_item(sample, rng)]
        return split_into_chunk_items(self.source.val_item(sample), self.val_chunk_size)

    def _samples(self, url: str, rng: random.Random) -> Iterator[dict[str, Any]]:
        limit = sys.maxsize if self.limits is None else self.limits[url]
        count = 0
        try:
            for sample in self.source.read(url, self.split):
                if count >= limit:
                    return
                count += 1
                if self.wanted is not None and sample["__key__"] not in self.wanted[url]:
                    continue
                try:
                    self.source.check(sample, self.split)
                    if self._too_short(url, sample):
                        continue
                    try:
                        items = self._items(sample, rng)
                    except ValueError as error:
                        raise BadSampleError(f"shard {url}, sample {sample['__key__']!r}: {error}") from error
                except BadSampleError as error:
                    self._handle(error)
                    continue
                if self.wanted is not None:
                    chunks = self.wanted[url][sample["__key__"]]
                    items = [item for item in items if int(item["chunk_index"]) in chunks]
                yield from items
        except CorruptShardError as error:
            self._handle(error)

    def __call__(self, shards: Iterable[Mapping[str, str]]) -> Iterator[dict[str, Any]]:
        self.epoch += 1
        rng = pass_rng(self.seed, self.rank, self.epoch)
        self.bad_samples.start_pass()
        self.short.log.start_pass()
        fruitless: set[str] = set()
        for shard in shards:
            url = shard["url"]
            fruitless.add(url)
            for item in self._samples(url, rng):
                fruitless.clear()
                yield item
            if self.num_shards is not None and len(fruitless) >= self.num_shards:
                raise NoSamplesError(
                    f"none of the {self.num_shards} {self.split} shard(s) gave a usable sample "
                    f"({self.bad_samples.total} bad sample(s) skipped), so an epoch would never end; "
                    "check the shards (e.g. regenerate them) or the shard pattern"
                )
        self.bad_samples.summary()
        self.short.log.summary()


class ShardList(IterableDataset):
    """Fixed list of shard urls as `{"url": ...}` (may be empty: a rank with no shard yields nothing)."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.urls = list(urls)

    def __iter__(self) -> Iterator[dict[str, str]]:
        return iter([{"url": url} for url in self.urls])


class Shuffle:
    """Pipeline stage: shuffle buffer with a per-worker, per-epoch reproducible generator; like webdataset 0.2's
    default used by the originals, it starts yielding once min(100, buffer) samples are buffered."""

    def __init__(self, buffer: int, seed: int, rank: int) -> None:
        self.buffer, self.seed, self.rank, self.epoch = buffer, seed, rank, -1

    def __call__(self, samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        self.epoch += 1
        rng = pass_rng(self.seed + 1, self.rank, self.epoch)
        yield from wds.filters.shuffle(self.buffer, initial=min(100, self.buffer), rng=rng)(iter(samples))


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Items of equal shapes -> one batch: every tensor entry stacked `(B, ...)` (floating point ones as
    float32, so float16 cached features come out float32), `chunk_index` a long tensor `(B,)`, `__key__` a list.

    Validation items of different frame counts cannot share a batch (`BatchedByLength` keeps them apart):
    a `DataError` says how to score them."""
    first = items[0]
    batch: dict[str, Any] = {}
    for name, value in first.items():
        values = [item[name] for item in items]
        if torch.is_tensor(value):
            lengths = {tensor.shape[0] for tensor in values}
            if len(lengths) > 1:
                raise DataError(
                    f"validation videos {[item.get('__key__') for item in items]} have different lengths "
                    f"{sorted(lengths)} and cannot share a batch; set data.val_batch_size=1, or score "
                    "fixed-length chunks (evaluation.independent_chunks)"
                )
            stacked = torch.stack(values)
            batch[name] = stacked.float() if stacked.is_floating_point() else stacked
        elif name == "chunk_index":
            batch[name] = torch.tensor(values, dtype=torch.long)
        else:
            batch[name] = values
    return batch


def count_shard_samples(path: str) -> int:
    """Number of samples (distinct keys) in a tar, from the member headers only."""
    keys = set()
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                if member.isfile():
                    directory, _, filename = member.name.rpartition("/")
                    keys.add((directory, filename.partition(".")[0]))
    except (tarfile.TarError, OSError) as error:
        raise CorruptShardError(
            f"shard {path} is corrupted or truncated ({error}); regenerate or re-download it"
        ) from error
    return len(keys)


def first_videos_limits(paths: list[str], val_size: int | None) -> dict[str, int]:
    """Per-shard video caps that keep the first `val_size` videos in shard order (all when None)."""
    if val_size is None:
        return {path: sys.maxsize for path in paths}
    limits, remaining = {}, val_size
    for path in paths:
        limits[path] = min(remaining, count_shard_samples(path))
        remaining -= limits[path]
    return limits
