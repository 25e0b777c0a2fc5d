"""`srl-convert ytvis2021`: the official YouTube-VIS 2021 preparation (VideoSAUR's `data/save_ytvis2021.py`
as its README runs it, which SlotContrast and SRL reuse), written from its documented behaviour:

- source: the *train* folder of YT-VIS 2021 (`JPEGImages/<video>/<frame>.jpg` + `instances.json`); the
  official *valid* split has no masks, so the last `val_videos` (300) videos of `instances.json`, in the order
  the file lists them (video id order in the released file), are held out for evaluation and the others train;
- frames and masks are resized so that the short side is 320 (`nearest-exact` for both; long side
  `floor(long / short * 320)`);
- masks: one channel per non-crowd annotation of the video, in file order, valued by its category id
  (uint8 `(T, H, W, I)`); a frame where the instance is absent (`null` segmentation) is all-zero; a video
  without annotations gets one all-zero channel. Compressed (string) and uncompressed (list) RLE and
  polygons are decoded with pycocotools, as the official code does;
- shards: `ytvis-train-%06d.tar` with 32 videos each, holding `video.npy` only (`--only-videos`), and
  `ytvis-validation-%06d.tar` with 10 videos each, holding `video.npy` and `segmentations.npy`; keys are
  the video ids. With 2,985 annotated videos that makes the official 84 + 30 shards.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from srl_plugin.convert.sharding import ConversionError, check_no_foreign_shards, plan_shards, write_plan

ANNOTATIONS_FILE = "instances.json"
FRAMES_DIR = "JPEGImages"
TRAIN_PER_SHARD = 32
VAL_PER_SHARD = 10
SHORT_SIDE = 320


def short_side_target(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) after scaling the short side to `size` with the official rounding (floor)."""
    if width < height:
        return int(math.floor(float(height) / width * size)), size
    return size, int(math.floor(float(width) / height * size))


def resize_nearest_exact(array: np.ndarray, size: int) -> np.ndarray:
    """uint8 `(T, H, W, C)` -> `(T, H', W', C)` with short side `size`, `nearest-exact` (every output pixel is
    a copy of one input pixel, so resizing the uint8 values equals the official float round trip)."""
    height, width = array.shape[1:3]
    target = short_side_target(height, width, size)
    if target == (height, width):
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
    return F.interpolate(tensor, size=target, mode="nearest-exact").permute(0, 2, 3, 1).contiguous().numpy()


