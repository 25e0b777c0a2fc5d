"""`srl-convert`: the official YT-VIS 2021 preparation on a small fake train folder (RLE, resizing, split,
shards, resuming, errors naming the file), then `srl-train` / `srl-eval` of VideoSAUR and SRL on the result
(random backbone, tiny sizes, videos shorter than a clip and a chunk among them); unlabelled video shards."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools import mask as coco_mask

from srl_plugin.convert import cli
from srl_plugin.convert.sharding import ConversionError
from srl_plugin.convert.ytvis import decode_segmentation, short_side_target
from srl_plugin.data.shards import iter_shard_samples
from srl_plugin.training import cli_eval, cli_train
from conftest import TINY_VIT_32

# (video id, length, height, width, [(category id, iscrowd, first visible frame)]) in instances.json order;
# ids 3 and 5 are shorter than a 4-frame training clip / 6-frame validation chunk
VIDEOS = [
    (1, 9, 24, 40, [(7, 0, 0)]),
    (2, 3, 30, 20, [(2, 0, 0)]),
    (4, 8, 24, 40, []),
    (6, 13, 20, 30, [(5, 0, 2), (40, 1, 0)]),
    (3, 5, 24, 40, [(11, 0, 1)]),
    (7, 12, 30, 20, [(3, 0, 0), (9, 0, 4)]),
    (5, 7, 24, 36, [(1, 0, 0)]),
    (8, 14, 24, 40, [(25, 0, 3)]),
]
SHORT_SIDE = 16


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths of the column-major flattened mask, starting with zeros."""
    flat = mask.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    return {"counts": runs, "size": list(mask.shape)}


