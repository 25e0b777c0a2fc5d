"""`VideoDataModule`: webdataset video shards -> the batches of docs/ARCHITECTURE.md ("Batches").

Training (docs/METHODS.md §1.2): shards resampled with replacement (an infinite stream), one random chunk-aligned
clip of `chunk_size` frames per video, resized (MOVi) or short-side resized and randomly cropped (YT-VIS),
ImageNet-normalised, flipped as a whole with probability `h_flip_prob`, a shuffle buffer, batches formed in
each worker: `{"video": float32 (B, chunk_size, 3, S, S)}`.

Validation (§1.3): whole videos in shard order, `{"video": (B, T, 3, S, S), "masks": float32 one-hot
(B, T, C, Hm, Wm), "__key__": list[str], "chunk_index": long (B,)}`. Finite and deterministic. With
`val_chunk_size` c (VideoSAUR on YT-VIS: 6) every video is first cut into its `floor(T / c)` non-overlapping
c-frame chunks (keys `<key>_<i>`, remainder dropped), and the chunks are batched, so videos of any lengths mix.
`val_protocol` picks the scored subset (`srl_plugin.data.protocol`): `full` (every video, or the first
`val_size`) or `official` (what the official data module scores on one GPU, from `official_loader`). Shards are split between DDP ranks
(round robin, decided in the main process from the trainer / torch.distributed, so spawned workers cannot
get it wrong) and then between DataLoader workers (`webdataset.split_by_worker`): every video is seen by
exactly one rank and worker. Ranks may get different numbers of batches (no padding); metrics must be
synchronised at `compute` (torchmetrics does), not per step. `val_size` keeps the first `val_size` videos in
shard order, whatever the number of ranks and workers.

Videos shorter than a training clip (or than a validation chunk) are skipped, as the originals do, with a
warning per video and a count (`short_videos[split]`); `short_videos="error"` stops instead.

Bad input raises a `DataError` naming the shard and the sample (see `shards.py`). With
`skip_bad_samples=True` bad samples (and the unreadable rest of a corrupted shard) are skipped, each skip is
logged as a warning with a running count, and a summary is logged at the end of every validation pass;
`bad_samples[split]` holds the counts of the main process (all of them when `num_workers=0`).
"""
from __future__ import annotations

import functools
import logging
import random
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import lightning as L
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from srl_plugin.data.chunks import BatchedByLength, split_into_chunk_items
from srl_plugin.data.loading import loader_kwargs
from srl_plugin.data.protocol import Selection, as_official_loader, check_protocol, official_selection
from srl_plugin.data.shards import (
    DATA_ROOT_ENV,
    BadSampleError,
    CorruptShardError,
    DataError,
    NoSamplesError,
    check_dataset_type,
    expand_shards,
    iter_raw_samples,
    resolve_root,
    shard_frame_counts,
    validate_sample,
)
from srl_plugin.data.synthetic import check_num_classes, ensure_synthetic_dataset
from srl_plugin.data.transforms import prepare_masks, prepare_train_clip, prepare_video

log = logging.getLogger(__name__)
SHORT_VIDEO_POLICIES = ("skip", "error")


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


def _worker_id() -> int:
    info = get_worker_info()
    return 0 if info is None else info.id


def _worker_seed(rank: int) -> int:
    """Seed of this rank's current DataLoader worker (rank passed explicitly, see the module docstring)."""
    return rank * 1000 + _worker_id()


@dataclass(frozen=True)
class ShortVideoPolicy:
    """Videos with fewer than `min_frames` frames are skipped (`action="skip"`, logged in `log`) or stop the
    run (`action="error"`)."""

    min_frames: int
    action: str
    log: ShortVideoLog


