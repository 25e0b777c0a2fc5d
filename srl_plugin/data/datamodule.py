"""The one data module: `SampleDataModule` turns a sample source (`srl_plugin.data.sources`) into the batches
of docs/ARCHITECTURE.md ("Batches"); `VideoDataModule` is it over decoded video shards (the `data` node of
`train.yaml`), the frozen-feature cache is it over cached features (`srl_plugin.cache.CachedFeatureDataModule`).

Training (docs/METHODS.md §1.2): shards resampled with replacement (an infinite stream), one random
chunk-aligned clip per video (drawn by the source), a shuffle buffer, batches formed in each worker.

Validation (§1.3): whole videos in shard order, with `"__key__": list[str]` and `"chunk_index": long (B,)`.
Finite and deterministic. With `val_chunk_size` c (VideoSAUR on YT-VIS: 6) every video is first cut into
its `floor(T / c)` non-overlapping c-frame chunks (keys `<key>_<i>`, remainder dropped), and the chunks are
batched, so videos of any lengths mix. `val_protocol` picks the scored subset (`srl_plugin.data.protocol`):
`full` (every video, or the first `val_size`) or `official` (what the official data module scores on one
GPU, from `official_loader`). Shards are split between DDP ranks (round robin, decided in the main process
from the trainer / torch.distributed, so spawned workers cannot get it wrong) and then between DataLoader
workers (`webdataset.split_by_worker`): every video is seen by exactly one rank and worker. Ranks may get
different numbers of batches (no padding); metrics must be synchronised at `compute` (torchmetrics does),
not per step. `val_size` keeps the first `val_size` videos in shard order, whatever the number of ranks and
workers.

Videos shorter than a training clip (or than a validation chunk) are skipped, as the originals do, with a
warning per video and a count (`short_video_logs[split]`); `short_videos="error"` stops instead.

Bad input raises a `DataError` naming the shard and the sample (see `shards.py`). With
`skip_bad_samples=True` bad samples (and the unreadable rest of a corrupted shard) are skipped, each skip is
logged as a warning with a running count, and a summary is logged at the end of every validation pass;
`bad_samples[split]` holds the counts of the main process (all of them when `num_workers=0`).
"""
from __future__ import annotations

import functools
import inspect
import logging
import sys
from pathlib import Path
from typing import Any, Mapping

import lightning as L
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from srl_plugin.data.chunks import BatchedByLength
from srl_plugin.data.loading import loader_kwargs
from srl_plugin.data.pipeline import (
    SHORT_VIDEO_POLICIES,
    SPLITS,
    BadSampleLog,
    SampleStream,
    ShardList,
    ShortVideoError,
    ShortVideoLog,
    ShortVideoPolicy,
    Shuffle,
    collate,
    first_videos_limits,
    worker_seed,
)
from srl_plugin.data.protocol import Selection, as_official_loader, check_protocol, official_selection
from srl_plugin.data.shards import DATA_ROOT_ENV, DataError, NoSamplesError, resolve_root
from srl_plugin.data.sources import SampleSource, VideoShards
from srl_plugin.data.synthetic import check_num_classes, ensure_synthetic_dataset

log = logging.getLogger(__name__)


