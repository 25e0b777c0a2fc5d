"""Data pipeline: chunking, resizing, normalisation, whole-clip flips, one-hot masks, batches, DDP splitting."""
from __future__ import annotations

import itertools
import random
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srl_plugin.data import VideoDataModule
from srl_plugin.data.families import prepare_masks, prepare_train_clip, prepare_video
from srl_plugin.data.shards import write_shard
from srl_plugin.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    chunk_starts,
    hflip,
    sample_chunk_start,
)

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def unnormalize_to_uint8(video: torch.Tensor) -> torch.Tensor:
    """Inverse of the pipeline's normalisation for unresized frames: (..., 3, H, W) -> uint8 values."""
    return torch.round((video * STD + MEAN) * 255.0).to(torch.int64)


def coded_video(index: int, frames: int = 12, size: int = 16) -> np.ndarray:
    """Channel 0 = column index x 10 (reveals flips), channel 1 = frame index x 10, channel 2 = video index."""
    video = np.zeros((frames, size, size, 3), dtype=np.uint8)
    video[..., 0] = (np.arange(size) * 10)[None, None, :]
    video[..., 1] = (np.arange(frames) * 10)[:, None, None]
    video[..., 2] = index
    return video


def coded_segmentations(index: int, frames: int = 12, size: int = 16, objects: int = 3) -> np.ndarray:
    ids = np.zeros((frames, size, size, 1), dtype=np.uint8)
    for k in range(1, objects + 1):
        ids[:, k * 3 : k * 3 + 2, (index + k) % size] = k
    return ids


