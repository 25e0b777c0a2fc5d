"""Synthetic MOVi-like generator: determinism, id stability, occlusion, shard layout, idempotent dataset."""
from __future__ import annotations

import colorsys
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from srl_plugin.data import iter_shard_samples, synthetic
from srl_plugin.data.render import SyntheticConfig, generate_video, render_scene, sample_scene, video_rng
from srl_plugin.data.synthetic import (
    LOCK_FILE,
    MANIFEST,
    SyntheticDatasetMismatchError,
    check_num_classes,
    ensure_synthetic_dataset,
    synthetic_shard_patterns,
)
from srl_plugin.data.synthetic_cli import main as cli_main

SMALL = dict(frames=6, size=40)


def small_config(preset: str = "movi_c_like", **overrides) -> SyntheticConfig:
    return SyntheticConfig.from_preset(preset, **SMALL, **overrides)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_generate_video_dtypes_shapes_and_determinism() -> None:
    config = small_config()
    video, segmentations = generate_video(config, seed=3, split="train", index=5)
    assert video.dtype == np.uint8 and video.shape == (6, 40, 40, 3)
    assert segmentations.dtype == np.uint8 and segmentations.shape == (6, 40, 40, 1)
    again = generate_video(config, seed=3, split="train", index=5)
    np.testing.assert_array_equal(video, again[0])
    np.testing.assert_array_equal(segmentations, again[1])
    for other in (generate_video(config, 4, "train", 5), generate_video(config, 3, "train", 6),
                  generate_video(config, 3, "validation", 5)):
        assert not np.array_equal(video, other[0])


@pytest.mark.parametrize("preset", ["easy", "movi_c_like"])
def test_instance_ids_are_stable_and_follow_their_object(preset: str) -> None:
    config = SyntheticConfig.from_preset(preset, frames=8, size=64)
    for index in range(4):
        scene = sample_scene(video_rng(0, "train", index), config)
        _, segmentations, amodal = render_scene(scene, return_amodal=True)
        count = len(scene.objects)
        assert config.num_objects[0] <= count <= config.num_objects[1]
        assert sorted(o.instance_id for o in scene.objects) == list(range(1, count + 1))
        assert segmentations.max() <= count
        for obj in scene.objects:
            for t in range(config.frames):
                ys, xs = np.nonzero(segmentations[t, :, :, 0] == obj.instance_id)
                if len(xs) == 0:
                    continue
                centre = obj.centre[t] - scene.camera[t]
                distance = np.hypot(xs + 0.5 - centre[0], ys + 0.5 - centre[1])
                assert distance.max() <= obj.radius * obj.scale[t] * obj.extent + 1e-3
            assert amodal[:, obj.instance_id - 1].any()


@pytest.mark.parametrize("preset", ["easy", "movi_c_like"])
def test_depth_ordered_occlusion(preset: str) -> None:
    # spawn_spread=0 starts every object at the centre of the world, so they overlap
    config = SyntheticConfig.from_preset(preset, frames=4, size=48, spawn_spread=0.0, num_objects=(4, 4))
    for index in range(3):
        scene = sample_scene(video_rng(1, "validation", index), config)
        _, segmentations, amodal = render_scene(scene, return_amodal=True)
        depth = np.array([o.depth for o in sorted(scene.objects, key=lambda o: o.instance_id)])
        # nearest covering object: the smallest depth among the objects whose full mask covers the pixel
        depth_map = np.where(amodal, depth[None, :, None, None], np.inf)
        expected = np.where(amodal.any(axis=1), depth_map.argmin(axis=1) + 1, 0)
        np.testing.assert_array_equal(segmentations[..., 0], expected)
        assert (amodal.sum(axis=1) >= 2).any(), "the objects were meant to overlap"
        assert len(np.unique(segmentations)) >= 2


