"""One data pipeline over two sample sources: the video shards and the feature cache made from them give the
same training clips in the same order for a seed, the same validation split over ranks and workers, and the
same official-protocol subset.

A tiny synthetic dataset (2 train shards of 3 videos, 2 validation shards of 3 and 2 videos, 8 frames of
32x32), the `srl/synthetic` experiment with its random-init ViT shrunk to 32-pixel inputs, and its cache.
"""
from __future__ import annotations

import contextlib
import io
import itertools
from pathlib import Path

import pytest
import torch

from srl_plugin.cache import CacheMismatchError, CachedFeatureDataModule, cli
from srl_plugin.data import VideoDataModule
from srl_plugin.runtime import build_backbone, compose_experiment
from srl_plugin.training.runner import build_datamodule
from conftest import tiny_synthetic_overrides

FP16_TOLERANCE = {"atol": 2e-3, "rtol": 2e-3}
OFFICIAL = "evaluation.official_loader={val_size:4,num_workers:2,batch_size:1,chunk_size:null}"


def overrides(root: Path) -> list[str]:
    return tiny_synthetic_overrides(root, shards=2, train_videos=6, val_videos=5, shuffle_buffer=4, val_size=None)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic data and its feature cache (both splits, both orientations)."""
    folder = tmp_path_factory.mktemp("data")
    with contextlib.redirect_stdout(io.StringIO()):
        cli.main(["srl/synthetic", *overrides(folder), "--no-progress"])
    return folder


def both(root: Path, *extra: str) -> tuple[VideoDataModule, CachedFeatureDataModule]:
    """The video and the cached data module of one config, as `srl-train` builds them."""
    video = build_datamodule(compose_experiment("srl/synthetic", [*overrides(root), *extra]))
    cached = build_datamodule(compose_experiment("srl/synthetic", [*overrides(root), *extra, "features=cached"]))
    assert isinstance(video, VideoDataModule) and isinstance(cached, CachedFeatureDataModule)
    return video, cached


@pytest.mark.parametrize("seed", [3, 4])
def test_cache_gives_the_training_clips_of_the_video_shards_in_the_same_order(root: Path, seed: int) -> None:
    video, cached = both(root, f"data.seed={seed}")
    backbone = build_backbone(compose_experiment("srl/synthetic", overrides(root)))
    video_batches = list(itertools.islice(iter(video.train_dataloader()), 3))
    cached_batches = list(itertools.islice(iter(cached.train_dataloader()), 3))
    for from_video, from_cache in zip(video_batches, cached_batches):
        expected = backbone(from_video["video"])["backbone_features"]  # same video, chunk and flip per row
        torch.testing.assert_close(from_cache["backbone_features"], expected, **FP16_TOLERANCE)
    _, other = both(root, f"data.seed={seed + 10}")
    other_batches = list(itertools.islice(iter(other.train_dataloader()), 3))
    assert not torch.equal(torch.cat([batch["backbone_features"] for batch in other_batches]),
                           torch.cat([batch["backbone_features"] for batch in cached_batches])), "the seed matters"


@pytest.mark.parametrize("world, workers, val_size", [(1, 2, None), (2, 1, 4), (2, 2, None)])
def test_validation_split_over_ranks_and_workers_is_the_same_for_both_sources(
    root: Path, monkeypatch: pytest.MonkeyPatch, world: int, workers: int, val_size: int | None
) -> None:
    video, cached = both(root, f"data.num_workers={workers}", f"data.val_size={'null' if val_size is None else val_size}")
    seen = []
    for rank in range(world):
        keys = {}
        for name, module in (("video", video), ("cached", cached)):
            monkeypatch.setattr(module, "_rank_world", lambda rank=rank: (rank, world))
            batches = list(module.val_dataloader())
            keys[name] = [batch["__key__"] for batch in batches]
            masks = torch.cat([batch["masks"] for batch in batches]) if batches else None
            keys[f"{name}_masks"] = masks
        assert keys["video"] == keys["cached"], f"rank {rank} of {world}, {workers} worker(s)"
        if keys["video_masks"] is not None:
            assert torch.equal(keys["video_masks"], keys["cached_masks"])
        seen += [key for batch in keys["video"] for key in batch]
    assert len(seen) == len(set(seen)) == (5 if val_size is None else val_size)


def test_official_protocol_scores_the_same_subset_from_the_cache(root: Path) -> None:
    video, cached = both(root, "evaluation.protocol=official", OFFICIAL)
    video_keys = [key for batch in video.val_dataloader() for key in batch["__key__"]]
    cached_keys = [key for batch in cached.val_dataloader() for key in batch["__key__"]]
    assert video.selection == cached.selection and video_keys == cached_keys
    assert 0 < len(cached_keys) == video.selection.num_videos


def test_a_validation_only_cache_evaluates_a_flipping_config_but_does_not_train_it(root: Path, tmp_path: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        cli.main(["srl/synthetic", *overrides(root), f"cache.dir={tmp_path}", "--splits", "val", "--no-progress"])
    _, cached = both(root, f"cache.dir={tmp_path}")
    cached.setup("validate")
    assert sum(len(batch["__key__"]) for batch in cached.val_dataloader()) == 5
    with pytest.raises(CacheMismatchError, match="flip_prob=0.5 but the cache .* holds no flipped clips"):
        cached.setup("fit")