def write_coded_shards(folder: Path, split: str, videos_per_shard: list[int], **kwargs) -> str:
    """Shards `<split>-000000.tar`, ... of coded videos with keys `%04d`; returns the brace pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    index = 0
    for shard, count in enumerate(videos_per_shard):
        samples = []
        for _ in range(count):
            samples.append((f"{index:04d}", {"video": coded_video(index, **kwargs),
                                             "segmentations": coded_segmentations(index, **kwargs)}))
            index += 1
        write_shard(folder / f"{split}-{shard:06d}.tar", samples)
    return f"{split}-{{000000..{len(videos_per_shard) - 1:06d}}}.tar"


def make_datamodule(root: Path, train: list[int] = (3, 3), val: list[int] = (2, 3, 2), **kwargs) -> VideoDataModule:
    options = dict(root=str(root), input_size=16, num_classes=4, chunk_size=4, batch_size=4, val_batch_size=2,
                   num_workers=0, shuffle_buffer=4, h_flip_prob=0.5, seed=0)
    options.update(kwargs)
    return VideoDataModule(write_coded_shards(root, "train", list(train)), write_coded_shards(root, "val", list(val)),
                           **options)


def test_chunk_starts_are_aligned_and_drop_the_remainder() -> None:
    assert chunk_starts(24, 4) == [0, 4, 8, 12, 16, 20]
    assert chunk_starts(10, 4) == [0, 4]
    assert chunk_starts(4, 4) == [0]
    with pytest.raises(ValueError, match="fewer than chunk_size"):
        chunk_starts(3, 4)
    rng = random.Random(0)
    assert {sample_chunk_start(10, 4, rng) for _ in range(200)} == {0, 4}


def test_prepare_video_normalisation_is_exact() -> None:
    video = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    video[..., 0], video[..., 1], video[..., 2] = 0, 128, 255
    out = prepare_video(video, 8)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 8, 8)
    for channel, value in enumerate((0, 128, 255)):
        expected = (value / 255.0 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        torch.testing.assert_close(out[:, channel], torch.full((2, 8, 8), expected), rtol=1e-5, atol=1e-6)


def test_bicubic_resize_is_clamped_before_normalising() -> None:
    checker = ((np.indices((8, 8)).sum(axis=0) % 2) * 255).astype(np.uint8)
    video = np.repeat(checker[None, :, :, None], 3, axis=3)
    raw = F.interpolate(torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255, size=(20, 20), mode="bicubic",
                        align_corners=False)
    assert raw.max() > 1.0 and raw.min() < 0.0, "bicubic overshoots on this input"
    out = prepare_video(video, 20) * STD + MEAN
    assert out.shape == (1, 3, 20, 20)
    assert out.max() <= 1.0 + 1e-6 and out.min() >= -1e-6
    torch.testing.assert_close(out, raw.clamp(0, 1), rtol=1e-5, atol=1e-6)


def test_train_clip_is_one_aligned_chunk_flipped_as_a_whole() -> None:
    video = coded_video(0, frames=12)
    starts, flips = set(), set()
    for seed in range(60):
        clip = unnormalize_to_uint8(prepare_train_clip(video, 4, 16, 0.5, random.Random(seed)))
        frame_codes = clip[:, 1, 0, 0] // 10
        start = int(frame_codes[0])
        assert start % 4 == 0 and frame_codes.tolist() == list(range(start, start + 4))
        columns = clip[:, 0, 0, :] // 10
        flipped = bool(columns[0, 0] == 15)
        expected = torch.arange(16).flip(0) if flipped else torch.arange(16)
        assert torch.equal(columns, expected.expand(4, 16)), "every frame of a clip shares the flip"
        starts.add(start)
        flips.add(flipped)
    assert starts == {0, 4, 8} and flips == {True, False}


def test_flip_probability_one_flips_and_zero_does_not() -> None:
    video = coded_video(0)
    plain = prepare_train_clip(video, 4, 16, 0.0, random.Random(3))
    flipped = prepare_train_clip(video, 4, 16, 1.0, random.Random(3))
    assert torch.equal(flipped, hflip(plain))
    assert not torch.equal(flipped, plain)


def test_one_hot_masks_match_a_nearest_exact_upsampling() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, size=(3, 10, 10, 1)).astype(np.uint8)
    masks = prepare_masks(ids, num_classes=8, mask_size=23)
    assert masks.dtype == torch.float32 and masks.shape == (3, 8, 23, 23)
    assert torch.equal(masks.sum(dim=1), torch.ones(3, 23, 23))
    source = np.floor((np.arange(23) + 0.5) * 10 / 23).astype(int)
    expected = ids[:, source][:, :, source, 0]
    assert torch.equal(masks.argmax(dim=1), torch.from_numpy(expected).long())
    assert torch.equal(masks[:, 0], torch.from_numpy(expected == 0).float()), "channel 0 is the background"
    assert masks[:, 6:].sum() == 0
    with pytest.raises(ValueError, match="num_classes=5"):
        prepare_masks(ids, num_classes=5, mask_size=10)


def test_training_batches_are_infinite_chunked_and_normalised(tmp_path: Path) -> None:
    datamodule = make_datamodule(tmp_path)
    batches = list(itertools.islice(iter(datamodule.train_dataloader()), 5))
    assert all(set(b) == {"video"} for b in batches)
    for batch in batches:
        video = batch["video"]
        assert video.dtype == torch.float32 and video.shape == (4, 4, 3, 16, 16)
        values = unnormalize_to_uint8(video)
        assert values.min() >= 0 and values.max() <= 255
        frames = values[:, :, 1, 0, 0] // 10
        assert torch.equal(frames - frames[:, :1], torch.arange(4).expand(4, 4)) and (frames[:, 0] % 4 == 0).all()
        columns = values[:, :, 0, 0, :] // 10
        for clip in columns:
            assert (clip == clip[0]).all(), "flip decided once per clip"
    seen = {int(v) for b in batches for v in unnormalize_to_uint8(b["video"])[:, 0, 2, 0, 0]}
    assert seen == set(range(6)), "20 clips drawn from 6 videos by resampling"


def test_training_stream_is_reproducible_for_a_seed(tmp_path: Path) -> None:
    first = next(iter(make_datamodule(tmp_path / "a", seed=3).train_dataloader()))["video"]
    second = next(iter(make_datamodule(tmp_path / "b", seed=3).train_dataloader()))["video"]
    other = next(iter(make_datamodule(tmp_path / "c", seed=4).train_dataloader()))["video"]
    assert torch.equal(first, second) and not torch.equal(first, other)


def test_validation_batches_hold_whole_videos_and_one_hot_masks(tmp_path: Path) -> None:
    datamodule = make_datamodule(tmp_path, mask_size=24)
    batches = list(datamodule.val_dataloader())
    assert [b["__key__"] for b in batches] == [["0000", "0001"], ["0002", "0003"], ["0004", "0005"], ["0006"]]
    for batch in batches:
        assert batch["video"].shape == (len(batch["__key__"]), 12, 3, 16, 16)
        assert batch["masks"].dtype == torch.float32 and batch["masks"].shape == (len(batch["__key__"]), 12, 4, 24, 24)
        for key, video, masks in zip(batch["__key__"], batch["video"], batch["masks"]):
            index = int(key)
            assert torch.equal(video, prepare_video(coded_video(index), 16))
            assert torch.equal(masks, prepare_masks(coded_segmentations(index), 4, 24))
    assert list(datamodule.val_dataloader())[0]["__key__"] == ["0000", "0001"], "deterministic"


@pytest.mark.parametrize("world, workers", [(1, 2), (2, 1), (2, 2), (3, 2)])
@pytest.mark.parametrize("val_size", [None, 5])
def test_validation_split_covers_every_video_once(tmp_path: Path, monkeypatch, world: int, workers: int,
                                                  val_size: int | None) -> None:
    datamodule = make_datamodule(tmp_path, val=[2, 3, 2, 1], num_workers=workers, val_size=val_size)
    keys = []
    for rank in range(world):
        monkeypatch.setattr(datamodule, "_rank_world", lambda rank=rank: (rank, world))
        keys += [key for batch in datamodule.val_dataloader() for key in batch["__key__"]]
    expected = [f"{i:04d}" for i in range(8 if val_size is None else val_size)]
    assert sorted(keys) == expected


def test_data_root_from_environment(tmp_path: Path, monkeypatch) -> None:
    pattern = write_coded_shards(tmp_path, "val", [2])
    monkeypatch.setenv("SRL_DATA_ROOT", str(tmp_path))
    datamodule = VideoDataModule(pattern, pattern, input_size=16, num_classes=4, num_workers=0)
    assert [b["__key__"] for b in datamodule.val_dataloader()] == [["0000", "0001"]]
    absolute = VideoDataModule(str(tmp_path / pattern), str(tmp_path / pattern), root="/nonexistent",
                               input_size=16, num_classes=4, num_workers=0)
    assert len(list(absolute.val_dataloader())) == 1


def test_synthetic_dataset_is_generated_by_prepare_data(tmp_path: Path) -> None:
    datamodule = VideoDataModule(
        "synthetic-train-{000000..000001}.tar", "synthetic-validation-{000000..000001}.tar", root=str(tmp_path),
        input_size=24, mask_size=32, num_classes=11, batch_size=2, val_batch_size=2, num_workers=0,
        shuffle_buffer=2, synthetic=dict(preset="easy", train_videos=4, val_videos=3, frames=8, size=32,
                                         train_shards=2, val_shards=2),
    )
    datamodule.prepare_data()
    assert next(iter(datamodule.train_dataloader()))["video"].shape == (2, 4, 3, 24, 24)
    batches = list(datamodule.val_dataloader())
    assert sum(len(b["__key__"]) for b in batches) == 3
    assert batches[0]["masks"].shape == (2, 8, 11, 32, 32)
    assert (batches[0]["masks"][:, :, 1:].sum(dim=(1, 3, 4)) > 0).any(), "objects appear in the masks"


def _ytvis_shard(folder: Path, lengths: list[int], height: int = 30, width: int = 50) -> str:
    rng = np.random.default_rng(0)
    samples = []
    for index, frames in enumerate(lengths):
        video = rng.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8)
        masks = np.zeros((frames, height, width, 2), dtype=np.uint8)
        masks[:, 5:15, 12:20, 0] = 3
        masks[:, 20:25, 0:45, 1] = 7
        samples.append((f"{index:04d}", {"video": video, "segmentations": masks}))
    folder.mkdir(parents=True, exist_ok=True)
    write_shard(folder / "ytvis-000000.tar", samples)
    return "ytvis-{000000..000000}.tar"


def test_ytvis_training_resizes_the_short_side_and_crops() -> None:
    video = np.random.default_rng(1).integers(0, 256, size=(4, 30, 50, 3), dtype=np.uint8)
    resized = F.interpolate(torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255, size=(24, 40), mode="bicubic",
                            align_corners=False).clamp(0, 1)
    lefts = set()
    for seed in range(12):
        clip = prepare_train_clip(video, 4, 24, 0.0, random.Random(seed), dataset_type="ytvis") * STD + MEAN
        assert clip.shape == (4, 3, 24, 24)
        matches = [left for left in range(17)
                   if torch.allclose(clip, resized[..., :, left : left + 24], rtol=1e-5, atol=1e-5)]
        assert len(matches) == 1, "the clip is one 24x24 crop of the short-side-resized frames"
        lefts.add(matches[0])
    assert len(lefts) > 1, "the crop position is random"


def test_ytvis_validation_crops_the_centre_and_keeps_instances(tmp_path: Path) -> None:
    pattern = _ytvis_shard(tmp_path, [6, 5])
    datamodule = VideoDataModule(pattern, pattern, root=str(tmp_path), dataset_type="ytvis", input_size=20,
                                 mask_size=15, num_classes=25, val_batch_size=1, num_workers=0)
    batches = list(datamodule.val_dataloader())
    assert [b["video"].shape for b in batches] == [(1, 6, 3, 20, 20), (1, 5, 3, 20, 20)]
    masks = batches[0]["masks"][0]
    assert masks.shape == (6, 25, 15, 15) and set(masks.unique().tolist()) == {0.0, 1.0}
    assert masks[:, 2:].sum() == 0, "instance channels are zero-padded to num_classes"
    # central 30x30 crop starts at column 10; instance 0 covers rows 5-14, crop columns 2-9 -> scaled by 0.5
    assert torch.equal(masks[0, 0].nonzero()[:, 0].unique(), torch.arange(2, 6 + 1))
    assert torch.equal(masks[0, 0].nonzero()[:, 1].unique(), torch.arange(1, 4 + 1))
    assert (masks.sum(dim=1) == 0).any(), "no background channel: unlabelled pixels are all-zero"
    cropped = torch.from_numpy(_read_first_video(tmp_path / "ytvis-000000.tar"))[:, :, 10:40]
    expected = F.interpolate(cropped.permute(0, 3, 1, 2).float() / 255, size=(20, 20), mode="bicubic",
                             align_corners=False).clamp(0, 1)
    torch.testing.assert_close(batches[0]["video"][0] * STD + MEAN, expected, rtol=1e-5, atol=1e-5)
    mixed = VideoDataModule(pattern, pattern, root=str(tmp_path), dataset_type="ytvis", input_size=20,
                            num_classes=25, val_batch_size=2, num_workers=0)
    assert [b["video"].shape[:2] for b in mixed.val_dataloader()] == [(1, 6), (1, 5)], "lengths are not mixed"


def _read_first_video(path: Path) -> np.ndarray:
    from srl_plugin.data import iter_shard_samples

    return next(iter_shard_samples(str(path), mask_channels=None))["video"]


class _Recorder(L.LightningModule):
    """Trains one scalar on the clips and records the training shapes and validation keys."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.val_keys: list[str] = []
        self.train_shapes: list[tuple[int, ...]] = []

    def training_step(self, batch, batch_idx):
        self.train_shapes.append(tuple(batch["video"].shape))
        return (batch["video"].mean() - self.weight) ** 2

    def validation_step(self, batch, batch_idx):
        assert batch["masks"].shape[:2] == batch["video"].shape[:2]
        self.val_keys += batch["__key__"]

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_trainer_runs_the_streams(tmp_path: Path) -> None:
    datamodule = make_datamodule(tmp_path / "data", num_workers=1)
    module = _Recorder()
    trainer = L.Trainer(max_steps=3, val_check_interval=3, check_val_every_n_epoch=None, accelerator="cpu",
                        devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=datamodule)
    assert module.train_shapes == [(4, 4, 3, 16, 16)] * 3
    assert sorted(module.val_keys) == [f"{i:04d}" for i in range(7)]