class _SampleStream:
    """Pipeline stage: shard urls -> transformed samples, with the bad-input and short-video policies.

    `transform(sample, rng)` turns a validated raw sample into a list of output dicts (one clip, or the
    chunks of a validation video); its `ValueError`s become `BadSampleError`s naming the shard and the sample.
    `limits` caps the number of videos read per shard; `wanted` (official protocol) names the videos to read
    per shard, by key. `num_shards` (endless resampled streams): once that many distinct shards in a row gave
    no usable sample, a `NoSamplesError` is raised instead of looping forever.
    """

    def __init__(self, transform: Callable[[dict[str, Any], random.Random], list[dict[str, Any]]],
                 dataset_type: str, require_segmentations: bool, skip_bad_samples: bool, bad_samples: BadSampleLog,
                 short: ShortVideoPolicy, seed: int, rank: int, limits: Mapping[str, int] | None = None,
                 wanted: Mapping[str, Mapping[str, Any]] | None = None, num_shards: int | None = None) -> None:
        self.transform = transform
        self.dataset_type = dataset_type
        self.require_segmentations = require_segmentations
        self.skip_bad_samples = skip_bad_samples
        self.bad_samples = bad_samples
        self.short = short
        self.seed = seed
        self.rank = rank
        self.limits = limits
        self.wanted = wanted
        self.num_shards = num_shards
        self.epoch = -1

    def _handle(self, error: DataError) -> None:
        if not self.skip_bad_samples:
            raise error
        self.bad_samples.record(error)

    def _too_short(self, url: str, sample: dict[str, Any]) -> bool:
        frames = sample["video"].shape[0]
        if frames >= self.short.min_frames:
            return False
        if self.short.action == "error":
            raise ShortVideoError(
                f"shard {url}, sample {sample['__key__']!r}: {frames} frame(s), fewer than the "
                f"{self.short.min_frames} a {self.short.log.split} clip/chunk needs; set data.short_videos=skip "
                "to skip such videos (what the original code does)"
            )
        self.short.log.record(url, str(sample["__key__"]), frames, self.short.min_frames)
        return True

    def _samples(self, url: str, rng: random.Random) -> Iterator[dict[str, Any]]:
        limit = sys.maxsize if self.limits is None else self.limits[url]
        count = 0
        try:
            for sample in iter_raw_samples(url):
                if count >= limit:
                    return
                count += 1
                if self.wanted is not None and sample["__key__"] not in self.wanted[url]:
                    continue
                try:
                    validate_sample(sample, self.dataset_type, self.require_segmentations)
                    if self._too_short(url, sample):
                        continue
                    try:
                        items = self.transform(sample, rng)
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
        rng = random.Random(wds.utils.make_seed(self.seed, _worker_seed(self.rank), self.epoch))
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
                    f"none of the {self.num_shards} {self.bad_samples.split} shard(s) gave a usable sample "
                    f"({self.bad_samples.total} bad sample(s) skipped), so an epoch would never end; "
                    "check the shards (e.g. regenerate them) or the shard pattern"
                )
        self.bad_samples.summary()
        self.short.log.summary()


class _ShardList(IterableDataset):
    """Fixed list of shard urls as `{"url": ...}` (may be empty: a rank with no shard yields nothing)."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.urls = list(urls)

    def __iter__(self) -> Iterator[dict[str, str]]:
        return iter([{"url": url} for url in self.urls])


class _Shuffle:
    """Pipeline stage: shuffle buffer with a per-worker, per-epoch reproducible generator; like webdataset 0.2's
    default used by the originals, it starts yielding once min(100, buffer) samples are buffered."""

    def __init__(self, buffer: int, seed: int, rank: int) -> None:
        self.buffer, self.seed, self.rank, self.epoch = buffer, seed, rank, -1

    def __call__(self, samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        self.epoch += 1
        rng = random.Random(wds.utils.make_seed(self.seed + 1, _worker_seed(self.rank), self.epoch))
        yield from wds.filters.shuffle(self.buffer, initial=min(100, self.buffer), rng=rng)(iter(samples))


def collate_train(clips: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """`{"video": (B, T, 3, S, S)}`."""
    return {"video": torch.stack([clip["video"] for clip in clips])}


def collate_val(videos: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"video": (B, T, 3, S, S), "masks": (B, T, C, Hm, Wm), "__key__": [...], "chunk_index": (B,)}`;
    equal lengths required."""
    lengths = {video["video"].shape[0] for video in videos}
    if len(lengths) > 1:
        keys = [video["__key__"] for video in videos]
        raise DataError(
            f"validation videos {keys} have different lengths {sorted(lengths)} and cannot share a batch; "
            "set data.val_batch_size=1, or score fixed-length chunks (evaluation.independent_chunks)"
        )
    return {
        "video": torch.stack([video["video"] for video in videos]),
        "masks": torch.stack([video["masks"] for video in videos]),
        "__key__": [video["__key__"] for video in videos],
        "chunk_index": torch.tensor([video["chunk_index"] for video in videos], dtype=torch.long),
    }


