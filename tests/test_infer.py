"""srl-infer: streaming inference over a user's video, its outputs, and the errors on bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srl_plugin.data.shards import write_shard
from srl_plugin.inference import import_official_checkpoint, mask_grid, overlay_masks, slot_palette
from srl_plugin.inference.cli_infer import main
from srl_plugin.interop import model_from_official_state_dict
from srl_plugin.metrics import slot_ids_from_soft
from srl_plugin.runtime import build_model, checkpoint_dict, compose_experiment, frame_windows, stream
from conftest import TINY_VIT_32

av = pytest.importorskip("av")

FRAMES, HEIGHT, WIDTH = 7, 40, 48
TINY_MODEL = [*TINY_VIT_32, "model.backbone.model_kwargs.depth=1"]


def write_video(path: Path, video: np.ndarray, codec: str) -> None:
    """Encodes uint8 frames ``(T, HEIGHT, WIDTH, 3)`` at 10 fps with ``codec`` into ``path``."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random SRL model (4x4 patches, 6 slots) saved in the srl-train checkpoint format."""
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(compose_experiment("srl/synthetic", TINY_MODEL), resolve=True)
    torch.manual_seed(0)
    model = build_model(config)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save(checkpoint_dict(model, config), path)
    return path, model.eval()


@pytest.fixture(scope="module")
def video() -> np.ndarray:
    """uint8 (T, H, W, 3): two coloured squares moving over a grey background."""
    frames = np.full((FRAMES, HEIGHT, WIDTH, 3), 90, dtype=np.uint8)
    for t in range(FRAMES):
        frames[t, 4 + t : 18 + t, 3 + 2 * t : 17 + 2 * t] = (230, 40, 40)
        frames[t, 22:36, 30 - t : 44 - t] = (40, 200, 60)
    return frames


