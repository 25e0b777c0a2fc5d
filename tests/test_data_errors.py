"""Bad input: every error names the shard (and the sample); skip_bad_samples counts and reports skips."""
from __future__ import annotations

import itertools
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest

from srl_plugin.data import (
    BadSampleError,
    CorruptShardError,
    DataError,
    MissingShardsError,
    VideoDataModule,
    iter_shard_samples,
)
from srl_plugin.data.shards import write_shard


def good(frames: int = 8, size: int = 12, ids: int = 2) -> dict[str, np.ndarray]:
    segmentations = np.zeros((frames, size, size, 1), dtype=np.uint8)
    segmentations[:, :3, :3] = ids
    return {"video": np.full((frames, size, size, 3), 100, dtype=np.uint8), "segmentations": segmentations}


def shard(path: Path, samples: dict[str, dict[str, np.ndarray]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_shard(path, samples.items())
    return path


def datamodule(root: Path, pattern: str, **kwargs) -> VideoDataModule:
    options = dict(root=str(root), input_size=12, num_classes=4, chunk_size=4, batch_size=2, val_batch_size=1,
                   num_workers=0, shuffle_buffer=1)
    options.update(kwargs)
    return VideoDataModule(pattern, pattern, **options)


def member_offsets(path: Path) -> list[tuple[str, int, int]]:
    """(name, header offset, data offset) of every member."""
    with tarfile.open(path) as tar:
        return [(m.name, m.offset, m.offset_data) for m in tar.getmembers()]


def test_missing_shards_name_the_pattern_and_how_to_get_data(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SRL_DATA_ROOT", raising=False)
    module = datamodule(tmp_path, "movi_c-train-{000000..000304}.tar")
    with pytest.raises(MissingShardsError) as error:
        module.train_dataloader()
    message = str(error.value)
    assert str(tmp_path / "movi_c-train-{000000..000304}.tar") in message
    assert "305 of 305" in message
    assert "srl-make-synthetic" in message and "save_movi.py" in message and "SRL_DATA_ROOT" in message
    with pytest.raises(MissingShardsError, match="set root or \\$SRL_DATA_ROOT"):
        VideoDataModule("x-{0..1}.tar", "x-{0..1}.tar").val_dataloader()


def test_a_single_missing_shard_is_reported(tmp_path: Path) -> None:
    shard(tmp_path / "val-000000.tar", {"0000": good()})
    shard(tmp_path / "val-000002.tar", {"0001": good()})
    with pytest.raises(MissingShardsError, match=r"1 of 3 shard\(s\) missing .*val-000001.tar"):
        datamodule(tmp_path, "val-{000000..000002}.tar").val_dataloader()


@pytest.mark.parametrize(
    "arrays, split, match",
    [
        ({"segmentations": good()["segmentations"]}, "train", "missing key 'video'"),
        ({"video": good()["video"]}, "validation", "missing key 'segmentations'"),
        ({"video": good()["video"].astype(np.float32)}, "train", "'video' must be uint8 \\(T, H, W, 3\\), got float32"),
        ({"video": np.zeros((8, 12, 12, 4), np.uint8)}, "train", "'video' must be uint8 .*\\(8, 12, 12, 4\\)"),
        ({"video": good()["video"], "segmentations": np.zeros((8, 12, 12, 2), np.uint8)}, "validation",
         "'segmentations' must be uint8 \\(T, H, W, 1\\)"),
        ({"video": good()["video"], "segmentations": np.zeros((7, 12, 12, 1), np.uint8)}, "validation",
         "matching video \\(8, 12, 12, 3\\), got uint8 \\(7, 12, 12, 1\\)"),
        ({"video": good()["video"], "segmentations": good()["segmentations"].astype(np.int32)}, "validation",
         "'segmentations' must be uint8"),
        ({"video": good()["video"], "segmentations": good(ids=9)["segmentations"]}, "validation",
         "segmentation id 9 does not fit num_classes=4"),
    ],
)
def test_bad_samples_name_shard_and_sample(tmp_path: Path, arrays, split: str, match: str) -> None:
    path = shard(tmp_path / "bad-000000.tar", {"0000": good(), "0042": arrays})
    module = datamodule(tmp_path, "bad-{000000..000000}.tar", batch_size=1)
    loader = module.train_dataloader() if split == "train" else module.val_dataloader()
    with pytest.raises(BadSampleError, match=match) as error:
        list(itertools.islice(iter(loader), 4))
    assert f"shard {path}, sample '0042'" in str(error.value)


def test_reader_checks_segmentations_only_when_required(tmp_path: Path) -> None:
    path = shard(tmp_path / "train-000000.tar", {"0000": {"video": good()["video"]}})
    assert [s["__key__"] for s in iter_shard_samples(str(path))] == ["0000"]
    with pytest.raises(BadSampleError, match="missing key 'segmentations'"):
        list(iter_shard_samples(str(path), require_segmentations=True))


def _truncate(path: Path, size: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:size])


def _three_samples(tmp_path: Path) -> Path:
    return shard(tmp_path / "s-000000.tar", {"0000": good(), "0001": good(), "0002": good()})


def test_truncated_in_member_data(tmp_path: Path) -> None:
    path = _three_samples(tmp_path)
    name, _, data = member_offsets(path)[3]
    _truncate(path, data + 100)
    expected = f"shard {path} is corrupted or truncated .*last sample reached: '0001'"
    with pytest.raises(CorruptShardError, match=expected):
        list(iter_shard_samples(str(path)))


def test_truncated_at_a_member_boundary(tmp_path: Path) -> None:
    path = _three_samples(tmp_path)
    _, header, _ = member_offsets(path)[4]
    _truncate(path, header)
    expected = f"shard {path} is corrupted or truncated \\(neither .*last sample reached: '0001'"
    with pytest.raises(CorruptShardError, match=expected):
        list(iter_shard_samples(str(path)))


def test_truncated_inside_a_header(tmp_path: Path) -> None:
    path = _three_samples(tmp_path)
    _, header, _ = member_offsets(path)[2]
    _truncate(path, header + 200)
    with pytest.raises(CorruptShardError, match=f"shard {path}"):
        list(iter_shard_samples(str(path)))


def test_corrupted_header(tmp_path: Path) -> None:
    path = _three_samples(tmp_path)
    _, header, _ = member_offsets(path)[2]
    data = bytearray(path.read_bytes())
    data[header : header + 300] = b"\x17" * 300
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match=f"shard {path}.*last sample reached: '0000'"):
        list(iter_shard_samples(str(path)))


def test_corrupted_array_payload_names_the_sample(tmp_path: Path) -> None:
    path = _three_samples(tmp_path)
    _, _, data_offset = member_offsets(path)[2]
    data = bytearray(path.read_bytes())
    data[data_offset : data_offset + 6] = b"garbag"
    path.write_bytes(bytes(data))
    with pytest.raises(BadSampleError, match=f"shard {path}, sample '0001': cannot decode 0001.video.npy"):
        list(iter_shard_samples(str(path)))


def test_empty_or_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "g-000000.tar"
    path.write_bytes(b"this is not a tar archive" * 40)
    with pytest.raises(CorruptShardError, match=f"shard {path}"):
        list(iter_shard_samples(str(path)))
    with pytest.raises(CorruptShardError, match=f"shard {path}"):
        list(datamodule(tmp_path, "g-{000000..000000}.tar").val_dataloader())


def test_skip_bad_samples_counts_and_reports(tmp_path: Path, caplog) -> None:
    shard(tmp_path / "v-000000.tar", {"0000": good(), "0001": {"video": good()["video"]}, "0002": good()})
    corrupt = _three_samples(tmp_path / "c")
    _, _, data_offset = member_offsets(corrupt)[3]
    _truncate(corrupt, data_offset + 10)
    (tmp_path / "v-000001.tar").write_bytes(corrupt.read_bytes())
    shard(tmp_path / "v-000002.tar", {"0005": good()})

    strict = datamodule(tmp_path, "v-{000000..000002}.tar")
    with pytest.raises(BadSampleError, match="sample '0001'"):
        list(strict.val_dataloader())

    lenient = datamodule(tmp_path, "v-{000000..000002}.tar", skip_bad_samples=True)
    with caplog.at_level(logging.WARNING, logger="srl_plugin.data"):
        keys = [key for batch in lenient.val_dataloader() for key in batch["__key__"]]
    assert keys == ["0000", "0002", "0000", "0005"], "the corrupted shard keeps what precedes the damage"
    assert dict(lenient.bad_samples["validation"].counts) == {"BadSampleError": 1, "CorruptShardError": 1}
    messages = [r.getMessage() for r in caplog.records]
    assert any("sample '0001'" in m and "missing key 'segmentations'" in m for m in messages)
    assert any("v-000001.tar" in m and "truncated" in m for m in messages)
    assert any("validation pass finished with 2 bad input(s) skipped" in m for m in messages)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="srl_plugin.data"):
        assert [key for batch in lenient.val_dataloader() for key in batch["__key__"]] == keys
    assert lenient.bad_samples["validation"].total == 4
    assert any("validation pass finished with 2 bad input(s) skipped" in r.getMessage() for r in caplog.records)


def test_skip_bad_samples_keeps_the_training_stream_going(tmp_path: Path) -> None:
    shard(tmp_path / "t-000000.tar", {"0000": good(), "0001": {"video": good()["video"].astype(np.float32)}})
    strict = datamodule(tmp_path, "t-{000000..000000}.tar", batch_size=1)
    with pytest.raises(BadSampleError, match="sample '0001'"):
        list(itertools.islice(iter(strict.train_dataloader()), 6))
    lenient = datamodule(tmp_path, "t-{000000..000000}.tar", batch_size=1, skip_bad_samples=True)
    batches = list(itertools.islice(iter(lenient.train_dataloader()), 6))
    assert len(batches) == 6 and batches[0]["video"].shape == (1, 4, 3, 12, 12)
    assert lenient.bad_samples["train"].total >= 5


def test_configuration_errors(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="dataset_type must be one of"):
        VideoDataModule("a.tar", "a.tar", dataset_type="coco")
    monkeypatch.delenv("SRL_DATA_ROOT", raising=False)
    with pytest.raises(DataError, match="set the data module's root or \\$SRL_DATA_ROOT"):
        VideoDataModule("a.tar", "a.tar", synthetic={"preset": "easy"}).prepare_data()
