"""Validation subsets and lengths: chunks cut before batching, short videos, wildcard shard patterns, and the
`official` evaluation protocol on shards laid out like the official YT-VIS / MOVi validation shards."""
from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest

from srl_plugin.data import VideoDataModule
from srl_plugin.data.datamodule import ShortVideoError
from srl_plugin.data.protocol import OfficialLoader, official_selection
from srl_plugin.data.shards import MissingShardsError, shard_frame_counts, write_shard
from srl_plugin.runtime import compose_config
from srl_plugin.training.runner import build_datamodule

SIZE = 8


def ytvis_sample(frames: int, instances: int = 2) -> dict[str, np.ndarray]:
    masks = np.zeros((frames, SIZE, SIZE, instances), dtype=np.uint8)
    for channel in range(instances):
        masks[:, channel : channel + 2, :3, channel] = 5 + channel
    return {"video": np.full((frames, SIZE, SIZE, 3), 50, dtype=np.uint8), "segmentations": masks}


def write_ytvis_shards(root: Path, split: str, lengths: list[list[int]]) -> list[Path]:
    """`ytvis-<split>-%06d.tar` shards with videos of the given frame counts; keys `<shard><video>`."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard, shard_lengths in enumerate(lengths):
        path = root / f"ytvis-{split}-{shard:06d}.tar"
        write_shard(path, [(f"{shard:02d}{video:02d}", ytvis_sample(frames)) for video, frames in enumerate(shard_lengths)])
        paths.append(path)
    return paths


def official_layout_lengths() -> list[list[int]]:
    """30 shards of 10 videos of 24-36 frames (4-6 six-frame chunks each), as the official held-out split;
    every shard's video 3 is shorter than a 6-frame chunk."""
    rng = np.random.default_rng(0)
    lengths = [[int(frames) for frames in rng.integers(24, 37, size=10)] for _ in range(30)]
    for shard in lengths:
        shard[3] = 5
    return lengths


def ytvis_module(root: Path, **kwargs) -> VideoDataModule:
    options = dict(root=str(root), dataset_type="ytvis", input_size=SIZE, num_classes=25, chunk_size=4,
                   batch_size=2, val_batch_size=4, num_workers=0, shuffle_buffer=1, h_flip_prob=0.0)
    options.update(kwargs)
    return VideoDataModule("ytvis-train-*.tar", "ytvis-validation-*.tar", **options)


def test_chunks_are_cut_before_batching_so_mixed_lengths_share_batches(tmp_path: Path) -> None:
    write_ytvis_shards(tmp_path, "train", [[4, 9]])
    write_ytvis_shards(tmp_path, "validation", [[12, 18, 7], [6]])
    batches = list(ytvis_module(tmp_path, val_chunk_size=6).val_dataloader())
    keys = [key for batch in batches for key in batch["__key__"]]
    assert keys == ["0000_0", "0000_1", "0001_0", "0001_1", "0001_2", "0002_0", "0100_0"]
    assert [batch["video"].shape for batch in batches] == [(4, 6, 3, SIZE, SIZE), (3, 6, 3, SIZE, SIZE)]
    assert [index for batch in batches for index in batch["chunk_index"].tolist()] == [0, 1, 0, 1, 2, 0, 0]
    assert batches[0]["masks"].shape == (4, 6, 25, SIZE, SIZE)