class SampleDataModule(L.LightningDataModule):
    """Training and validation batches of `source` (module docstring; docs/METHODS.md §1.1-1.3).

    val_size: evaluate only the first `val_size` validation videos in shard order (`full` protocol).
    val_chunk_size: score every `val_chunk_size`-frame chunk of a validation video as its own video (chunks
        are cut before batching); None scores whole videos.
    short_videos: "skip" (default, as the originals) or "error" for videos shorter than a clip / chunk.
    val_protocol: "full" or "official" (`srl_plugin.data.protocol`); official_loader: the official
        validation settings (`OfficialLoader` fields) that `official` replays.
    skip_bad_samples: skip (and count) bad samples and corrupted shards instead of stopping.
    seed: seeds resampling, clip draws and shuffling (with the rank, the worker and the pass).
    pin_memory: None pins host memory when CUDA is available.
    """

    def __init__(
        self,
        source: SampleSource,
        batch_size: int = 64,
        val_batch_size: int = 16,
        num_workers: int = 0,
        shuffle_buffer: int = 512,
        val_size: int | None = None,
        val_chunk_size: int | None = None,
        short_videos: str = "skip",
        val_protocol: str = "full",
        official_loader: Mapping[str, int | None] | None = None,
        skip_bad_samples: bool = False,
        seed: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.val_size = None if val_size is None else int(val_size)
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
        self.pin_memory = pin_memory
        self.bad_samples = {split: BadSampleLog(split) for split in SPLITS}
        self.short_video_logs = {split: ShortVideoLog(split) for split in SPLITS}
        self.selection: Selection | None = None

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _loader(self, pipeline: wds.DataPipeline, prefetch_factor: int) -> DataLoader:
        return DataLoader(pipeline, batch_size=None,
                          **loader_kwargs(self.num_workers, self.pin_memory, prefetch_factor=prefetch_factor))

    def _stream(self, split: str, rank: int, bad_samples: BadSampleLog, short_log: ShortVideoLog,
                **selection: Any) -> SampleStream:
        """The `SampleStream` of `split` on `rank`; `selection`: `limits` / `wanted` / `num_shards`."""
        min_frames = self.source.clip_frames if split == "train" else self.val_chunk_size or 1
        return SampleStream(self.source, split, self.skip_bad_samples, bad_samples,
                            ShortVideoPolicy(min_frames, self.short_videos, short_log), self.seed, rank,
                            val_chunk_size=self.val_chunk_size, **selection)

    def official_videos(self, paths: list[str]) -> dict[str, dict[str, frozenset[int]]]:
        """Per shard, the videos (by key) and chunks that the official loader scores; sets `self.selection`.

        Videos it passes over for being shorter than a chunk are reported (or refused with
        `short_videos="error"`)."""
        counts = [self.source.frame_counts(path) for path in paths]
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
        through the batches' own reading, checks and transform, so that missing shards or keys, wrong
        dtypes or shapes and ids >= num_classes stop the run at once instead of at the first validation."""
        if stage == "fit":
            self.check_first_sample("train")
        if stage in ("fit", "validate"):
            self.check_first_sample("validation")

    def check_first_sample(self, split: str) -> dict[str, Any]:
        """The first usable item of ``split`` ("train" or "validation"), transformed as in its batches.

        Raises a `DataError` naming the shard and the sample, or `NoSamplesError` when no shard holds one.
        """
        paths = self.source.shards(split)
        stream = self._stream(split, 0, BadSampleLog(split), ShortVideoLog(split))
        first = next(stream({"url": path} for path in paths), None)
        if first is None:
            raise NoSamplesError(
                f"none of the {len(paths)} {split} shard(s) ({', '.join(paths[:2])}{' ...' if len(paths) > 2 else ''})"
                f" holds a usable sample (all empty{', or every sample skipped as bad' if self.skip_bad_samples else ''}"
                "); regenerate or re-download them, or point the shard pattern at the right files"
            )
        return first

    def train_dataloader(self) -> DataLoader:
        """Infinite stream of training batches (the source's clips, `(B, chunk_size, ...)`)."""
        paths = self.source.shards("train")
        rank, _ = self._rank_world()
        pipeline = wds.DataPipeline(
            wds.ResampledShards(paths, seed=self.seed, worker_seed=functools.partial(worker_seed, rank),
                               deterministic=True),
            self._stream("train", rank, self.bad_samples["train"], self.short_video_logs["train"],
                         num_shards=len(set(paths))),
            Shuffle(self.shuffle_buffer, self.seed, rank),
            wds.batched(self.batch_size, collation_fn=collate, partial=False),
        )
        return self._loader(pipeline, prefetch_factor=4)

    def val_dataloader(self) -> DataLoader:
        """Finite, deterministic validation batches (this rank's share of the videos or chunks)."""
        paths = self.source.shards("validation")
        if self.val_protocol == "official":
            wanted = self.official_videos(paths)
            limits = {path: sys.maxsize if wanted[path] else 0 for path in paths}
        else:
            wanted, limits = None, first_videos_limits(paths, self.val_size)
        rank, world = self._rank_world()
        mine = [path for path in paths if limits[path] > 0][rank::world]
        pipeline = wds.DataPipeline(
            ShardList(mine),
            wds.split_by_worker,
            self._stream("validation", rank, self.bad_samples["validation"], self.short_video_logs["validation"],
                         limits=limits, wanted=wanted),
            BatchedByLength(self.val_batch_size, collate, "masks"),
        )
        # one-hot masks are large (16 MOVi videos at 336 px: 1.9 GB), so each worker prefetches only 2 batches
        return self._loader(pipeline, prefetch_factor=2)


def pipeline_arguments(data: Mapping[str, Any]) -> dict[str, Any]:
    """The `SampleDataModule` arguments (all but `source`) that a run's `data` config node sets, so that a
    data module over another source (the feature cache) gets the video data module's batch sizes, workers,
    buffer, limits, policies and seed."""
    names = [name for name in inspect.signature(SampleDataModule.__init__).parameters if name not in ("self", "source")]
    return {name: data[name] for name in names if name in data}


class VideoDataModule(SampleDataModule):
    """`SampleDataModule` over decoded video shards (`VideoShards`): training batches `{"video": float32
    (B, chunk_size, 3, S, S)}`, ImageNet-normalised, resized (MOVi) or short-side resized and randomly cropped
    (YT-VIS), flipped as a whole with probability `h_flip_prob`; validation batches `{"video": (B, T, 3, S, S),
    "masks": float32 one-hot (B, T, C, Hm, Wm), "__key__", "chunk_index"}`.

    train_shards / val_shards: brace patterns relative to `root` (else $SRL_DATA_ROOT), or absolute.
    dataset_type: "movi" or "ytvis". mask_size: metric resolution (default: input_size).
    num_classes: mask channels (MOVi-C 11, MOVi-E 24, YT-VIS 25).
    synthetic: keyword arguments of `ensure_synthetic_dataset` (preset, train_videos, val_videos, seed, ...);
        `prepare_data` then generates that dataset under the root unless it is already there (a different
        one there is an error unless `overwrite: true`); `num_classes` is checked against its object count.
    The other arguments are `SampleDataModule`'s.
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
        h_flip_prob: float = 0.5,
        synthetic: dict | None = None,
        **pipeline: Any,
    ) -> None:
        source = VideoShards(train_shards, val_shards, root, dataset_type, input_size,
                             input_size if mask_size is None else mask_size, num_classes, chunk_size, h_flip_prob)
        super().__init__(source, **pipeline)
        self.root = root
        self.synthetic = None if synthetic is None else dict(synthetic)
        if self.synthetic is not None:
            check_num_classes(num_classes, self.synthetic)

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