@pytest.fixture(scope="module")
def inputs(video, tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    folder = root / "frames"
    folder.mkdir()
    for t, frame in enumerate(video):
        Image.fromarray(frame).save(folder / f"frame_{t}.png")
    mp4 = root / "clip.mp4"
    write_video(mp4, video, "libx264")
    return {"folder": folder, "mp4": mp4}


def _prepare(video: np.ndarray, size: int) -> torch.Tensor:
    from srl_plugin.data.families import prepare_video

    return prepare_video(video, size).unsqueeze(0)


@pytest.mark.parametrize("window", [1, 3, 7])
def test_streaming_in_windows_equals_one_pass(tiny_checkpoint, video, window) -> None:
    _, model = tiny_checkpoint
    clip = _prepare(video, 32)
    with torch.no_grad():
        whole = model(clip)
        parts = list(stream(model, frame_windows({"video": clip}, window)))
    assert len(parts) == -(-FRAMES // window)
    for name in ("slots", "decoder_masks", "grouping_masks", "predicted_slots"):
        streamed = torch.cat([part[name] for part in parts], dim=1)
        torch.testing.assert_close(streamed, whole[name], rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


def test_streaming_features_matches_reference_model(reference_dir) -> None:
    reference = torch.load(reference_dir / "srl_model_reference.pt", weights_only=True)
    model = model_from_official_state_dict(reference["state_dict"]).eval()
    features = reference["backbone_features"]
    with torch.no_grad():
        whole = model.forward_features(features)
        streamed = list(stream(model, frame_windows({"backbone_features": features}, 1)))
    torch.testing.assert_close(torch.cat([p["decoder_masks"] for p in streamed], 1), whole["decoder_masks"], rtol=1e-5, atol=1e-7)


def _check_outputs(out, model, frames=FRAMES):
    names = sorted(p.name for p in out.iterdir())
    assert names == ["mask_grid.png", "masks.npz", "overlay.gif", "overlay.mp4", "slots.npy"]
    masks = np.load(out / "masks.npz")
    assert masks["slot_ids"].shape == (frames, HEIGHT, WIDTH) and masks["slot_ids"].dtype == np.uint8
    assert masks["slot_ids"].max() < model.num_slots
    assert masks["soft_masks"].shape == (frames, model.num_slots, 4, 4)
    np.testing.assert_allclose(masks["soft_masks"].sum(axis=1), 1.0, rtol=1e-5)
    assert np.load(out / "slots.npy").shape == (frames, model.num_slots, 32)
    with av.open(str(out / "overlay.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == frames and decoded[0].shape == (HEIGHT, WIDTH, 3)
    with Image.open(out / "overlay.gif") as gif:
        assert gif.n_frames == frames and gif.size == (WIDTH, HEIGHT)
    with Image.open(out / "mask_grid.png") as grid:
        assert grid.size[0] > grid.size[1]
    return masks


def test_infer_on_frame_folder_matches_one_pass(tiny_checkpoint, inputs, video, tmp_path, capsys) -> None:
    path, model = tiny_checkpoint
    out = tmp_path / "out"
    assert main([str(inputs["folder"]), "--checkpoint", str(path), "--out", str(out), "--window", "3", "--device", "cpu"]) == 0
    assert "7 frames" in capsys.readouterr().out
    masks = _check_outputs(out, model)
    with torch.no_grad():
        whole = model(_prepare(video, 32))
    expected = slot_ids_from_soft(model.eval_masks(whole), (HEIGHT, WIDTH))[0]
    np.testing.assert_array_equal(masks["slot_ids"], expected.numpy())
    np.testing.assert_allclose(np.load(out / "slots.npy"), whole["slots"][0].numpy(), rtol=1e-5, atol=1e-6)


def test_infer_on_mp4(tiny_checkpoint, inputs, tmp_path) -> None:
    path, model = tiny_checkpoint
    out = tmp_path / "out"
    assert main([str(inputs["mp4"]), "--checkpoint", str(path), "--out", str(out), "--window", "4"]) == 0
    _check_outputs(out, model)


def test_infer_on_shard_writes_one_folder_per_sample(tiny_checkpoint, video, tmp_path) -> None:
    path, model = tiny_checkpoint
    shard = tmp_path / "videos-000000.tar"
    write_shard(shard, [("clip_a", {"video": video}), ("clip_b", {"video": video[:5]})])
    assert main([str(shard), "--checkpoint", str(path), "--out", str(tmp_path / "out")]) == 0
    _check_outputs(tmp_path / "out" / "clip_a", model)
    _check_outputs(tmp_path / "out" / "clip_b", model, frames=5)


def test_overlay_shape_and_colours() -> None:
    palette = slot_palette(6)
    assert palette.shape == (6, 3) and palette.dtype == np.uint8
    assert len({tuple(colour) for colour in palette}) == 6
    np.testing.assert_array_equal(slot_palette(3), palette[:3])
    frames = np.zeros((2, 5, 4, 3), dtype=np.uint8)
    frames[1] = 120
    ids = np.arange(40).reshape(2, 5, 4) % 6
    blended = overlay_masks(frames, ids, palette, alpha=0.5)
    assert blended.shape == (2, 5, 4, 3) and blended.dtype == np.uint8
    np.testing.assert_array_equal(blended[0], np.round(palette[ids[0]] * 0.5).astype(np.uint8))
    np.testing.assert_array_equal(overlay_masks(frames, ids, palette, alpha=1.0), palette[ids])
    np.testing.assert_array_equal(overlay_masks(frames, ids, palette, alpha=0.0), frames)
    soft = [np.full((6, 5, 4), 1 / 6, dtype=np.float32)] * 2
    grid = mask_grid(list(frames), soft, list(ids), palette, cell_size=10, gap=2)
    # 2 rows x (frame, overlay, 6 slots) cells of 10 x 8 pixels (longer side 10), 2-pixel white gaps
    assert grid.shape == (2 * 10 + 2, 8 * 8 + 7 * 2, 3)
    np.testing.assert_array_equal(grid[10:12], 255)
    def doubled(image):
        return np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)

    np.testing.assert_array_equal(grid[:10, 0:8], doubled(frames[0]))
    np.testing.assert_array_equal(grid[:10, 10:18], doubled(overlay_masks(frames[0], ids[0], palette)))
    np.testing.assert_array_equal(grid[:10, 30:38], np.broadcast_to(np.round(palette[1] / 12), (10, 8, 3)))
    expected = np.round((120 + palette[1].astype(np.float64)) / 12)
    np.testing.assert_array_equal(grid[12:, 30:38], np.broadcast_to(expected, (10, 8, 3)))


def test_bad_inputs_give_clear_errors(tiny_checkpoint, inputs, reference_dir, tmp_path, capsys) -> None:
    path, _ = tiny_checkpoint
    out = str(tmp_path / "out")
    (tmp_path / "broken.mp4").write_bytes(b"this is not a video")
    assert main([str(tmp_path / "broken.mp4"), "--checkpoint", str(path), "--out", out]) == 1
    assert "cannot read video" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.mp4"), "--checkpoint", str(path), "--out", out]) == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert main([str(tmp_path / "notes.txt"), "--checkpoint", str(path), "--out", out]) == 1
    assert "unsupported input" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--checkpoint", str(path), "--out", out]) == 1
    assert "holds no frames" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([str(inputs["folder"]), "--checkpoint", str(path), "--out", out, "--device", "cuda"]) == 1
        assert "CUDA is not available" in capsys.readouterr().err

    official = tmp_path / "official.ckpt"
    reference = torch.load(reference_dir / "srl_model_reference.pt", weights_only=True)
    torch.save({"state_dict": reference["state_dict"]}, official)
    assert main([str(inputs["folder"]), "--checkpoint", str(official), "--out", out]) == 1
    assert "srl-import-checkpoint" in capsys.readouterr().err
    assert main([str(inputs["folder"]), "--checkpoint", str(tmp_path / "notes.txt"), "--out", out]) == 1
    assert "not a readable torch checkpoint" in capsys.readouterr().err


def test_checkpoint_without_backbone_weights_says_so(inputs, reference_dir, tmp_path, capsys) -> None:
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache("timm/vit_small_patch14_dinov2.lvd142m", "model.safetensors"), str):
        pytest.skip("DINOv2 ViT-S/14 weights are cached here, so the backbone can be built")
    reference = torch.load(reference_dir / "srl_model_reference.pt", weights_only=True)
    torch.save({"state_dict": reference["state_dict"]}, tmp_path / "official.ckpt")
    converted = import_official_checkpoint(tmp_path / "official.ckpt", tmp_path / "ours.ckpt")
    assert main([str(inputs["folder"]), "--checkpoint", str(converted), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert "holds no backbone weights" in error and "backbone='none'" in error


def test_webm_input(tiny_checkpoint, video, tmp_path) -> None:
    path, model = tiny_checkpoint
    webm = tmp_path / "clip.webm"
    write_video(webm, video, "libvpx-vp9")
    assert main([str(webm), "--checkpoint", str(path), "--out", str(tmp_path / "out"), "--window", "2"]) == 0
    _check_outputs(tmp_path / "out", model)


def test_frames_are_read_window_by_window(tiny_checkpoint, tmp_path, monkeypatch) -> None:
    """Streaming: the reader is never more than one window ahead of what has been written (bounded memory)."""
    from srl_plugin.inference import VideoSource, infer_video
    from srl_plugin.inference.writers import OverlayWriter

    _, model = tiny_checkpoint
    window, total = 4, 30
    written = {"frames": 0}
    original_write = OverlayWriter.write

    def counting_write(self, frame):
        written["frames"] += 1
        original_write(self, frame)

    def frames():
        for index in range(total):
            assert index - written["frames"] <= window, "the reader ran ahead of the writer"
            yield np.full((HEIGHT, WIDTH, 3), index * 8, dtype=np.uint8)

    monkeypatch.setattr(OverlayWriter, "write", counting_write)
    source = VideoSource("long", None, 10.0, frames)
    result = infer_video(model, source, tmp_path / "out", window=window, write_mp4=False, gif_frames=5, progress=False)
    assert result.num_frames == total == written["frames"]
    assert np.load(tmp_path / "out" / "masks.npz")["slot_ids"].shape == (total, HEIGHT, WIDTH)
    with Image.open(tmp_path / "out" / "overlay.gif") as gif:
        assert gif.n_frames == 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_run_matches_cpu_run(tiny_checkpoint, inputs, tmp_path) -> None:
    path, _ = tiny_checkpoint
    for device in ("cpu", "cuda"):
        assert main([str(inputs["folder"]), "--checkpoint", str(path), "--out", str(tmp_path / device), "--device", device]) == 0
    cpu, gpu = (np.load(tmp_path / device / "masks.npz") for device in ("cpu", "cuda"))
    np.testing.assert_allclose(gpu["soft_masks"], cpu["soft_masks"], atol=1e-4)
    assert (gpu["slot_ids"] == cpu["slot_ids"]).mean() > 0.99


def test_a_failing_video_leaves_no_partial_outputs(tiny_checkpoint, tmp_path) -> None:
    from srl_plugin.inference import VideoSource, infer_video

    _, model = tiny_checkpoint

    def frames():
        for index in range(6):
            if index == 5:
                raise ValueError("decoding clip.mp4 failed: corrupt packet")
            yield np.full((HEIGHT, WIDTH, 3), 30 * index, dtype=np.uint8)

    with pytest.raises(ValueError, match="corrupt packet"):
        infer_video(model, VideoSource("clip", 6, 10.0, frames), tmp_path / "out", window=2, progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_videosaur_runs_are_reproducible_with_a_seed_and_window_independent(inputs, tmp_path) -> None:
    from omegaconf import OmegaConf

    from srl_plugin.inference import run_inference

    config = OmegaConf.to_container(compose_experiment("videosaur/synthetic", TINY_MODEL), resolve=True)
    torch.manual_seed(0)
    torch.save(checkpoint_dict(build_model(config), config), tmp_path / "videosaur.ckpt")
    runs = {}
    for name, window, seed in (("a", 2, 3), ("b", 7, 3), ("c", 7, 4)):
        run_inference(inputs["folder"], tmp_path / "videosaur.ckpt", tmp_path / name, window=window, seed=seed,
                      device="cpu", progress=False)
        runs[name] = np.load(tmp_path / name / "slots.npy")
    np.testing.assert_allclose(runs["a"], runs["b"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(runs["b"], runs["c"])


def test_ytvis_config_crops_the_central_square(inputs, video, tmp_path) -> None:
    from omegaconf import OmegaConf

    from srl_plugin.data.families import dataset_family
    from srl_plugin.inference import run_inference

    config = OmegaConf.to_container(compose_experiment("srl/synthetic", [*TINY_MODEL, "data.dataset_type=ytvis"]), resolve=True)
    torch.manual_seed(0)
    model = build_model(config).eval()
    torch.save(checkpoint_dict(model, config), tmp_path / "ytvis.ckpt")
    run_inference(inputs["folder"], tmp_path / "ytvis.ckpt", tmp_path / "out", window=3, device="cpu", progress=False)
    slot_ids = np.load(tmp_path / "out" / "masks.npz")["slot_ids"]
    assert slot_ids.shape == (FRAMES, HEIGHT, HEIGHT)
    cropped = dataset_family("ytvis").model_view(video)
    np.testing.assert_array_equal(cropped, video[:, :, 4:44])
    with torch.no_grad():
        whole = model(_prepare(cropped, 32))
    expected = slot_ids_from_soft(model.eval_masks(whole), (HEIGHT, HEIGHT))[0]
    np.testing.assert_array_equal(slot_ids, expected.numpy())
