"""Resumable shard writing: a conversion is a fixed plan of shards (name -> sample keys), and a shard already
on disk with exactly its planned keys is kept, so rerunning an interrupted conversion continues it."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from srl_plugin.data.shards import DataError, shard_frame_counts, write_shard


class ConversionError(DataError):
    """Bad conversion input or output; the message names the offending file and the fix."""


@dataclass(frozen=True)
class PlannedShard:
    """One output shard: its path and the keys of its samples, in order."""

    path: Path
    keys: tuple[str, ...]


def plan_shards(out: Path, prefix: str, keys: Sequence[str], per_shard: int) -> list[PlannedShard]:
    """`<out>/<prefix>-%06d.tar` shards of `per_shard` consecutive keys (the last one may hold fewer)."""
    if per_shard < 1:
        raise ValueError(f"samples per shard must be at least 1, got {per_shard}")
    return [PlannedShard(out / f"{prefix}-{index:06d}.tar", tuple(keys[start : start + per_shard]))
            for index, start in enumerate(range(0, len(keys), per_shard))]


def check_no_foreign_shards(out: Path, prefix: str, plan: Sequence[PlannedShard]) -> None:
    """Refuse shards named like this conversion's but outside its plan (left by a conversion with other
    arguments): the wildcard patterns of the configs would read them too."""
    planned = {shard.path.name for shard in plan}
    pattern = re.compile(re.escape(prefix) + r"-\d{6}\.tar")
    foreign = sorted(path.name for path in out.glob(f"{prefix}-*.tar") if pattern.fullmatch(path.name)
                     and path.name not in planned)
    if foreign:
        raise ConversionError(
            f"{out} holds {len(foreign)} shard(s) that this conversion would not write ({', '.join(foreign[:3])}"
            f"{' ...' if len(foreign) > 3 else ''}), left by a conversion with other arguments; delete them or "
            "convert into an empty folder"
        )


def is_complete(shard: PlannedShard) -> bool:
    """Whether `shard` is already written with exactly its planned keys; a shard with other keys is refused."""
    if not shard.path.is_file():
        return False
    found = tuple(key for key, _ in shard_frame_counts(str(shard.path)))
    if found != shard.keys:
        raise ConversionError(
            f"{shard.path} exists but holds other videos ({len(found)} sample(s), first {found[:2]}) than this "
            f"conversion puts there ({len(shard.keys)}, first {shard.keys[:2]}); it was written with other "
            "arguments or sources: delete it or convert into an empty folder"
        )
    return True


def write_plan(plan: Sequence[PlannedShard], make_sample: Callable[[str], Mapping[str, np.ndarray]],
               description: str) -> dict[str, int]:
    """Writes every shard of `plan` not yet complete, with a progress bar over samples.

    make_sample(key) -> {"video": uint8 (T, H, W, 3), ...}. Returns counts: shards written / kept, samples.
    """
    total = sum(len(shard.keys) for shard in plan)
    counts = {"written": 0, "kept": 0, "samples": total}
    with tqdm(total=total, desc=description, unit="video") as progress:
        for shard in plan:
            if is_complete(shard):
                counts["kept"] += 1
                progress.update(len(shard.keys))
                continue
            write_shard(shard.path, _samples(shard.keys, make_sample, progress))
            counts["written"] += 1
    return counts


def _samples(keys: Sequence[str], make_sample: Callable[[str], Mapping[str, np.ndarray]],
             progress: tqdm) -> Iterator[tuple[str, Mapping[str, np.ndarray]]]:
    for key in keys:
        yield key, make_sample(key)
        progress.update(1)