def test_background_pixels_show_the_panned_background() -> None:
    config = small_config(camera_pan=0.05, background_texture=1.0)
    scene = sample_scene(video_rng(0, "train", 2), config)
    video, segmentations = render_scene(scene)
    assert (scene.camera.max(axis=0) > 0).any(), "camera was meant to move"
    for t in range(config.frames):
        x, y = scene.camera[t]
        view = np.clip(scene.world[y : y + config.size, x : x + config.size] * 255 + 0.5, 0, 255).astype(np.uint8)
        background = segmentations[t, :, :, 0] == 0
        np.testing.assert_array_equal(video[t][background], view[background])


def test_easy_preset_objects_are_flat_coloured() -> None:
    config = SyntheticConfig.from_preset("easy", frames=3, size=48)
    video, segmentations = generate_video(config, 0, "train", 0)
    for instance in range(1, int(segmentations.max()) + 1):
        colours = video[segmentations[..., 0] == instance]
        assert len(np.unique(colours, axis=0)) == 1


@pytest.mark.parametrize("index", range(4))
def test_distinct_hues_space_the_objects_of_a_clip_round_the_colour_wheel(index: int) -> None:
    config = SyntheticConfig.from_preset("easy", num_objects=(2, 5))
    assert config.distinct_hues
    objects = sample_scene(video_rng(0, "train", index), config).objects
    hues = np.sort([colorsys.rgb_to_hsv(*obj.colours[0])[0] for obj in objects])
    gaps = np.diff(np.append(hues, hues[0] + 1.0))
    np.testing.assert_allclose(gaps, 1.0 / len(objects), atol=1e-5)


def test_without_distinct_hues_the_clips_are_those_made_before_the_option_existed() -> None:
    """The hue draws happen only with `distinct_hues`, so movi_c_like data is unchanged (hash of a clip made with the
    generator before the option was added)."""
    config = SyntheticConfig.from_preset("movi_c_like", frames=3, size=32)
    video, segmentations = generate_video(config, 0, "train", 1)
    digest = hashlib.sha256(video.tobytes() + segmentations.tobytes()).hexdigest()
    assert digest == "159f3dde30b7e5be3e63dfcdb7dac663ab6ae9e9e5354088e1b5a069b2ca78b2"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        SyntheticConfig.from_preset("nope")
    with pytest.raises(ValueError, match="unknown synthetic option"):
        SyntheticConfig.from_preset("easy", colour="red")
    with pytest.raises(ValueError, match="shapes"):
        SyntheticConfig.from_preset("easy", shapes=["hexagon"])
    assert SyntheticConfig.from_preset("easy", num_objects=[2, 3]).num_objects == (2, 3)


def _dataset(root: Path, **overrides) -> Path:
    kwargs = dict(preset="movi_c_like", train_videos=5, val_videos=3, seed=0, train_shards=2, val_shards=2, **SMALL)
    kwargs.update(overrides)
    return ensure_synthetic_dataset(root, **kwargs)


