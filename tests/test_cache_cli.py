"""`srl-cache-features` on the synthetic experiment, and the `features: cached` wiring of the config.

A tiny synthetic dataset (one train shard of 4 videos, one validation shard of 3 videos, 8 frames of 32x32)
and the `srl/synthetic` experiment with its random-init ViT shrunk to 32-pixel inputs.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from srl_plugin.cache import CacheMismatchError, CacheMissingError, build_cached_datamodule
from srl_plugin.cache import cli
from srl_plugin.cache.experiment import cache_dir, check_cacheable
from srl_plugin.runtime import build_backbone, compose_experiment
from conftest import tiny_synthetic_overrides

FP16_TOLERANCE = {"atol": 2e-3, "rtol": 2e-3}


def overrides(root: Path) -> list[str]:
    return tiny_synthetic_overrides(root, shards=1, train_videos=4, val_videos=3, shuffle_buffer=2, val_size=2)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the CLI once into the default cache folder; returns the data root and the CLI's output."""
    root = tmp_path_factory.mktemp("data")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        cli.main(["srl/synthetic", *overrides(root), "--no-progress"])
    return root, buffer.getvalue()


def test_cli_writes_both_orientations_to_the_printed_default_folder(built) -> None:
    root, output = built
    folder = root / "feature_cache" / "srl-synthetic"
    assert str(folder) in output.splitlines()[0]
    meta = OmegaConf.load(folder / "cache_meta.json")
    assert list(meta.orientations) == ["orig", "hflip"]
    assert meta.fingerprint.backbone.input_size == 32 and meta.fingerprint.transform.flip
    assert meta.splits.train.num_videos == 4 and meta.splits.val.num_videos == 3
    assert meta.splits.train.complete and meta.splits.val.complete

    before = {path: path.stat().st_mtime_ns for path in folder.rglob("*.tar")}
    cli.main(["srl/synthetic", *overrides(root), "--no-progress"])  # resumes: nothing left to do
    assert {path: path.stat().st_mtime_ns for path in folder.rglob("*.tar")} == before


def test_cached_validation_batches_equal_the_video_pipeline_through_the_backbone(built) -> None:
    root, _ = built
    config = compose_experiment("srl/synthetic", [*overrides(root), "features=cached"])
    cached = build_cached_datamodule(config)
    cached.setup("validate")
    video = instantiate(OmegaConf.to_container(config.data, resolve=True))
    video.setup("validate")
    (cached_batch,) = list(cached.val_dataloader())  # val_size=2 of the 3 videos, one batch of 2
    (video_batch,) = list(video.val_dataloader())
    assert cached_batch["__key__"] == video_batch["__key__"] and len(cached_batch["__key__"]) == 2
    torch.testing.assert_close(cached_batch["masks"], video_batch["masks"], rtol=0, atol=0)
    expected = build_backbone(config)(video_batch["video"])["backbone_features"]
    torch.testing.assert_close(cached_batch["backbone_features"], expected, **FP16_TOLERANCE)

    train_batch = next(iter(cached.train_dataloader()))
    assert train_batch["backbone_features"].shape == (2, config.data.chunk_size, 16, 96)


def test_another_input_size_or_a_missing_cache_is_refused(built, tmp_path: Path) -> None:
    root, _ = built
    other = [*overrides(root), "model.backbone.input_size=48", "model.backbone.model_kwargs.img_size=48",
             "model.num_patches=36"]
    module = build_cached_datamodule(compose_experiment("srl/synthetic", other))
    with pytest.raises(CacheMismatchError, match="backbone.input_size: cache has 32, this run needs 48") as error:
        module.setup("fit")
    assert "srl-cache-features srl/synthetic" in str(error.value)
    missing = compose_experiment("srl/synthetic", [*overrides(root), f"cache.dir={tmp_path / 'none'}"])
    assert cache_dir(missing) == tmp_path / "none"
    with pytest.raises(CacheMissingError, match="srl-cache-features srl/synthetic"):
        build_cached_datamodule(missing).setup("fit")


def test_ytvis_training_clips_are_refused_with_the_reason() -> None:
    config = compose_experiment("srl/ytvis2021", ["data.root=/nonexistent"])
    with pytest.raises(ValueError, match="random square crops"):
        check_cacheable(config, ("train", "val"))
    check_cacheable(config, ("val",))


def test_srl_train_runs_from_the_cache(built, tmp_path: Path) -> None:
    from srl_plugin.training.fit import train

    root, _ = built
    config = compose_experiment("srl/synthetic", [
        *overrides(root), "features=cached", f"output_dir={tmp_path / 'run'}", "trainer.max_steps=2",
        "trainer.val_check_interval=2", "scheduler.warmup_steps=1", "trainer.enable_progress_bar=false",
        "evaluation.log_images=false",
    ])
    output_dir = train(config)
    (metrics,) = list((output_dir / "csv").rglob("metrics.csv"))
    header, *rows = metrics.read_text().splitlines()
    assert "val/video_fg_ari" in header
    assert any(row.split(",")[header.split(",").index("val/num_videos")] == "2.0" for row in rows)
    assert (output_dir / "checkpoints").is_dir()
