"""Feature cache: flipped-orientation correctness, clip sampling, metadata checks and resumable writing.

All tests use a tiny randomly initialised DINOv2-architecture ViT (2 blocks, width 32) on 28x28 frames.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import torch
import webdataset as wds

from srl_plugin.cache import CachedFeatureDataModule, CacheMismatchError, CacheMissingError
from srl_plugin.cache.fingerprint import cache_fingerprint
from srl_plugin.cache.format import feature_entry, from_npy_bytes
from srl_plugin.cache.store import build_cache
from srl_plugin.cache.writer import SourceVideo, SplitPlan, backbone_extractor
from srl_plugin.models import FrozenViTBackbone

TRANSFORM = {"resize": "bicubic", "chunk_size": 4, "h_flip_prob": 0.5}
FP16_TOLERANCE = {"atol": 2e-3, "rtol": 2e-3}


def tiny_backbone(input_size: int = 28, model_name: str = "vit_small_patch14_dinov2") -> FrozenViTBackbone:
    torch.manual_seed(0)
    return FrozenViTBackbone(
        model_name, input_size=input_size, pretrained=False, allow_random_init=True, return_keys=True,
        model_kwargs={"depth": 2, "embed_dim": 32, "num_heads": 2},
    )


def make_videos(num_shards: int, per_shard: int, frames: int = 10) -> dict[str, list[SourceVideo]]:
    generator = torch.Generator().manual_seed(1)
    return {
        f"src-{shard:06d}.tar": [
            SourceVideo(
                f"video{shard}_{index}",
                torch.randn(frames, 3, 28, 28, generator=generator),
                (torch.rand(frames, 2, 28, 28, generator=generator) > 0.5).float(),
            )
            for index in range(per_shard)
        ]
        for shard in range(num_shards)
    }


def reader_of(videos: dict[str, list[SourceVideo]], calls: list[str] | None = None):
    def read(shard: str) -> Iterator[SourceVideo]:
        if calls is not None:
            calls.append(shard)
        yield from videos[shard]

    return read


def write(cache_dir: Path, backbone: FrozenViTBackbone, videos: dict[str, list[SourceVideo]], **kwargs) -> dict:
    shards = tuple(videos)
    plans = [SplitPlan("train", shards, chunk_size=4, flip=True), SplitPlan("val", shards[:1], None, False)]
    readers = {"train": kwargs.pop("read", reader_of(videos)), "val": reader_of(videos)}
    return build_cache(
        cache_dir, cache_fingerprint(backbone, TRANSFORM), plans, readers, backbone_extractor(backbone),
        experiment="srl/synthetic", progress=False, **kwargs,
    )


def raw_samples(shard: Path) -> list[dict]:
    samples = wds.DataPipeline(wds.SimpleShardList([str(shard)]), wds.tarfile_to_samples())
    return [{name: value for name, value in sample.items() if not name.startswith("__url")} for sample in samples]


def test_cached_orientations_equal_backbone_of_each_clip(tmp_path: Path) -> None:
    backbone = tiny_backbone()
    videos = make_videos(1, 1)
    write(tmp_path, backbone, videos)
    (sample,) = raw_samples(tmp_path / "train" / "src-000000.tar")
    clip = videos["src-000000.tar"][0].video[4:8].unsqueeze(0)  # chunk 1 of a 10-frame video
    flipped = backbone(clip.flip(-1))
    cached_flipped = torch.from_numpy(from_npy_bytes(sample[feature_entry("feat", 1, "hflip")])).float()
    cached_keys = torch.from_numpy(from_npy_bytes(sample[feature_entry("keys", 1, "hflip")])).float()
    cached_orig = torch.from_numpy(from_npy_bytes(sample[feature_entry("feat", 1, "orig")])).float()
    torch.testing.assert_close(cached_flipped, flipped["backbone_features"][0], **FP16_TOLERANCE)
    torch.testing.assert_close(cached_keys, flipped["backbone_keys"][0], **FP16_TOLERANCE)
    torch.testing.assert_close(cached_orig, backbone(clip)["backbone_features"][0], **FP16_TOLERANCE)
    # Flipping the frames is not flipping the token grid of the features: both orientations are needed.
    grid_flipped = cached_orig.unflatten(1, (2, 2)).flip(2).flatten(1, 2)
    assert not torch.allclose(cached_flipped, grid_flipped, atol=1e-2)
    assert feature_entry("feat", 2, "orig") not in sample  # frames 8-9 do not fill a chunk: dropped


@pytest.mark.parametrize("flip_prob, orientation", [(0.0, "orig"), (1.0, "hflip")])
def test_training_batches_take_one_clip_per_video_in_the_drawn_orientation(
    tmp_path: Path, flip_prob: float, orientation: str
) -> None:
    backbone = tiny_backbone()
    videos = make_videos(2, 2)
    meta = write(tmp_path, backbone, videos)
    module = CachedFeatureDataModule(
        tmp_path, meta["fingerprint"], batch_size=2, flip_prob=flip_prob, shuffle_buffer=2, seed=3
    )
    batch = next(iter(module.train_dataloader()))
    assert batch["backbone_features"].shape == (2, 4, backbone.num_patches, backbone.feature_dim)
    assert batch["backbone_features"].dtype == torch.float32
    by_key = {video.key: video.video for shard in videos.values() for video in shard}
    for index, key in enumerate(batch["__key__"]):
        clips = by_key[key][:8].unflatten(0, (2, 4))
        clips = clips.flip(-1) if orientation == "hflip" else clips
        expected = backbone(clips)["backbone_features"]
        matches = [torch.allclose(batch["backbone_features"][index], e, **FP16_TOLERANCE) for e in expected]
        assert sum(matches) == 1


def test_validation_batches_hold_whole_videos_and_exact_masks(tmp_path: Path) -> None:
    backbone = tiny_backbone()
    videos = make_videos(1, 2)
    meta = write(tmp_path, backbone, videos)
    module = CachedFeatureDataModule(tmp_path, meta["fingerprint"], batch_size=1, val_batch_size=2)
    (batch,) = list(module.val_dataloader())
    source = videos["src-000000.tar"]
    assert batch["__key__"] == [video.key for video in source]
    torch.testing.assert_close(batch["masks"], torch.stack([video.masks for video in source]))
    expected = backbone(torch.stack([video.video for video in source]))["backbone_features"]
    torch.testing.assert_close(batch["backbone_features"], expected, **FP16_TOLERANCE)
    assert "backbone_keys" in batch


def test_validation_chunks_are_cut_before_batching(tmp_path: Path) -> None:
    backbone = tiny_backbone()
    meta = write(tmp_path, backbone, make_videos(1, 2))
    whole = CachedFeatureDataModule(tmp_path, meta["fingerprint"], batch_size=1, val_batch_size=2)
    chunked = CachedFeatureDataModule(tmp_path, meta["fingerprint"], batch_size=1, val_batch_size=3, val_chunk_size=4)
    (videos,) = list(whole.val_dataloader())
    batches = list(chunked.val_dataloader())
    assert [batch["backbone_features"].shape[:2] for batch in batches] == [(3, 4), (1, 4)]
    keys = [key for batch in batches for key in batch["__key__"]]
    assert keys == [f"{key}_{index}" for key in videos["__key__"] for index in (0, 1)], "10 frames: 2 chunks"
    assert [index for batch in batches for index in batch["chunk_index"].tolist()] == [0, 1, 0, 1]
    torch.testing.assert_close(batches[0]["backbone_features"][1], videos["backbone_features"][0, 4:8])
    torch.testing.assert_close(batches[1]["masks"][0], videos["masks"][1, 4:8])


@pytest.mark.parametrize(
    "changed", [{"input_size": 42}, {"model_name": "vit_base_patch14_dinov2"}], ids=["input_size", "backbone"]
)
def test_cache_refuses_a_different_backbone_or_input_size(tmp_path: Path, changed: dict) -> None:
    write(tmp_path, tiny_backbone(), make_videos(1, 1))
    other = cache_fingerprint(tiny_backbone(**changed), TRANSFORM)
    module = CachedFeatureDataModule(tmp_path, other, batch_size=1, experiment="srl/synthetic")
    with pytest.raises(CacheMismatchError, match="srl-cache-features srl/synthetic") as error:
        module.setup("fit")
    field = "input_size" if "input_size" in changed else "name"
    assert f"backbone.{field}" in str(error.value)


def test_cache_refuses_other_weights_and_reports_a_missing_cache(tmp_path: Path) -> None:
    backbone = tiny_backbone()
    write(tmp_path / "cache", backbone, make_videos(1, 1))
    with torch.no_grad():
        backbone.model.blocks[0].mlp.fc1.weight.add_(1.0)
    module = CachedFeatureDataModule(tmp_path / "cache", cache_fingerprint(backbone, TRANSFORM), batch_size=1)
    with pytest.raises(CacheMismatchError, match="weights_sha256"):
        module.setup("fit")
    with pytest.raises(CacheMissingError, match="srl-cache-features"):
        CachedFeatureDataModule(tmp_path / "absent", {}, batch_size=1).setup("fit")


def test_writing_refuses_to_mix_configurations_in_one_folder(tmp_path: Path) -> None:
    write(tmp_path, tiny_backbone(), make_videos(1, 1))
    with pytest.raises(CacheMismatchError, match="--overwrite"):
        write(tmp_path, tiny_backbone(input_size=42), make_videos(1, 1), read=reader_of({}))


def test_interrupted_run_resumes_without_redoing_finished_shards(tmp_path: Path) -> None:
    backbone = tiny_backbone()
    videos = make_videos(3, 2)

    def crash_in_second_shard(shard: str) -> Iterator[SourceVideo]:
        yield from videos[shard][:1]
        if shard != "src-000000.tar":
            raise KeyboardInterrupt("simulated interruption")
        yield from videos[shard][1:]

    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "cache", backbone, videos, read=crash_in_second_shard)
    train_dir = tmp_path / "cache" / "train"
    assert sorted(path.name for path in train_dir.iterdir()) == ["src-000000.tar"]  # no temporary left behind
    first_shard_bytes = (train_dir / "src-000000.tar").read_bytes()

    calls: list[str] = []
    meta = write(tmp_path / "cache", backbone, videos, read=reader_of(videos, calls))
    assert calls == ["src-000001.tar", "src-000002.tar"]
    assert (train_dir / "src-000000.tar").read_bytes() == first_shard_bytes
    assert meta["splits"]["train"]["complete"] and meta["splits"]["train"]["num_videos"] == 6
    fresh = write(tmp_path / "fresh", backbone, videos)
    for name in videos:
        assert raw_samples(train_dir / name) == raw_samples(tmp_path / "fresh" / "train" / name)
    assert fresh["splits"] == meta["splits"]
