"""Write a feature cache: run the frozen backbone once over every source shard of a split.

One cache shard is written per source shard, under the source shard's name, first to a hidden temporary
file and then renamed atomically; a shard whose final file exists is complete and is skipped when the run
is repeated (resuming an interrupted run). Source shards are decoded in DataLoader workers (whole shards
per worker) while the main process runs the backbone and writes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from srl_plugin.atomic import StagedFile
from srl_plugin.cache.format import ORIENTATIONS, encode_train_video, encode_val_video
from srl_plugin.data.pipeline import count_shard_samples


@dataclass
class SourceVideo:
    """One decoded source video after the deterministic part of the split's transform.

    video: float32 `(T, 3, H, W)` (resized, normalised; no chunk sampling, no flip).
    masks: float32 one-hot `(T, C, Hm, Wm)` for validation videos, else None.
    """

    key: str
    video: torch.Tensor
    masks: torch.Tensor | None = None


class FeatureExtractor(Protocol):
    """Frozen backbone: video `(B, T, 3, H, W)` -> (features `(B, T, N, D_f)`, keys `(B, T, N, D_f)` or None)."""

    def __call__(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...


ShardReader = Callable[[str], Iterator[SourceVideo]]


def backbone_extractor(backbone: torch.nn.Module, device: torch.device | str = "cpu") -> FeatureExtractor:
    """Adapt a `FrozenViTBackbone` (dict output) to the `FeatureExtractor` protocol, running on `device`."""
    backbone = backbone.to(device).eval()

    def extract(video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        with torch.inference_mode():
            outputs = backbone(video.to(device, non_blocking=True))
        return outputs["backbone_features"], outputs.get("backbone_keys")

    return extract


@dataclass(frozen=True)
class SplitPlan:
    """What to cache for one split.

    chunk_size: training clip length (every chunk-aligned clip is cached); None for validation splits,
        whose samples are cached whole.
    flip: also cache the horizontally flipped orientation of every training clip.
    clips_per_batch: training clips (or validation videos) per backbone call.
    """

    split: str
    shards: tuple[str, ...]
    chunk_size: int | None
    flip: bool
    clips_per_batch: int = 8


def cache_shard_path(cache_dir: Path, split: str, source_shard: str) -> Path:
    """Final path of the cache shard that holds the features of `source_shard`."""
    name = Path(source_shard).name
    stem = name[: -len(".tar")] if name.endswith(".tar") else name
    return cache_dir / split / f"{stem}.tar"


class _PendingShards(IterableDataset):
    """Yields `(shard_index, SourceVideo)` for every video, then `(shard_index, None)` when a shard ends.

    Each DataLoader worker reads whole shards (index modulo worker count), so shards are never split.
    """

    def __init__(self, shards: Sequence[str], read_shard: ShardReader) -> None:
        self.shards = list(shards)
        self.read_shard = read_shard

    def __iter__(self) -> Iterator[tuple[int, SourceVideo | None]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for index in range(worker, len(self.shards), workers):
            for video in self.read_shard(self.shards[index]):
                yield index, video
            yield index, None


def _identity(item: tuple[int, SourceVideo | None]) -> tuple[int, SourceVideo | None]:
    return item


def _run_in_batches(extract: FeatureExtractor, clips: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply the backbone to clips `(M, T, 3, H, W)` in groups of `batch` -> `(M, T, N, D_f)` each."""
    features, keys = [], []
    for start in range(0, clips.shape[0], batch):
        chunk_features, chunk_keys = extract(clips[start : start + batch])
        features.append(chunk_features.float().cpu())
        if chunk_keys is not None:
            keys.append(chunk_keys.float().cpu())
    return torch.cat(features), (torch.cat(keys) if keys else None)


