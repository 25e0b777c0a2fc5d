"""Synthetic MOVi-like dataset on disk: webdataset shards laid out like the MOVi shards (docs/METHODS.md §1.1).

Files written under `root` (fixed names, so configs can address them with brace patterns):

- `synthetic-train-{000000..<train_shards-1>}.tar` and `synthetic-validation-{000000..<val_shards-1>}.tar`
  (`synthetic_shard_patterns` gives the patterns), samples keyed `%06d` (index within the split), each with
  `video.npy` uint8 (T, H, W, 3) and `segmentations.npy` uint8 (T, H, W, 1) (both splits carry the ground
  truth; MOVi's train shards hold only `video`, which the training pipeline is the only one to read).
  Video `i` of shard `s` of `n` videos in `S` shards: `s*n//S <= i < (s+1)*n//S`.
- `synthetic_manifest.json`: the generation parameters, the patterns and the per-shard counts. It is
  written last (atomically); a dataset without it is (re)generated, one with other parameters is replaced
  only when asked (`overwrite`), otherwise it is an error.
- `.synthetic.lock`: held (``flock``) while a process generates, so that runs started together on a fresh
  folder generate once: the others wait, then find the finished dataset.

Video `i` of a split depends only on (seed, split, i) and the generation parameters, not on the shard count.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from srl_plugin.atomic import write_json_atomic
from srl_plugin.data.render import PRESETS, SyntheticConfig, generate_video
from srl_plugin.data.shards import DataError, write_shard

log = logging.getLogger(__name__)

MANIFEST = "synthetic_manifest.json"
FORMAT_VERSION = 1
SPLITS = ("train", "validation")
DEFAULT_TRAIN_SHARDS = 16
DEFAULT_VAL_SHARDS = 8
TMP_PREFIX = ".synthetic-tmp-"
LOCK_FILE = ".synthetic.lock"


def shard_name(split: str, index: int) -> str:
    """File name of shard `index` of `split` ("train" or "validation")."""
    return f"synthetic-{split}-{index:06d}.tar"


def synthetic_shard_patterns(train_shards: int = DEFAULT_TRAIN_SHARDS,
                             val_shards: int = DEFAULT_VAL_SHARDS) -> dict[str, str]:
    """Brace patterns (relative to the dataset root) of the two splits, keys "train" and "validation"."""
    return {
        split: f"synthetic-{split}-{{000000..{count - 1:06d}}}.tar"
        for split, count in (("train", train_shards), ("validation", val_shards))
    }


def _parameters(config: SyntheticConfig, preset: str, seed: int, videos: dict[str, int],
                shards: dict[str, int]) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION, "preset": preset, "config": config.as_dict(), "seed": seed,
        "videos": videos, "shards": shards,
    }


def generate_split(out: Path, config: SyntheticConfig, split: str, videos: int, shards: int, seed: int,
                   on_video: Callable[[], None] | None = None) -> dict[str, int]:
    """Write the shards of one split into `out`; returns {shard file name: video count}."""
    counts = {}
    for shard in range(shards):
        start, stop = shard * videos // shards, (shard + 1) * videos // shards

        def samples(start: int = start, stop: int = stop):
            for index in range(start, stop):
                video, segmentations = generate_video(config, seed, split, index)
                yield f"{index:06d}", {"video": video, "segmentations": segmentations}
                if on_video is not None:
                    on_video()

        counts[shard_name(split, shard)] = write_shard(out / shard_name(split, shard), samples())
    return counts


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class SyntheticDatasetMismatchError(DataError, ValueError):
    """The folder already holds a synthetic dataset made with other parameters (it is never replaced silently)."""


def _is_complete(root: Path, manifest: dict[str, Any] | None, parameters: dict[str, Any]) -> bool:
    if manifest is None or manifest.get("parameters") != parameters:
        return False
    return all((root / name).is_file() for split in SPLITS for name in manifest["counts"][split])


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``name: old -> new`` for every leaf of two parameter dicts that differs."""
    found = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            found += _differences(before, after, f"{prefix}{key}.")
        elif before != after:
            found.append(f"{prefix}{key}: {before} -> {after}")
    return found


def _check_replaceable(root: Path, manifest: dict[str, Any] | None, parameters: dict[str, Any]) -> None:
    """Raises `SyntheticDatasetMismatchError` when `root` holds a dataset made with other parameters."""
    existing = None if manifest is None else manifest.get("parameters")
    if existing is None or existing == parameters:
        return
    raise SyntheticDatasetMismatchError(
        f"{root} already holds a synthetic dataset made with other parameters "
        f"({'; '.join(_differences(existing, parameters))}). It is not replaced silently. Fix: use another "
        "folder (--out, data.root=... or $SRL_DATA_ROOT), delete this one, or allow replacing it "
        "(srl-make-synthetic --overwrite, or data.synthetic.overwrite=true)."
    )


