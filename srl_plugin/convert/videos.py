"""`srl-convert videos`: unlabelled training shards from a user's own videos, so that a method can be trained
on them (`data.train_shards=<prefix>-train-*.tar`).

Every `.mp4` / `.webm` (any container PyAV reads) and every sub-folder of frame images in `--src` (sorted by
name) becomes one sample `<key>.video.npy`, uint8 `(T, H, W, 3)`: every `stride`-th frame, at most
`max_frames` of them, short side resized to `short_side` with `nearest-exact` (the YT-VIS preparation's
resize; 0 keeps the size). Keys are the file / folder names without suffix (dots become underscores).
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from srl_plugin.convert.sharding import ConversionError, check_no_foreign_shards, plan_shards, write_plan
from srl_plugin.convert.ytvis import SHORT_SIDE, resize_nearest_exact
from srl_plugin.data.video_io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, open_videos

VIDEOS_PER_SHARD = 32


def find_videos(src: Path) -> dict[str, Path]:
    """Sample key -> video file or frame folder, in name order. Raises when there is none or keys collide."""
    if not src.is_dir():
        raise ConversionError(f"--src {src} is not a folder of videos (.mp4/.webm files or frame folders)")
    sources: dict[str, Path] = {}
    for path in sorted(src.iterdir()):
        is_video = path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES
        is_frames = path.is_dir() and any(item.suffix.lower() in IMAGE_SUFFIXES for item in path.iterdir())
        if not (is_video or is_frames):
            continue
        key = (path.stem if is_video else path.name).replace(".", "_")
        if key in sources:
            raise ConversionError(f"{path} and {sources[key]} would both be stored as {key!r}; rename one")
        sources[key] = path
    if not sources:
        raise ConversionError(
            f"{src} holds no video: put {', '.join(VIDEO_SUFFIXES)} files or folders of "
            f"{', '.join(IMAGE_SUFFIXES)} frames in it"
        )
    return sources


def read_video(path: Path, stride: int, max_frames: int) -> np.ndarray:
    """uint8 `(T, H, W, 3)`: every `stride`-th frame of `path`, at most `max_frames` (0: all)."""
    try:
        (source,) = list(open_videos(path))
        frames = itertools.islice(source.frames(), 0, None, stride)
        kept = list(itertools.islice(frames, max_frames or None))
    except (ValueError, ImportError) as error:
        raise ConversionError(f"cannot read {path}: {error}") from error
    if not kept:
        raise ConversionError(f"{path} has no frame")
    return np.stack(kept)


def convert_videos(src: Path, out: Path, prefix: str = "videos", short_side: int = SHORT_SIDE, stride: int = 1,
                   max_frames: int = 0, per_shard: int = VIDEOS_PER_SHARD) -> dict[str, Any]:
    """Writes `<out>/<prefix>-train-%06d.tar` (module docstring); resumable. Returns a summary."""
    if stride < 1 or max_frames < 0:
        raise ValueError(f"--stride must be >= 1 and --max-frames >= 0, got {stride} and {max_frames}")
    sources = find_videos(src)
    out.mkdir(parents=True, exist_ok=True)

    def make_sample(key: str) -> Mapping[str, np.ndarray]:
        video = read_video(sources[key], stride, max_frames)
        return {"video": resize_nearest_exact(video, short_side) if short_side else video}

    plan = plan_shards(out, f"{prefix}-train", list(sources), per_shard)
    check_no_foreign_shards(out, f"{prefix}-train", plan)
    counts = write_plan(plan, make_sample, "videos")
    return {"videos": len(sources), "train": {"shards": len(plan), **counts}}