def _pycocotools_mask():
    try:
        from pycocotools import mask
    except ImportError as error:
        raise ImportError("srl-convert ytvis2021 decodes RLE with pycocotools: pip install pycocotools") from error
    return mask


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """One frame's annotation -> uint8 `(height, width)` 0/1 mask: compressed RLE (`counts` string),
    uncompressed RLE (`counts` list), polygon list, or None (instance absent: all-zero)."""
    if segmentation is None:
        return np.zeros((height, width), dtype=np.uint8)
    mask = _pycocotools_mask()
    if isinstance(segmentation, list):
        rle = mask.merge(mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    decoded = mask.decode(rle)
    if decoded.shape != (height, width):
        raise ValueError(f"mask of size {decoded.shape} for a {height}x{width} video")
    return decoded


@dataclass(frozen=True)
class YTVISSource:
    """The train folder of YT-VIS 2021: `videos` (id -> video entry, file order) and `annotations`
    (video id -> its non-crowd annotations, file order)."""

    root: Path
    videos: dict[int, dict[str, Any]]
    annotations: dict[int, list[dict[str, Any]]]

    @classmethod
    def open(cls, root: Path) -> "YTVISSource":
        path = root / ANNOTATIONS_FILE
        if not path.is_file() or not (root / FRAMES_DIR).is_dir():
            raise ConversionError(
                f"{root} is not a YT-VIS 2021 train folder: it needs {FRAMES_DIR}/ and {ANNOTATIONS_FILE} "
                "(unpack train.zip of YouTube-VIS 2021 and give its train/ folder as --src)"
            )
        try:
            dataset = json.loads(path.read_text())
            videos = {int(video["id"]): video for video in dataset["videos"]}
            annotations: dict[int, list[dict[str, Any]]] = {video_id: [] for video_id in videos}
            for annotation in dataset.get("annotations", []):
                if not annotation.get("iscrowd", 0):
                    annotations[int(annotation["video_id"])].append(annotation)
        except (ValueError, KeyError, TypeError) as error:
            raise ConversionError(f"{path} is not a YT-VIS instances file ({type(error).__name__}: {error})") \
                from error
        return cls(root, videos, annotations)

    def frames(self, video_id: int) -> np.ndarray:
        """uint8 `(T, H, W, 3)` frames of a video, checked against its `length`, `height` and `width`."""
        video = self.videos[video_id]
        expected = (int(video["height"]), int(video["width"]), 3)
        frames = []
        for name in video["file_names"]:
            path = self.root / FRAMES_DIR / name
            try:
                with Image.open(path) as image:
                    frame = np.asarray(image, dtype=np.uint8)
            except OSError as error:
                raise ConversionError(f"cannot read frame {path} of video {video_id}: {error}") from error
            if frame.shape != expected:
                raise ConversionError(
                    f"frame {path} of video {video_id} is {frame.shape}, but {ANNOTATIONS_FILE} says "
                    f"{expected} (height, width, RGB)"
                )
            frames.append(frame)
        if len(frames) != int(video["length"]):
            raise ConversionError(f"video {video_id} lists {len(frames)} frames but has length {video['length']}")
        return np.stack(frames)

    def masks(self, video_id: int) -> np.ndarray:
        """uint8 `(T, H, W, I)`: annotation i's mask times its category id (module docstring)."""
        video = self.videos[video_id]
        length, height, width = int(video["length"]), int(video["height"]), int(video["width"])
        annotations = self.annotations[video_id]
        if not annotations:
            return np.zeros((length, height, width, 1), dtype=np.uint8)
        masks = np.zeros((length, height, width, len(annotations)), dtype=np.uint8)
        for channel, annotation in enumerate(annotations):
            segmentations = annotation["segmentations"]
            if len(segmentations) != length:
                raise ConversionError(f"{self.root / ANNOTATIONS_FILE}: annotation {annotation.get('id')} of video "
                                      f"{video_id} has {len(segmentations)} frames, the video {length}")
            for frame, segmentation in enumerate(segmentations):
                try:
                    decoded = decode_segmentation(segmentation, height, width)
                except (ValueError, TypeError, KeyError) as error:
                    raise ConversionError(
                        f"{self.root / ANNOTATIONS_FILE}: cannot decode annotation {annotation.get('id')} of video "
                        f"{video_id}, frame {frame} ({type(error).__name__}: {error})"
                    ) from error
                masks[frame, :, :, channel] = decoded * int(annotation["category_id"])
        return masks


def split_ids(video_ids: list[int], val_videos: int) -> tuple[list[int], list[int]]:
    """(train ids, held-out ids): the last `val_videos` ids in file order are held out."""
    if not 0 < val_videos < len(video_ids):
        raise ConversionError(f"--val-videos must be between 1 and {len(video_ids) - 1} (the source has "
                              f"{len(video_ids)} videos), got {val_videos}")
    return video_ids[:-val_videos], video_ids[-val_videos:]


def convert_ytvis2021(src: Path, out: Path, val_videos: int = 300, short_side: int = SHORT_SIDE,
                      train_per_shard: int = TRAIN_PER_SHARD, val_per_shard: int = VAL_PER_SHARD) -> dict[str, Any]:
    """Writes the train and held-out shards of the module docstring into `out`; resumable. Returns a summary."""
    source = YTVISSource.open(src)
    train_ids, val_ids = split_ids(list(source.videos), val_videos)
    out.mkdir(parents=True, exist_ok=True)

    def resized(array: np.ndarray) -> np.ndarray:
        return resize_nearest_exact(array, short_side) if short_side else array

    def train_sample(key: str) -> Mapping[str, np.ndarray]:
        return {"video": resized(source.frames(int(key)))}

    def val_sample(key: str) -> Mapping[str, np.ndarray]:
        return {"video": resized(source.frames(int(key))), "segmentations": resized(source.masks(int(key)))}

    summary: dict[str, Any] = {"train_videos": len(train_ids), "val_videos": len(val_ids)}
    for split, ids, per_shard, make_sample in (("train", train_ids, train_per_shard, train_sample),
                                               ("validation", val_ids, val_per_shard, val_sample)):
        prefix = f"ytvis-{split}"
        plan = plan_shards(out, prefix, [str(video_id) for video_id in ids], per_shard)
        check_no_foreign_shards(out, prefix, plan)
        counts = write_plan(plan, make_sample, f"ytvis2021 {split}")
        summary[split] = {"shards": len(plan), **counts}
    return summary