def object_mask(height: int, width: int, frame: int, channel: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    top, left = 2 + 8 * channel, (frame * 2 + 5 * channel) % (width - 6)
    mask[top : top + 6, left : left + 6] = 1
    return mask


def expected_masks(video: tuple) -> np.ndarray:
    """What the official preparation stores before resizing: (T, H, W, I), category ids, crowd dropped."""
    _, length, height, width, objects = video
    kept = [(category, first) for category, crowd, first in objects if not crowd]
    if not kept:
        return np.zeros((length, height, width, 1), dtype=np.uint8)
    masks = np.zeros((length, height, width, len(kept)), dtype=np.uint8)
    for channel, (category, first) in enumerate(kept):
        for frame in range(first, length):
            masks[frame, :, :, channel] = object_mask(height, width, frame, channel) * category
    return masks


def frame_pixels(video_id: int, length: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(video_id)
    return rng.integers(0, 256, size=(length, height, width, 3), dtype=np.uint8)


def make_ytvis_train_folder(root: Path) -> Path:
    """A YT-VIS 2021 train folder: JPEGImages/<name>/<frame>.png (lossless, so pixels can be compared) and
    instances.json with compressed RLE (even channels), uncompressed RLE (odd channels) and null frames."""
    videos, annotations = [], []
    for video_id, length, height, width, objects in VIDEOS:
        name = f"v{video_id:04d}"
        (root / "JPEGImages" / name).mkdir(parents=True)
        pixels = frame_pixels(video_id, length, height, width)
        files = []
        for frame in range(length):
            files.append(f"{name}/{frame:05d}.png")
            Image.fromarray(pixels[frame]).save(root / "JPEGImages" / files[-1])
        videos.append({"id": video_id, "length": length, "height": height, "width": width, "file_names": files})
        channel = 0
        for category, crowd, first in objects:
            segmentations = []
            for frame in range(length):
                mask = object_mask(height, width, frame, channel)
                if frame < first:
                    segmentations.append(None)
                elif channel % 2 == 0:
                    rle = coco_mask.encode(np.asfortranarray(mask))
                    segmentations.append({"counts": rle["counts"].decode(), "size": rle["size"]})
                else:
                    segmentations.append(uncompressed_rle(mask))
            annotations.append({"id": len(annotations) + 1, "video_id": video_id, "category_id": category,
                                "iscrowd": crowd, "segmentations": segmentations})
            channel += 0 if crowd else 1
    (root / "instances.json").write_text(json.dumps({"videos": videos, "annotations": annotations,
                                                     "categories": [{"id": i} for i in range(1, 41)]}))
    return root


def official_resize(array: np.ndarray, size: int) -> np.ndarray:
    """The official float round trip: uint8 -> /255 -> nearest-exact on (C, F, H, W) -> *255 -> byte."""
    height, width = array.shape[1:3]
    tensor = torch.from_numpy(array).float().permute(3, 0, 1, 2) / 255.0
    resized = F.interpolate(tensor, size=short_side_target(height, width, size), mode="nearest-exact")
    return (resized.permute(1, 2, 3, 0) * 255.0).byte().numpy()


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = make_ytvis_train_folder(tmp_path_factory.mktemp("ytvis_raw") / "train")
    out = tmp_path_factory.mktemp("ytvis2021")
    cli.main(["ytvis2021", "--src", str(src), "--out", str(out), "--val-videos", "5", "--short-side", str(SHORT_SIDE),
              "--train-per-shard", "2", "--val-per-shard", "2"])
    return out


def read_split(out: Path, split: str) -> list[list[dict]]:
    return [list(iter_shard_samples(str(path), mask_channels=None)) for path in sorted(out.glob(f"ytvis-{split}-*.tar"))]


def test_rle_decoding_compressed_uncompressed_and_absent() -> None:
    mask = object_mask(24, 40, 3, 1)
    rle = coco_mask.encode(np.asfortranarray(mask))
    np.testing.assert_array_equal(decode_segmentation({"counts": rle["counts"].decode(), "size": [24, 40]}, 24, 40),
                                  mask)
    np.testing.assert_array_equal(decode_segmentation(uncompressed_rle(mask), 24, 40), mask)
    np.testing.assert_array_equal(decode_segmentation(None, 24, 40), np.zeros((24, 40), np.uint8))
    assert uncompressed_rle(np.ones((2, 2), np.uint8))["counts"] == [0, 4]


def test_short_side_rule_is_the_official_floor() -> None:
    assert short_side_target(720, 1280, 320) == (320, 568)
    assert short_side_target(1280, 720, 320) == (568, 320)
    assert short_side_target(24, 36, 16) == (16, 24) and short_side_target(30, 20, 16) == (24, 16)


def test_split_keys_and_shards_follow_the_file_order(converted: Path) -> None:
    train, val = read_split(converted, "train"), read_split(converted, "validation")
    assert [[s["__key__"] for s in shard] for shard in train] == [["1", "2"], ["4"]]
    assert [[s["__key__"] for s in shard] for shard in val] == [["6", "3"], ["7", "5"], ["8"]]
    assert all(set(s) == {"__key__", "__url__", "video"} for shard in train for s in shard), "train: video only"


def test_frames_and_masks_are_resized_and_valued_by_category(converted: Path) -> None:
    samples = {s["__key__"]: s for shard in read_split(converted, "train") + read_split(converted, "validation")
               for s in shard}
    for video in VIDEOS:
        video_id, length, height, width, _ = video
        sample = samples[str(video_id)]
        expected_video = official_resize(frame_pixels(video_id, length, height, width), SHORT_SIDE)
        np.testing.assert_array_equal(sample["video"], expected_video)
        if "segmentations" in sample:
            np.testing.assert_array_equal(sample["segmentations"], official_resize(expected_masks(video), SHORT_SIDE))
    assert set(np.unique(samples["6"]["segmentations"][..., 0])) == {0, 5}, "the crowd annotation is dropped"
    assert samples["6"]["segmentations"].shape == (13, 16, 24, 1)
    assert not samples["6"]["segmentations"][:2].any(), "frames before the instance appears are empty"
    assert set(np.unique(samples["7"]["segmentations"])) == {0, 3, 9}
    assert samples["4"]["video"].shape == (8, 16, 26, 3)


def test_rerun_keeps_finished_shards_and_rewrites_missing_ones(converted: Path, tmp_path: Path, capsys) -> None:
    src = make_ytvis_train_folder(tmp_path / "train")
    before = {path.name: path.read_bytes() for path in converted.glob("*.tar")}
    (converted / "ytvis-validation-000001.tar").unlink()
    args = ["ytvis2021", "--src", str(src), "--out", str(converted), "--val-videos", "5", "--short-side",
            str(SHORT_SIDE), "--train-per-shard", "2", "--val-per-shard", "2"]
    cli.main(args)
    summary = capsys.readouterr().out
    assert '"validation": {"shards": 3, "written": 1, "kept": 2' in summary and '"written": 0, "kept": 2' in summary
    assert {path.name: path.read_bytes() for path in converted.glob("*.tar")} == before
    with pytest.raises(ConversionError, match=r"ytvis-train-000001.tar exists but holds other videos"):
        cli.main(["--traceback", *args[:6], "4", *args[7:]])


def test_errors_name_the_offending_file(tmp_path: Path) -> None:
    src = make_ytvis_train_folder(tmp_path / "train")
    out = tmp_path / "out"
    args = ["ytvis2021", "--src", str(src), "--out", str(out), "--val-videos", "5", "--short-side", "16"]
    (src / "JPEGImages" / "v0002" / "00001.png").write_bytes(b"not an image")
    with pytest.raises(ConversionError, match=r"cannot read frame .*v0002/00001.png of video 2"):
        cli.main(["--traceback", *args])
    with pytest.raises(ConversionError, match="not a YT-VIS 2021 train folder: it needs JPEGImages/"):
        cli.main(["--traceback", "ytvis2021", "--src", str(tmp_path), "--out", str(out)])
    with pytest.raises(ConversionError, match="--val-videos must be between 1 and 7"):
        cli.main(["--traceback", *args[:6], "8"])
    (out / "ytvis-train-000099.tar").write_bytes(b"")
    with pytest.raises(ConversionError, match="ytvis-train-000099.tar.*delete them or convert into an empty folder"):
        cli.main(["--traceback", *args])


TINY_YTVIS = {
    "videosaur/ytvis2021": ["model.renderer_dims=[32]", "model.allocator_blocks=1"],
    "srl/ytvis2021": ["model.decoder_hidden_dims=[32]", "model.topk_enc=4", "model.redundancy_k=2",
                      "trainer.precision=32-true"],
}


@pytest.mark.slow
@pytest.mark.parametrize("experiment", sorted(TINY_YTVIS))
def test_methods_train_validate_and_evaluate_on_the_converted_shards(converted: Path, tmp_path: Path,
                                                                      experiment: str, capsys) -> None:
    run = tmp_path / "run"
    cli_train.main([
        f"experiment={experiment}", f"data.root={converted}", f"output_dir={run}", *TINY_YTVIS[experiment],
        *TINY_VIT_32, "model.backbone.model_kwargs.depth=1", "model.num_slots=3", "model.slot_dim=16", "data.batch_size=2", "data.num_workers=0", "data.shuffle_buffer=1",
        "trainer.accelerator=cpu", "trainer.max_steps=2", "trainer.val_check_interval=2", "checkpoint_every_n_steps=2",
        "scheduler.warmup_steps=1", "trainer.enable_progress_bar=false", "evaluation.log_images=false",
        "num_threads=1",
    ])
    metrics = list((run / "csv").glob("version_*/metrics.csv"))
    assert metrics and "val/video_fg_ari" in metrics[0].read_text().splitlines()[0]
    cli_eval.main([str(run), "trainer.enable_progress_bar=false"])
    record = json.loads((run / "metrics.json").read_text())
    chunked = experiment.startswith("videosaur")
    # held-out lengths 13, 5, 12, 7, 14: whole videos -> 5; 6-frame chunks -> 2 + 0 + 2 + 1 + 2 = 7 of 4 videos
    assert (record["protocol"], record["num_videos"], record["num_chunks"]) == (
        ("full", 4, 7) if chunked else ("full", 5, None))
    assert all(-1.0 <= record[name] <= 1.0 for name in ("video_fg_ari", "image_fg_ari", "video_mbo", "image_mbo"))
    assert "srl-eval: protocol full" in capsys.readouterr().out
    official = [str(run), "trainer.enable_progress_bar=false", "evaluation.protocol=official"]
    if chunked:  # the official VideoSAUR loader has 8 workers, more than the 3 held-out shards here
        assert cli_eval.main(official) == 1
        assert "8 workers but there are only 3 validation shards" in capsys.readouterr().err
    else:  # the official loader (val_size 200, 1 worker) reads every one of the 5 held-out videos
        cli_eval.main(official)
        record = json.loads((run / "metrics.json").read_text())
        assert (record["protocol"], record["num_videos"], record["num_chunks"]) == ("official", 5, None)


def test_videos_from_frame_folders_become_training_shards(tmp_path: Path) -> None:
    src = tmp_path / "mine"
    for name, frames, (height, width) in (("walk.1", 7, (20, 30)), ("swim", 4, (30, 18))):
        folder = src / name
        folder.mkdir(parents=True)
        for frame in range(frames):
            Image.fromarray(np.full((height, width, 3), frame * 20, np.uint8)).save(folder / f"{frame}.png")
    (src / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    cli.main(["videos", "--src", str(src), "--out", str(out), "--short-side", "10", "--stride", "2"])
    (shard,) = sorted(out.glob("videos-train-*.tar"))
    samples = {s["__key__"]: s["video"] for s in iter_shard_samples(str(shard))}
    assert sorted(samples) == ["swim", "walk_1"]
    assert samples["walk_1"].shape == (4, 10, 15, 3) and samples["swim"].shape == (2, 16, 10, 3)
    assert samples["walk_1"][:, 0, 0, 0].tolist() == [0, 40, 80, 120], "every second frame"
    with pytest.raises(ConversionError, match="holds no video"):
        cli.main(["--traceback", "videos", "--src", str(tmp_path / "out"), "--out", str(tmp_path / "x")])
