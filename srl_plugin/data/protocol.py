"""Evaluation protocols: which held-out videos (or chunks) a validation pass scores.

`full` scores every held-out video (the first `val_size` in shard order when that is set). `official` scores
exactly the subset that the official repository's validation data module yields on one GPU, which is what
its published numbers were computed on. The official module (VideoSAUR's `WebdatasetDataModule`, copied
unchanged into SlotContrast and SRL) sizes an epoch from its config instead of from the data:

1. every DataLoader worker `w` reads the shards `w, w + W, w + 2W, ...` (W workers) and pads its stream of
   videos with dummy videos up to `ceil(S / W) * ceil(val_size / S)` (S shards; padding never truncates);
2. with `use_chunks`, every video becomes its `floor(T / c)` non-overlapping `c`-frame chunks (the padding
   videos too; a video shorter than `c` yields nothing);
3. each worker batches its stream (`batch_size`, last batch partial); the loader takes batches from the
   workers in turn (round robin, skipping exhausted workers) and stops after
   `ceil(padded videos per worker * W / batch_size)` batches.

So SlotContrast / SRL on YT-VIS (val_size 200, 30 shards, 1 worker, batch 1) score the first 210 of the 300
held-out videos; VideoSAUR on YT-VIS (val_size 200, 30 shards, 8 workers, batch 16, 6-frame chunks) scores
14 batches = 224 chunks, the first 32 chunks of shards 0-5 and the first 16 of shards 6-7; MOVi (250 videos
in 8 shards) is scored whole. `official_selection` replays those rules on the frame counts of the shards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

PROTOCOLS = ("full", "official")


@dataclass(frozen=True)
class OfficialLoader:
    """The validation settings of an official config (`dataset:` section) that decide what it scores.

    val_size: `dataset.val_size`; num_workers: `dataset.num_val_workers`; batch_size: `dataset.val_batch_size`;
    chunk_size: `val_pipeline.chunk_size` when `use_chunks` is true, else None (whole videos).
    """

    val_size: int
    num_workers: int
    batch_size: int
    chunk_size: int | None = None


@dataclass(frozen=True)
class ScoredItem:
    """One scored element: video `video` of shard `shard` (indices in shard order), chunk `chunk` (0 for
    whole videos)."""

    shard: int
    video: int
    chunk: int


@dataclass(frozen=True)
class Selection:
    """What the official loader scores (`items`, in the order it yields them) and the videos its stream
    passed over because they are shorter than one chunk (`short`, as (shard, video))."""

    items: tuple[ScoredItem, ...]
    short: tuple[tuple[int, int], ...]

    @property
    def num_videos(self) -> int:
        return len({(item.shard, item.video) for item in self.items})

    @property
    def shards(self) -> list[int]:
        return sorted({item.shard for item in self.items})


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"evaluation.protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return protocol


def as_official_loader(settings: Mapping[str, int | None] | None) -> OfficialLoader:
    """`evaluation.official_loader` of an experiment as an `OfficialLoader`; a clear error when it has none."""
    if not settings:
        raise ValueError(
            "evaluation.protocol=official needs evaluation.official_loader (the official repository's validation "
            "settings), and this experiment has none (no official recipe, e.g. the synthetic data); use "
            "evaluation.protocol=full"
        )
    return OfficialLoader(**settings)


def validation_settings(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """A data module's validation arguments from a run config's `evaluation` node (a plain mapping):
    `val_chunk_size` (`independent_chunks`), `val_protocol` (`protocol`) and `official_loader` (checked when
    the protocol is `official`)."""
    protocol = check_protocol(evaluation.get("protocol", "full"))
    official = evaluation.get("official_loader")
    if protocol == "official":
        as_official_loader(official)
    return {"val_chunk_size": evaluation.get("independent_chunks"), "val_protocol": protocol,
            "official_loader": None if official is None else dict(official)}


def official_selection(frame_counts: Sequence[Sequence[int]], loader: OfficialLoader) -> Selection:
    """Replays the official validation loader (module docstring) on one GPU.

    frame_counts: per shard, in shard order, the frame count of each video in the shard (in sample order).
    Returns the scored items in yield order; padding never appears in them.
    """
    num_shards = len(frame_counts)
    workers = max(loader.num_workers, 1)
    if num_shards == 0:
        raise ValueError("the official protocol needs at least one validation shard")
    if loader.num_workers > num_shards:
        raise ValueError(
            f"the official loader uses {loader.num_workers} workers but there are only {num_shards} validation "
            "shards (the official data module refuses this); use evaluation.protocol=full"
        )
    padded = math.ceil(num_shards / workers) * math.ceil(loader.val_size / num_shards)
    num_batches = math.ceil(padded * workers / loader.batch_size)
    batches_per_worker, short = [], []
    for worker in range(workers):
        videos = [(shard, index, frames) for shard in range(worker, num_shards, workers)
                  for index, frames in enumerate(frame_counts[shard])]
        padding = [(None, None, videos[0][2] if videos else 0)] * max(padded - len(videos), 0)
        stream: list[ScoredItem | None] = []
        for shard, index, frames in videos + padding:
            if loader.chunk_size is None:
                stream.append(None if shard is None else ScoredItem(shard, index, 0))
                continue
            chunks = frames // loader.chunk_size
            if chunks == 0 and shard is not None:
                short.append((shard, index))
            stream += [None if shard is None else ScoredItem(shard, index, chunk) for chunk in range(chunks)]
        batches_per_worker.append(
            [stream[start : start + loader.batch_size] for start in range(0, len(stream), loader.batch_size)]
        )
    taken = _round_robin(batches_per_worker, num_batches)
    items = tuple(item for batch in taken for item in batch if item is not None)
    consumed_short = tuple(video for video in short if _was_read(video, items, workers))
    return Selection(items, consumed_short)


def _round_robin(batches_per_worker: list[list[list]], limit: int) -> list[list]:
    """The first `limit` batches taken from the workers in turn, skipping workers that have run out."""
    taken, cursors = [], [0] * len(batches_per_worker)
    while len(taken) < limit and any(c < len(b) for c, b in zip(cursors, batches_per_worker)):
        for worker, batches in enumerate(batches_per_worker):
            if len(taken) == limit:
                break
            if cursors[worker] < len(batches):
                taken.append(batches[cursors[worker]])
                cursors[worker] += 1
    return taken


def _was_read(video: tuple[int, int], items: tuple[ScoredItem, ...], workers: int) -> bool:
    """Whether the loader's stream passed `video` before it stopped: some scored item of the same worker
    comes after it."""
    shard, index = video
    return any(item.shard % workers == shard % workers and (item.shard, item.video) > (shard, index)
               for item in items)