def train_clips(video: torch.Tensor, chunk_size: int, flip: bool) -> torch.Tensor:
    """Every chunk-aligned clip of `video` `(T, 3, H, W)` in every orientation -> `(C, O, chunk_size, 3, H, W)`.

    `C = T // chunk_size` (the remainder is dropped, as in the video pipeline); orientation 1 is the clip
    flipped along the width axis.
    """
    num_chunks = video.shape[0] // chunk_size
    if num_chunks == 0:
        raise ValueError(f"video of {video.shape[0]} frames is shorter than one chunk of {chunk_size}")
    clips = video[: num_chunks * chunk_size].reshape(num_chunks, chunk_size, *video.shape[1:])
    oriented = [clips, clips.flip(-1)] if flip else [clips]
    return torch.stack(oriented, dim=1)


def encode_video(
    source: SourceVideo, plan: SplitPlan, extract: FeatureExtractor, fingerprint_sha256: str
) -> dict[str, object]:
    """Run the backbone on one source video and build its tar sample."""
    if plan.chunk_size is None:
        if source.masks is None:
            raise ValueError(f"validation video {source.key} has no masks; the cache needs them for evaluation")
        features, keys = _run_in_batches(extract, source.video.unsqueeze(0), 1)
        return encode_val_video(
            source.key, features[0], None if keys is None else keys[0], source.masks, fingerprint_sha256
        )
    clips = train_clips(source.video, plan.chunk_size, plan.flip)
    num_chunks, num_orientations = clips.shape[:2]
    features, keys = _run_in_batches(extract, clips.flatten(0, 1), plan.clips_per_batch)
    unflatten = (num_chunks, num_orientations)
    return encode_train_video(
        source.key,
        features.unflatten(0, unflatten),
        None if keys is None else keys.unflatten(0, unflatten),
        ORIENTATIONS[:num_orientations],
        fingerprint_sha256,
    )


def write_split(
    cache_dir: Path,
    plan: SplitPlan,
    read_shard: ShardReader,
    extract: FeatureExtractor,
    fingerprint_sha256: str,
    num_workers: int = 0,
    progress: bool = True,
    on_shard_done: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Cache every source shard of `plan` that has no finished cache shard yet.

    Returns `{cache shard file name: number of videos}` for all shards of the split (finished earlier or now).
    `on_shard_done(name, videos)` is called after each shard is renamed into place.
    """
    out_dir = cache_dir / plan.split
    out_dir.mkdir(parents=True, exist_ok=True)
    finals = [cache_shard_path(cache_dir, plan.split, shard) for shard in plan.shards]
    if len({path.name for path in finals}) != len(finals):
        raise ValueError(f"source shards of split '{plan.split}' have clashing names; they must be unique")
    counts = {final.name: count_shard_samples(str(final)) for final in finals if final.is_file()}
    pending = [index for index, final in enumerate(finals) if not final.is_file()]
    if not pending:
        return counts

    loader = DataLoader(
        _PendingShards([plan.shards[index] for index in pending], read_shard),
        batch_size=None,
        num_workers=min(num_workers, len(pending)),
        collate_fn=_identity,
    )
    writers: dict[int, tuple[wds.TarWriter, StagedFile, int]] = {}
    bar = tqdm(unit="video", desc=f"caching {plan.split} (0/{len(pending)} shards)", disable=not progress)
    finished = 0
    try:
        for local_index, source in loader:
            final = finals[pending[local_index]]
            if local_index not in writers:
                staged = StagedFile(final)
                writers[local_index] = (wds.TarWriter(str(staged.temporary)), staged, 0)
            if source is None:
                writer, staged, videos = writers.pop(local_index)
                writer.close()
                staged.commit()
                counts[final.name] = videos
                finished += 1
                bar.set_description_str(f"caching {plan.split} ({finished}/{len(pending)} shards)")
                if on_shard_done is not None:
                    on_shard_done(final.name, videos)
                continue
            writer, staged, videos = writers[local_index]
            writer.write(encode_video(source, plan, extract, fingerprint_sha256))
            writers[local_index] = (writer, staged, videos + 1)
            bar.update(1)
    finally:
        bar.close()
        for writer, staged, _ in writers.values():
            writer.close()
            staged.discard()
    return counts