def test_short_videos_are_skipped_with_a_count_or_stop_the_run(tmp_path: Path, caplog) -> None:
    write_ytvis_shards(tmp_path, "train", [[3, 8, 2]])
    write_ytvis_shards(tmp_path, "validation", [[12, 5, 6]])
    module = ytvis_module(tmp_path, val_chunk_size=6)
    with caplog.at_level(logging.WARNING, logger="srl_plugin.data"):
        keys = [key for batch in module.val_dataloader() for key in batch["__key__"]]
        clips = list(itertools.islice(iter(module.train_dataloader()), 5))
    assert keys == ["0000_0", "0000_1", "0002_0"]
    assert module.short_video_logs["validation"].total == 1
    assert module.short_video_logs["train"].total == 2, "the 3- and 2-frame videos are counted once each"
    assert all(clip["video"].shape == (2, 4, 3, SIZE, SIZE) for clip in clips)
    messages = [record.getMessage() for record in caplog.records]
    assert any("'0001'" in m and "5 frame(s), fewer than 6" in m for m in messages)
    assert any("validation pass skipped 1 video(s) shorter than a chunk" in m for m in messages)
    strict = ytvis_module(tmp_path, val_chunk_size=6, short_videos="error")
    with pytest.raises(ShortVideoError, match=r"ytvis-validation-000000.tar, sample '0001'.*short_videos=skip"):
        list(strict.val_dataloader())
    with pytest.raises(ShortVideoError, match="sample '000[02]': [32] frame"):
        list(itertools.islice(iter(strict.train_dataloader()), 5))
    with pytest.raises(ValueError, match="short_videos must be one of"):
        ytvis_module(tmp_path, short_videos="pad")


def test_wildcard_patterns_find_every_shard_in_name_order(tmp_path: Path) -> None:
    write_ytvis_shards(tmp_path, "validation", [[6]] * 12)
    module = ytvis_module(tmp_path)
    assert [key for batch in module.val_dataloader() for key in batch["__key__"]] == [f"{s:02d}00" for s in range(12)]
    with pytest.raises(MissingShardsError, match=r"ytvis-train-\*\.tar"):
        module.train_dataloader()


def test_frame_counts_come_from_the_array_headers(tmp_path: Path) -> None:
    (path,) = write_ytvis_shards(tmp_path, "validation", [[12, 5, 31]])
    assert shard_frame_counts(str(path)) == [("0000", 12), ("0001", 5), ("0002", 31)]


def test_official_srl_and_slotcontrast_ytvis_score_the_first_210_of_300_videos(tmp_path: Path) -> None:
    lengths = official_layout_lengths()
    write_ytvis_shards(tmp_path, "validation", lengths)
    loader = OfficialLoader(val_size=200, num_workers=1, batch_size=1)
    selection = official_selection(lengths, loader)
    assert selection.num_videos == len(selection.items) == 210
    assert [(item.shard, item.video) for item in selection.items] == [(s, v) for s in range(21) for v in range(10)]
    module = ytvis_module(tmp_path, val_batch_size=1, val_protocol="official", official_loader=vars(loader))
    keys = [key for batch in module.val_dataloader() for key in batch["__key__"]]
    assert keys == [f"{s:02d}{v:02d}" for s in range(21) for v in range(10)]
    full = ytvis_module(tmp_path, val_batch_size=1)
    assert sum(len(batch["__key__"]) for batch in full.val_dataloader()) == 300


