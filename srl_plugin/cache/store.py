"""Build (or resume) a whole cache: manifest handling around `writer.write_split`.

`cache_meta.json` is written before the first shard (splits marked incomplete), updated after every
finished shard, and each split is marked complete at the end. Re-running with the same fingerprint and
source shards resumes; a different fingerprint or shard list is refused unless `overwrite=True`, which
deletes the old cache first.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from srl_plugin.cache.meta import (
    FORMAT_VERSION,
    META_FILE,
    CacheMismatchError,
    fingerprint_diff,
    fingerprint_sha256,
    read_meta,
    rebuild_hint,
    write_meta,
)
from srl_plugin.cache.writer import FeatureExtractor, ShardReader, SplitPlan, write_split


def _fresh_meta(fingerprint: Mapping[str, Any], experiment: str | None, orientations: list[str]) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "experiment": experiment,
        "dtype": "float16",
        "fingerprint": dict(fingerprint),
        "fingerprint_sha256": fingerprint_sha256(fingerprint),
        "orientations": orientations,
        "splits": {},
    }


def _remove_cache(cache_dir: Path, splits: Sequence[str]) -> None:
    for split in splits:
        shutil.rmtree(cache_dir / split, ignore_errors=True)
    (cache_dir / META_FILE).unlink(missing_ok=True)


def _check_resumable(meta: Mapping[str, Any], fingerprint: Mapping[str, Any], plans: Sequence[SplitPlan],
                     cache_dir: Path, experiment: str | None) -> None:
    problems = fingerprint_diff(meta["fingerprint"], fingerprint)
    for plan in plans:
        recorded = meta["splits"].get(plan.split)
        if recorded is not None and recorded["source_shards"] != list(plan.shards):
            problems.append(f"splits.{plan.split}: cache was built from other source shards")
    if problems:
        raise CacheMismatchError(
            f"{cache_dir} already holds a cache for another configuration:\n  " + "\n  ".join(problems)
            + f"\nOverwrite it with: {rebuild_hint(experiment, cache_dir)} (or choose another cache.dir)"
        )


def build_cache(
    cache_dir: Path,
    fingerprint: Mapping[str, Any],
    plans: Sequence[SplitPlan],
    readers: Mapping[str, ShardReader],
    extract: FeatureExtractor,
    experiment: str | None = None,
    overwrite: bool = False,
    num_workers: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Cache every split in `plans` (reading split `s` with `readers[s]`) and return the final manifest."""
    cache_dir = Path(cache_dir)
    orientations = ["orig", "hflip"] if any(plan.flip for plan in plans) else ["orig"]
    if overwrite:
        _remove_cache(cache_dir, [plan.split for plan in plans])
    if (cache_dir / META_FILE).is_file():
        meta = read_meta(cache_dir, experiment)
        _check_resumable(meta, fingerprint, plans, cache_dir, experiment)
    else:
        meta = _fresh_meta(fingerprint, experiment, orientations)
    for plan in plans:
        entry = meta["splits"].setdefault(plan.split, {"source_shards": list(plan.shards), "shards": {}})
        entry.update(complete=False, chunk_size=plan.chunk_size, flip=plan.flip)
    write_meta(cache_dir, meta)

    for plan in plans:
        entry = meta["splits"][plan.split]

        def record(name: str, videos: int, entry: dict[str, Any] = entry) -> None:
            entry["shards"][name] = videos
            write_meta(cache_dir, meta)

        counts = write_split(
            cache_dir, plan, readers[plan.split], extract, meta["fingerprint_sha256"],
            num_workers=num_workers, progress=progress, on_shard_done=record,
        )
        entry["shards"] = {name: counts[name] for name in sorted(counts)}
        entry.update(complete=True, num_videos=sum(counts.values()))
        write_meta(cache_dir, meta)
    return meta
