"""Reading a user's video frame by frame: .mp4/.webm (PyAV), a folder of frames (PIL) or a webdataset shard.

Every source yields ``uint8`` RGB frames ``(H, W, 3)`` one at a time, so a long video never has to fit in
memory (a shard sample is stored as one array, so it is read whole, one sample at a time).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SHARD_SUFFIXES = (".tar",)
DEFAULT_FPS = 10.0


@dataclass
class VideoSource:
    """One video to run: a name, its frame count (``None`` when the container does not say) and frames."""

    name: str
    num_frames: int | None
    fps: float
    _open: Callable[[], Iterator[np.ndarray]] = field(repr=False)

    def frames(self) -> Iterator[np.ndarray]:
        """Yields ``uint8`` ``(H, W, 3)`` RGB frames in order."""
        return self._open()


def _natural_key(path: Path) -> list[object]:
    """Sort key under which ``frame_2`` comes before ``frame_10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def require_av():
    """The ``av`` module, or an ImportError that says how to install it."""
    try:
        import av
    except ImportError as error:
        raise ImportError(
            "reading or writing .mp4/.webm needs PyAV: pip install 'srl-plugin[video]' (or pip install av)"
        ) from error
    return av


def _video_file(path: Path) -> VideoSource:
    av = require_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} has no video stream")
            stream = container.streams.video[0]
            num_frames = int(stream.frames) or None
            fps = float(stream.average_rate) if stream.average_rate else DEFAULT_FPS
    except av.FFmpegError as error:
        raise ValueError(f"cannot read video {path}: {error}. Is it a valid .mp4/.webm file?") from error

    def frames() -> Iterator[np.ndarray]:
        try:
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as error:
            raise ValueError(f"decoding {path} failed: {error}") from error

    return VideoSource(path.stem, num_frames, fps, frames)


def _frame_folder(path: Path) -> VideoSource:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    if not files:
        raise ValueError(f"folder {path} holds no frames ({', '.join(IMAGE_SUFFIXES)} files)")

    def frames() -> Iterator[np.ndarray]:
        size = None
        for file in files:
            try:
                with Image.open(file) as image:
                    frame = np.asarray(image.convert("RGB"))
            except OSError as error:
                raise ValueError(f"cannot read frame {file}: {error}") from error
            if size is not None and frame.shape != size:
                raise ValueError(
                    f"frame {file} is {frame.shape[1]}x{frame.shape[0]} but earlier frames are {size[1]}x{size[0]}"
                )
            size = frame.shape
            yield frame

    return VideoSource(path.name, len(files), DEFAULT_FPS, frames)


def _shard_videos(path: Path, key: str | None, mask_channels: int | None) -> Iterator[VideoSource]:
    """One source per sample (or only sample ``key``) of a webdataset shard, read one sample at a time with
    :func:`srl_plugin.data.shards.iter_shard_samples` (``video.npy`` uint8 ``(T, H, W, 3)``)."""
    from srl_plugin.data.shards import DataError, iter_shard_samples

    found = False
    try:
        for sample in iter_shard_samples(str(path), mask_channels):
            if key is not None and sample["__key__"] != key:
                continue
            found = True
            video = sample["video"]
            yield VideoSource(str(sample["__key__"]), len(video), DEFAULT_FPS, lambda v=video: iter(v))
    except DataError as error:
        raise ValueError(f"cannot read webdataset shard {path}: {error}") from error
    if not found:
        raise ValueError(f"shard {path} has no sample" + (f" with key '{key}'" if key else ""))


def is_shard(path: str | Path) -> bool:
    """Whether ``path`` names a webdataset shard (one output folder per sample)."""
    return Path(path).suffix.lower() in SHARD_SUFFIXES


def open_videos(path: str | Path, key: str | None = None, mask_channels: int | None = 1) -> Iterator[VideoSource]:
    """The videos in ``path``: one for a video file or frame folder, one per sample (or just ``key``) for a
    shard (``mask_channels``: the channel count its stored segmentations must have, the dataset family's,
    see :func:`srl_plugin.data.shards.validate_sample`). Files are checked before this returns;
    shard samples are decoded one at a time while iterating.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unsupported suffix, unreadable file, empty folder or shard.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    if path.is_dir():
        return iter([_frame_folder(path)])
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return iter([_video_file(path)])
    if is_shard(path):
        return _shard_videos(path, key, mask_channels)
    raise ValueError(
        f"unsupported input {path}: give a video ({', '.join(VIDEO_SUFFIXES)}), a folder of frames or a "
        "webdataset shard (.tar)"
    )