def test_official_videosaur_ytvis_scores_224_chunks_from_shards_0_to_7(tmp_path: Path) -> None:
    lengths = official_layout_lengths()
    write_ytvis_shards(tmp_path, "validation", lengths)
    loader = OfficialLoader(val_size=200, num_workers=8, batch_size=16, chunk_size=6)
    # worker w reads shards w, w+8, ...; 28 padded videos per worker -> 8 * 28 / 16 = 14 batches taken in turn:
    # two batches (32 chunks) from workers 0-5, one (16 chunks) from workers 6 and 7
    expected = []
    for shard in range(8):
        chunks = [(shard, video, chunk) for video, frames in enumerate(lengths[shard]) for chunk in range(frames // 6)]
        expected += chunks[: 32 if shard < 6 else 16]
    selection = official_selection(lengths, loader)
    assert len(selection.items) == 224 and selection.shards == list(range(8))
    assert sorted((item.shard, item.video, item.chunk) for item in selection.items) == sorted(expected)
    assert all(video == 3 for _, video in selection.short), "only the 5-frame videos are passed over"
    module = ytvis_module(tmp_path, val_chunk_size=6, val_batch_size=16, val_protocol="official",
                          official_loader=vars(loader))
    batches = list(module.val_dataloader())
    keys = sorted(key for batch in batches for key in batch["__key__"])
    assert keys == sorted(f"{s:02d}{v:02d}_{c}" for s, v, c in expected)
    assert sum(int((batch["chunk_index"] == 0).sum()) for batch in batches) == module.selection.num_videos
    strict = ytvis_module(tmp_path, val_chunk_size=6, val_protocol="official", official_loader=vars(loader),
                          short_videos="error")
    with pytest.raises(ShortVideoError, match="shorter than a 6-frame chunk in the official subset"):
        strict.val_dataloader()


def test_official_movi_scores_all_250_videos() -> None:
    lengths = [[24] * 32] * 7 + [[24] * 26]
    for workers, batch in ((8, 16), (2, 16), (1, 4)):
        selection = official_selection(lengths, OfficialLoader(val_size=250, num_workers=workers, batch_size=batch))
        assert selection.num_videos == 250 and len(selection.items) == 250


def test_official_protocol_refuses_what_the_official_loader_refuses() -> None:
    with pytest.raises(ValueError, match="8 workers but there are only 4 validation shards"):
        official_selection([[24] * 10] * 4, OfficialLoader(val_size=40, num_workers=8, batch_size=16))
    with pytest.raises(ValueError, match="official loader scores 6-frame chunks but val_chunk_size=None"):
        VideoDataModule("a.tar", "a.tar", val_protocol="official",
                        official_loader={"val_size": 200, "num_workers": 8, "batch_size": 16, "chunk_size": 6})
    with pytest.raises(ValueError, match="protocol must be one of"):
        VideoDataModule("a.tar", "a.tar", val_protocol="paper")


SHIPPED = [f"{method}/{dataset}" for method in ("srl", "slotcontrast", "videosaur", "slotcurri", "ssync")
           for dataset in ("movi_c", "movi_e", "ytvis2021", "synthetic")]


def write_mixed_length_layout(root: Path, experiment: str) -> list[str]:
    """Two train and two validation shards named like the experiment's patterns, with videos of mixed lengths
    (one shorter than a training clip, one shorter than a 6-frame chunk); returns the overrides."""
    movi = "ytvis" not in experiment
    prefix = experiment.split("/")[1].replace("ytvis2021", "ytvis")
    lengths = {"train": [[24, 3], [9, 13]], "validation": [[24, 5, 17], [24, 7]]}
    for split, shards in lengths.items():
        for shard, shard_lengths in enumerate(shards):
            samples = []
            for video, frames in enumerate(shard_lengths):
                sample = ytvis_sample(frames)
                if movi:
                    sample["segmentations"] = (sample["segmentations"][..., :1] > 0).astype(np.uint8)
                samples.append((f"{shard}{video}", sample))
            root.mkdir(parents=True, exist_ok=True)
            write_shard(root / f"{prefix}-{split}-{shard:06d}.tar", samples)
    overrides = [f"data.root={root}", "data.num_workers=0", f"data.input_size={SIZE}", "data.synthetic=null"]
    if not experiment.endswith("ytvis2021"):
        overrides += [f"data.train_shards='{prefix}-train-{{000000..000001}}.tar'",
                      f"data.val_shards='{prefix}-validation-{{000000..000001}}.tar'"]
    return overrides


@pytest.mark.parametrize("experiment", SHIPPED)
def test_every_shipped_config_validates_and_trains_on_videos_of_mixed_lengths(tmp_path: Path, experiment: str) -> None:
    config = compose_config("train", [f"experiment={experiment}", *write_mixed_length_layout(tmp_path, experiment)])
    module = build_datamodule(config)
    batches = list(module.val_dataloader())
    chunk = config.evaluation.independent_chunks
    if chunk:
        assert chunk == 6 and {batch["video"].shape[1] for batch in batches} == {6}
        assert sum(len(batch["__key__"]) for batch in batches) == 4 + 2 + 4 + 1
    else:
        assert [len(batch["__key__"]) for batch in batches] == [1, 1, 1, 1, 1], "a length change closes a batch"
    train = next(iter(module.train_dataloader()))
    assert train["video"].shape[1:] == (config.data.chunk_size, 3, SIZE, SIZE)