def train_item(sample: dict[str, Any], rng: random.Random, *, chunk_size: int, input_size: int,
               h_flip_prob: float, dataset_type: str) -> list[dict[str, Any]]:
    """Training transform of one validated sample: `[{"video": (chunk_size, 3, S, S)}]`."""
    return [{"video": prepare_train_clip(sample["video"], chunk_size, input_size, h_flip_prob, rng, dataset_type)}]


def val_items(sample: dict[str, Any], rng: random.Random, *, input_size: int, mask_size: int, num_classes: int,
              dataset_type: str, chunk_size: int | None) -> list[dict[str, Any]]:
    """Validation transform of one validated sample (`rng` unused): the whole video, or with `chunk_size` its
    `floor(T / c)` chunks (`split_into_chunk_items`), each `{"__key__", "chunk_index", "video" (T', 3, S, S),
    "masks" (T', C, Hm, Wm)}`."""
    item = {
        "__key__": sample["__key__"],
        "video": prepare_video(sample["video"], input_size, dataset_type),
        "masks": prepare_masks(sample["segmentations"], num_classes, mask_size, dataset_type),
    }
    return split_into_chunk_items(item, chunk_size)


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


class VideoDataModule(L.LightningDataModule):
    """Video batches from webdataset shards (module docstring; docs/METHODS.md §1.1-1.3).

    train_shards / val_shards: brace patterns relative to `root` (else $SRL_DATA_ROOT), or absolute.
    dataset_type: "movi" or "ytvis". mask_size: metric resolution (default: input_size).
    num_classes: mask channels (MOVi-C 11, MOVi-E 24, YT-VIS 25).
    synthetic: keyword arguments of `ensure_synthetic_dataset` (preset, train_videos, val_videos, seed, ...);
        `prepare_data` then generates that dataset under the root unless it is already there (a different
        one there is an error unless `overwrite: true`); `num_classes` is checked against its object count.
    val_size: evaluate only the first `val_size` validation videos in shard order (`full` protocol).
    val_chunk_size: score every `val_chunk_size`-frame chunk of a validation video as its own video (chunks
        are cut before batching); None scores whole videos.
    short_videos: "skip" (default, as the originals) or "error" for videos shorter than a clip / chunk.
    val_protocol: "full" or "official" (`srl_plugin.data.protocol`); official_loader: the official
        validation settings (`OfficialLoader` fields) that `official` replays.
    """

    def __init__(
        self,
        train_shards: str,
        val_shards: str,
        root: str | None = None,
        dataset_type: str = "movi",
        input_size: int = 336,
        mask_size: int | None = None,
        num_classes: int = 11,
        chunk_size: int = 4,
        batch_size: int = 64,
        val_batch_size: int = 16,
        num_workers: int = 2,
        shuffle_buffer: int = 512,
        h_flip_prob: float = 0.5,
        val_size: int | None = None,
        val_chunk_size: int | None = None,
        short_videos: str = "skip",
        val_protocol: str = "full",
        official_loader: Mapping[str, int | None] | None = None,
        skip_bad_samples: bool = False,
        seed: int = 0,
        synthetic: dict | None = None,
    ) -> None:
        super().__init__()
        self.train_shards = train_shards
        self.val_shards = val_shards
        self.root = root
        self.dataset_type = check_dataset_type(dataset_type)
        self.input_size = input_size
        self.mask_size = input_size if mask_size is None else mask_size
        self.num_classes = num_classes
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.h_flip_prob = h_flip_prob
        self.val_size = val_size
        self.val_chunk_size = val_chunk_size
        if short_videos not in SHORT_VIDEO_POLICIES:
            raise ValueError(f"data.short_videos must be one of {SHORT_VIDEO_POLICIES}, got {short_videos!r}")
        self.short_videos = short_videos
        self.val_protocol = check_protocol(val_protocol)
        self.official_loader = None if official_loader is None else dict(official_loader)
        if self.val_protocol == "official":
            loader = as_official_loader(self.official_loader)
            if loader.chunk_size != val_chunk_size:
                raise ValueError(
                    f"the official loader scores {loader.chunk_size or 'whole'}-frame "
                    f"{'chunks' if loader.chunk_size else 'videos'} but val_chunk_size={val_chunk_size}"
                )
        self.skip_bad_samples = skip_bad_samples
        self.seed = seed
        self.synthetic = None if synthetic is None else dict(synthetic)
        if self.synthetic is not None:
            check_num_classes(num_classes, self.synthetic)
        self.bad_samples = {"train": BadSampleLog("train"), "validation": BadSampleLog("validation")}
        self.short_video_logs = {"train": ShortVideoLog("train"), "validation": ShortVideoLog("validation")}
        self.selection: Selection | None = None

    def data_root(self) -> Path | None:
        """`root`, else $SRL_DATA_ROOT, else None."""
        return resolve_root(self.root)

    def prepare_data(self) -> None:
        """Generate the synthetic dataset under the data root when `synthetic` is set (rank 0 only)."""
        if self.synthetic is None:
            return
        root = self.data_root()
        if root is None:
            raise DataError(f"synthetic data needs a folder: set the data module's root or ${DATA_ROOT_ENV}")
        ensure_synthetic_dataset(root, **self.synthetic)

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _loader(self, pipeline: wds.DataPipeline, prefetch_factor: int) -> DataLoader:
        return DataLoader(pipeline, batch_size=None, **loader_kwargs(self.num_workers, prefetch_factor=prefetch_factor))

    def _train_transform(self) -> Callable[[dict[str, Any], random.Random], list[dict[str, Any]]]:
        return functools.partial(train_item, chunk_size=self.chunk_size, input_size=self.input_size,
                                 h_flip_prob=self.h_flip_prob, dataset_type=self.dataset_type)

    def _val_transform(self) -> Callable[[dict[str, Any], random.Random], list[dict[str, Any]]]:
        return functools.partial(val_items, input_size=self.input_size, mask_size=self.mask_size,
                                 num_classes=self.num_classes, dataset_type=self.dataset_type,
                                 chunk_size=self.val_chunk_size)

    def _short_policy(self, split: str, min_frames: int) -> ShortVideoPolicy:
        return ShortVideoPolicy(min_frames, self.short_videos, self.short_video_logs[split])

    def official_videos(self, paths: list[str]) -> dict[str, dict[str, frozenset[int]]]:
        """Per shard, the videos (by key) and chunks that the official loader scores; sets `self.selection`.

        Videos it passes over for being shorter than a chunk are reported (or refused with
        `short_videos="error"`)."""
        counts = [shard_frame_counts(path) for path in paths]
        selection = official_selection([[frames for _, frames in shard] for shard in counts],
                                       as_official_loader(self.official_loader))
        short = [f"{paths[shard]}:{counts[shard][video][0]}" for shard, video in selection.short]
        if short and self.short_videos == "error":
            raise ShortVideoError(
                f"{len(short)} validation video(s) shorter than a {self.val_chunk_size}-frame chunk in the official "
                f"subset's shards ({', '.join(short[:3])}{' ...' if len(short) > 3 else ''}); set "
                "data.short_videos=skip to skip them (what the original code does)"
            )
        if short:
            log.warning("official protocol: %d validation video(s) shorter than a %d-frame chunk skipped (%s%s)",
                        len(short), self.val_chunk_size, ", ".join(short[:3]), " ..." if len(short) > 3 else "")
        wanted: dict[str, dict[str, set[int]]] = {path: {} for path in paths}
        for item in selection.items:
            wanted[paths[item.shard]].setdefault(counts[item.shard][item.video][0], set()).add(item.chunk)
        self.selection = selection
        return {path: {key: frozenset(chunks) for key, chunks in videos.items()} for path, videos in wanted.items()}

    def setup(self, stage: str) -> None:
        """Before training (``fit``) or validation starts: the first usable sample of each split used goes
        through the batches' own reading, validation and transform, so that missing shards or keys, wrong
        dtypes or shapes and ids >= num_classes stop the run at once instead of at the first validation."""
        if stage == "fit":
            self.check_first_sample("train")
        if stage in ("fit", "validate"):
            self.check_first_sample("validation")

    def check_first_sample(self, split: str) -> dict[str, Any]:
        """The first usable sample of ``split`` ("train" or "validation"), transformed as in its batches.

        Raises a `DataError` naming the shard and the sample, or `NoSamplesError` when no shard holds one.
        """
        training = split == "train"
        pattern = self.train_shards if training else self.val_shards
        paths = expand_shards(pattern, self.root)
        short = ShortVideoPolicy(self.chunk_size if training else self.val_chunk_size or 1, self.short_videos,
                                 ShortVideoLog(split))
        stream = _SampleStream(self._train_transform() if training else self._val_transform(), self.dataset_type,
                               not training, self.skip_bad_samples, BadSampleLog(split), short, self.seed, rank=0)
        first = next(stream({"url": path} for path in paths), None)
        if first is None:
            raise NoSamplesError(
                f"none of the {len(paths)} {split} shard(s) of {pattern!r} holds a usable sample (all empty"
                f"{', or every sample skipped as bad' if self.skip_bad_samples else ''}); regenerate or re-download "
                "them, or point the shard pattern at the right files"
            )
        return first

    def train_dataloader(self) -> DataLoader:
        """Infinite stream of training batches `{"video": (B, chunk_size, 3, S, S)}`."""
        paths = expand_shards(self.train_shards, self.root)
        rank, _ = self._rank_world()
        pipeline = wds.DataPipeline(
            wds.ResampledShards(paths, seed=self.seed, worker_seed=functools.partial(_worker_seed, rank),
                                deterministic=True),
            _SampleStream(self._train_transform(), self.dataset_type, False, self.skip_bad_samples,
                          self.bad_samples["train"], self._short_policy("train", self.chunk_size), self.seed, rank,
                          num_shards=len(set(paths))),
            _Shuffle(self.shuffle_buffer, self.seed, rank),
            wds.batched(self.batch_size, collation_fn=collate_train, partial=False),
        )
        return self._loader(pipeline, prefetch_factor=4)

    def val_dataloader(self) -> DataLoader:
        """Finite, deterministic validation batches (this rank's share of the videos or chunks)."""
        paths = expand_shards(self.val_shards, self.root)
        if self.val_protocol == "official":
            wanted = self.official_videos(paths)
            limits = {path: sys.maxsize if wanted[path] else 0 for path in paths}
        else:
            wanted, limits = None, first_videos_limits(paths, self.val_size)
        rank, world = self._rank_world()
        mine = [path for path in paths if limits[path] > 0][rank::world]
        pipeline = wds.DataPipeline(
            _ShardList(mine),
            wds.split_by_worker,
            _SampleStream(self._val_transform(), self.dataset_type, True, self.skip_bad_samples,
                          self.bad_samples["validation"], self._short_policy("validation", self.val_chunk_size or 1),
                          self.seed, rank, limits, wanted),
            BatchedByLength(self.val_batch_size, collate_val, "video"),
        )
        # one-hot masks are large (16 MOVi videos at 336 px: 1.9 GB), so each worker prefetches only 2 batches
        return self._loader(pipeline, prefetch_factor=2)