def test_shards_have_the_movi_keys_dtypes_and_shapes(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    patterns = synthetic_shard_patterns(2, 2)
    assert patterns == {"train": "synthetic-train-{000000..000001}.tar",
                        "validation": "synthetic-validation-{000000..000001}.tar"}
    with tarfile.open(root / "synthetic-validation-000000.tar") as tar:
        names = tar.getnames()
        assert names == ["000000.video.npy", "000000.segmentations.npy"]
        video = np.load(io.BytesIO(tar.extractfile(names[0]).read()))
        masks = np.load(io.BytesIO(tar.extractfile(names[1]).read()))
    assert video.dtype == np.uint8 and video.shape == (6, 40, 40, 3)
    assert masks.dtype == np.uint8 and masks.shape == (6, 40, 40, 1)
    keys = [s["__key__"] for shard in ("synthetic-train-000000.tar", "synthetic-train-000001.tar")
            for s in iter_shard_samples(str(root / shard), require_segmentations=True)]
    assert keys == ["000000", "000001", "000002", "000003", "000004"]
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["counts"]["train"] == {"synthetic-train-000000.tar": 2, "synthetic-train-000001.tar": 3}
    assert manifest["patterns"] == patterns


def test_dataset_is_deterministic_and_independent_of_the_shard_count(tmp_path: Path) -> None:
    first, second = _dataset(tmp_path / "a"), _dataset(tmp_path / "b")
    for name in ("synthetic-train-000001.tar", "synthetic-validation-000000.tar"):
        assert _sha(first / name) == _sha(second / name)
    one_shard = _dataset(tmp_path / "c", train_shards=1)
    by_key = {s["__key__"]: s["video"] for s in iter_shard_samples(str(one_shard / "synthetic-train-000000.tar"))}
    for sample in iter_shard_samples(str(first / "synthetic-train-000001.tar")):
        np.testing.assert_array_equal(sample["video"], by_key[sample["__key__"]])
    video, _ = generate_video(small_config(), 0, "train", 4)
    np.testing.assert_array_equal(by_key["000004"], video)


def test_ensure_is_idempotent_and_replaces_other_parameters_only_when_asked(tmp_path: Path, monkeypatch) -> None:
    root = _dataset(tmp_path)
    before = {p.name: _sha(p) for p in root.glob("*.tar")}

    def fail(*args, **kwargs):
        raise AssertionError("must not regenerate an identical dataset")

    with monkeypatch.context() as patch:
        patch.setattr(synthetic, "generate_split", fail)
        _dataset(tmp_path)
        with pytest.raises(SyntheticDatasetMismatchError, match=r"seed: 0 -> 1.*--overwrite"):
            _dataset(tmp_path, seed=1, train_shards=1)
    assert {p.name: _sha(p) for p in root.glob("*.tar")} == before, "a refused replacement touches nothing"
    _dataset(tmp_path, seed=1, train_shards=1, overwrite=True)
    after = {p.name: _sha(p) for p in root.glob("*.tar")}
    assert "synthetic-train-000001.tar" not in after, "shards of the old layout must be removed"
    assert after["synthetic-validation-000000.tar"] != before["synthetic-validation-000000.tar"]
    assert json.loads((root / MANIFEST).read_text())["parameters"]["seed"] == 1


def test_missing_shard_triggers_regeneration(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    (root / "synthetic-train-000000.tar").unlink()
    _dataset(tmp_path)
    assert (root / "synthetic-train-000000.tar").is_file()


def test_interrupted_generation_leaves_no_complete_looking_dataset(tmp_path: Path, monkeypatch) -> None:
    calls = {"n": 0}
    real = synthetic.generate_video

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(synthetic, "generate_video", flaky)
        with pytest.raises(KeyboardInterrupt):
            _dataset(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE], "no manifest, no shard, no temporary folder"
    _dataset(tmp_path)
    assert (tmp_path / MANIFEST).is_file()


def test_interrupted_regeneration_invalidates_the_old_dataset(tmp_path: Path, monkeypatch) -> None:
    _dataset(tmp_path)

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(synthetic, "generate_video", broken)
        with pytest.raises(KeyboardInterrupt):
            _dataset(tmp_path, seed=7, overwrite=True)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["parameters"]["seed"] == 0, "the old complete dataset is untouched"


def test_a_run_that_finds_generation_under_way_waits_and_reuses_its_dataset(tmp_path: Path, monkeypatch) -> None:
    """Two runs started together on a fresh folder: the second waits on the lock, then finds the dataset the
    first generated (instead of deleting its temporary folder and generating again)."""
    other_process = os.open(tmp_path / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other_process, fcntl.LOCK_EX)
    waiting = threading.Event()
    monkeypatch.setattr(synthetic.log, "warning", lambda *args: waiting.set())
    errors: list[BaseException] = []

    def second_run() -> None:
        try:
            _dataset(tmp_path)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    runner = threading.Thread(target=second_run)
    runner.start()
    try:
        assert waiting.wait(timeout=30), "the second run must report that it waits"
        _dataset(tmp_path / "elsewhere")
        for name in set(os.listdir(tmp_path / "elsewhere")) - {LOCK_FILE}:
            os.replace(tmp_path / "elsewhere" / name, tmp_path / name)
        monkeypatch.setattr(synthetic, "generate_split", lambda *a, **k: pytest.fail("generated a second time"))
    finally:
        fcntl.flock(other_process, fcntl.LOCK_UN)
        os.close(other_process)
        runner.join(timeout=30)
    assert not runner.is_alive() and errors == []
    assert (tmp_path / MANIFEST).is_file()


def test_cli_writes_the_dataset_and_prints_the_patterns(tmp_path: Path, capsys) -> None:
    out = tmp_path / "synthetic"
    assert cli_main(["--out", str(out), "--preset", "easy", "--train-videos", "3", "--val-videos", "2",
                     "--frames", "4", "--size", "32", "--train-shards", "1", "--val-shards", "1", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert "synthetic-train-{000000..000000}.tar" in printed
    assert "synthetic-validation-{000000..000000}.tar" in printed
    parameters = json.loads((out / MANIFEST).read_text())["parameters"]
    assert parameters["preset"] == "easy" and parameters["seed"] == 5
    assert parameters["config"]["frames"] == 4 and parameters["config"]["size"] == 32
    samples = list(iter_shard_samples(str(out / "synthetic-train-000000.tar")))
    assert len(samples) == 3 and samples[0]["video"].shape == (4, 32, 32, 3)


def test_cli_object_count_and_refusal_to_replace_other_data(tmp_path: Path, capsys) -> None:
    out = tmp_path / "synthetic"
    small = ["--out", str(out), "--preset", "easy", "--train-videos", "2", "--val-videos", "2", "--frames", "2",
             "--size", "32", "--train-shards", "1", "--val-shards", "1", "--no-progress"]
    assert cli_main([*small, "--num-objects", "5", "6"]) == 0
    assert "num_classes:  7 or more" in capsys.readouterr().out
    for sample in iter_shard_samples(str(out / "synthetic-validation-000000.tar"), require_segmentations=True):
        assert 5 <= sample["segmentations"].max() <= 6
    assert cli_main([*small, "--num-objects", "2", "3"]) == 1
    error = capsys.readouterr().err
    assert "num_objects: [5, 6] -> [2, 3]" in error and "--overwrite" in error and "Traceback" not in error
    assert cli_main([*small, "--num-objects", "2", "3", "--overwrite"]) == 0


def test_num_classes_is_checked_against_the_object_count() -> None:
    check_num_classes(5, {"preset": "easy", "num_objects": [2, 4], "train_videos": 8})
    with pytest.raises(ValueError, match=r"data.num_classes=5 is too small.*set data.num_classes=6"):
        check_num_classes(5, {"preset": "easy"})


def test_presets_differ_in_the_documented_knobs() -> None:
    easy, hard = SyntheticConfig.from_preset("easy"), SyntheticConfig.from_preset("movi_c_like")
    assert (easy.frames, easy.size) == (hard.frames, hard.size) == (24, 128)
    assert hard.num_objects == (3, 10)
    differing = {f.name for f in dataclasses.fields(SyntheticConfig) if getattr(easy, f.name) != getattr(hard, f.name)}
    assert {"num_objects", "object_texture", "background_texture", "rotation", "camera_pan"} <= differing


def test_hydra_style_options_are_accepted(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    options = OmegaConf.create({"preset": "easy", "train_videos": 2, "val_videos": 1, "train_shards": 1,
                                "val_shards": 1, "frames": 4, "size": 32, "num_objects": [2, 3]})
    root = ensure_synthetic_dataset(tmp_path, **options)
    parameters = json.loads((root / MANIFEST).read_text())["parameters"]
    assert parameters["config"]["num_objects"] == [2, 3]
    for sample in iter_shard_samples(str(root / "synthetic-train-000000.tar"), require_segmentations=True):
        assert 2 <= sample["segmentations"].max() <= 3