def max_instance_id(preset: str = "movi_c_like", **options: Any) -> int:
    """The largest instance id a synthetic dataset of these `ensure_synthetic_dataset` options can contain
    (the most objects per video); masks need `num_classes >= max_instance_id + 1` channels."""
    fields = {key: value for key, value in options.items() if key in SyntheticConfig.__dataclass_fields__}
    return SyntheticConfig.from_preset(preset, **fields).num_objects[1]


def check_num_classes(num_classes: int, synthetic: dict[str, Any]) -> None:
    """Raises a `ValueError` naming the fix when `num_classes` mask channels cannot hold every instance id of
    the synthetic dataset described by `synthetic` (keyword arguments of `ensure_synthetic_dataset`)."""
    largest = max_instance_id(**synthetic)
    if num_classes < largest + 1:
        raise ValueError(
            f"data.num_classes={num_classes} is too small for the synthetic data: up to {largest} objects per "
            f"video (data.synthetic.num_objects) need ids 0..{largest}. Fix: set data.num_classes={largest + 1}, "
            f"or lower the maximum of data.synthetic.num_objects to {num_classes - 1}."
        )


def ensure_synthetic_dataset(
    root: str | os.PathLike[str],
    preset: str = "movi_c_like",
    train_videos: int = 1000,
    val_videos: int = 128,
    seed: int = 0,
    frames: int | None = None,
    size: int | None = None,
    train_shards: int = DEFAULT_TRAIN_SHARDS,
    val_shards: int = DEFAULT_VAL_SHARDS,
    progress: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Generate the synthetic dataset under `root` unless the same one is already there; returns `root`.

    preset: "easy" or "movi_c_like" (`render.PRESETS`); `frames`, `size` and `options` (any other
    `SyntheticConfig` field, e.g. `num_objects=[3, 6]`) override it. Idempotent: the manifest records the
    parameters and the dataset is generated only when it is absent or incomplete. A dataset made with other
    parameters raises `SyntheticDatasetMismatchError` (naming the differences) unless `overwrite` allows
    replacing it. Generation happens in a temporary folder inside `root`; the manifest is written last, so
    an interrupted run never leaves a dataset that looks complete.
    """
    if min(train_videos, val_videos) < 0 or min(train_shards, val_shards) < 1:
        raise ValueError("video counts must be >= 0 and shard counts >= 1")
    config = SyntheticConfig.from_preset(preset, frames=frames, size=size, **options)
    root = Path(root).expanduser()
    videos = {"train": train_videos, "validation": val_videos}
    shards = {"train": train_shards, "validation": val_shards}
    parameters = _parameters(config, preset, seed, videos, shards)
    if _is_complete(root, _read_manifest(root), parameters):
        return root
    root.mkdir(parents=True, exist_ok=True)
    with _generation_lock(root):
        manifest = _read_manifest(root)
        if _is_complete(root, manifest, parameters):
            return root
        if not overwrite:
            _check_replaceable(root, manifest, parameters)
        _generate(root, config, preset, parameters, manifest, progress)
    return root


@contextlib.contextmanager
def _generation_lock(root: Path):
    """Holds an exclusive ``flock`` on ``root/.synthetic.lock``, waiting (with a logged warning) for another
    process that generates into the same folder. The kernel releases it when its holder dies."""
    handle = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another process is generating the synthetic dataset in %s; waiting for it", root)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def _generate(root: Path, config: SyntheticConfig, preset: str, parameters: dict[str, Any],
              manifest: dict[str, Any] | None, progress: bool) -> None:
    """Renders every video into a temporary folder, moves the shards into `root` (replacing those of an older
    `manifest`) and writes the manifest last. The caller holds the generation lock."""
    seed, videos, shards = parameters["seed"], parameters["videos"], parameters["shards"]
    for stale in root.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = root / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    work.mkdir()
    started = time.perf_counter()
    try:
        bar = _progress_bar(sum(videos.values()), progress)
        counts = {
            split: generate_split(work, config, split, videos[split], shards[split], seed, bar.update if bar else None)
            for split in SPLITS
        }
        if bar is not None:
            bar.close()
        (root / MANIFEST).unlink(missing_ok=True)
        if manifest is not None:
            for split in SPLITS:
                for name in manifest.get("counts", {}).get(split, {}):
                    (root / name).unlink(missing_ok=True)
        for split in SPLITS:
            for name in counts[split]:
                os.replace(work / name, root / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - started
    write_json_atomic(root / MANIFEST, sort_keys=True, record={
        "parameters": parameters,
        "patterns": synthetic_shard_patterns(shards["train"], shards["validation"]),
        "counts": counts,
        "generation_seconds": round(seconds, 3),
    })
    log.info("generated %d synthetic videos (%s) in %s in %.1f s", sum(videos.values()), preset, root, seconds)


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="video", desc="synthetic videos")


__all__ = [
    "PRESETS", "SyntheticConfig", "SyntheticDatasetMismatchError", "check_num_classes", "ensure_synthetic_dataset",
    "max_instance_id", "generate_split", "shard_name",
    "synthetic_shard_patterns", "generate_video",
]
