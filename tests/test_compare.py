"""`srl-compare`: parsing metrics.json records and formatting the leaderboard as Markdown, CSV and JSON."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch

from srl_plugin.training import cli_compare
from srl_plugin.training.leaderboard import PUBLISHED, leaderboard_rows, load_record, to_markdown


def write_run(root: Path, name: str, method: str, dataset: str, ari: float, mbo: float, step: int = 300,
              **scored) -> Path:
    run = root / name
    run.mkdir()
    record = {
        "method": method, "dataset": dataset, "step": step, "checkpoint": str(run / "checkpoints/last.ckpt"),
        "num_videos": 32, "video_fg_ari": ari, "image_fg_ari": ari / 2, "video_mbo": mbo, "image_mbo": mbo / 2,
        **scored,
    }
    (run / "metrics.json").write_text(json.dumps(record))
    return run


@pytest.fixture()
def runs(tmp_path: Path) -> list[Path]:
    return [
        write_run(tmp_path, "a", "slotcontrast", "synthetic", 0.5, 0.25, protocol="full", num_chunks=None),
        write_run(tmp_path, "b", "srl", "synthetic", 0.625, 0.3, protocol="official", num_chunks=96),
        write_run(tmp_path, "c", "srl", "movi_c", 0.7465, 0.348, step=100000),
    ]


def test_rows_are_percent_and_sorted_by_dataset_then_fg_ari(runs: list[Path]) -> None:
    rows = leaderboard_rows([load_record(run) for run in runs])
    assert [(row["dataset"], row["method"]) for row in rows] == [
        ("movi_c", "srl"), ("synthetic", "srl"), ("synthetic", "slotcontrast"),
    ]
    assert rows[1]["video_fg_ari"] == pytest.approx(62.5) and rows[1]["image_mbo"] == pytest.approx(15.0)


def test_markdown_table(runs: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    cli_compare.main([str(run) for run in runs])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == (
        "| method | dataset | evaluated by | step | protocol | scored | FG-ARI (%) | image FG-ARI (%) | mBO (%) "
        "| image mBO (%) |"
    )
    assert lines[1] == "|---|---|---|---:|---|---|---:|---:|---:|---:|"
    assert lines[3] == (
        "| srl | synthetic | srl-eval | 300 | official | 96 chunks of 32 videos | 62.5 | 31.2 | 30.0 | 15.0 |"
    )
    assert lines[4] == "| slotcontrast | synthetic | srl-eval | 300 | full | 32 videos | 50.0 | 25.0 | 25.0 | 12.5 |"
    assert len(lines) == 5


def test_published_numbers_alongside(runs: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    cli_compare.main([*map(str, runs), "--published"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].endswith("| published fg ari | published mbo | published source |")
    assert lines[2] == ("| srl | movi_c | srl-eval | 100000 | unrecorded | 32 videos | 74.7 | 37.3 | 34.8 | 17.4 | 74.7 | 34.8 "
                        "| SRL README checkpoint (official: 250 videos) |")
    assert lines[3].endswith("| – | – |  |")
    assert PUBLISHED[("slotcontrast", "movi_e")][:2] == (82.9, 29.2)


def test_published_ssync_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/METHODS.md §8.5: video FG-ARI / mBO of SSync, means over 3 runs."""
    run = write_run(tmp_path, "s", "ssync", "movi_e", 0.84, 0.348, step=300000)
    cli_compare.main([str(run), "--published"])
    assert capsys.readouterr().out.strip().splitlines()[2].endswith(
        "| 84.0 | 34.8 | SSync project page (3-run mean; protocol not stated) |")
    assert {dataset: PUBLISHED[("ssync", dataset)][:2] for dataset in ("movi_c", "movi_e", "ytvis2021")} == {
        "movi_c": (79.4, 39.5), "movi_e": (84.0, 34.8), "ytvis2021": (42.6, 38.7)}


def test_csv_and_json_outputs(runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "board"
    cli_compare.main([*map(str, runs), "--format", "csv", "--out", str(out)])
    printed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["method"] for row in printed] == ["srl", "srl", "slotcontrast"]
    assert float(printed[0]["video_fg_ari"]) == pytest.approx(74.65)
    rows = json.loads((out / "leaderboard.json").read_text())
    assert rows[2] == {
        "method": "slotcontrast", "dataset": "synthetic", "evaluated_by": "srl-eval", "step": 300, "protocol": "full",
        "scored": "32 videos",
        "video_fg_ari": 50.0, "image_fg_ari": 25.0, "video_mbo": 25.0, "image_mbo": 12.5,
    }
    assert (out / "leaderboard.md").read_text() == to_markdown(leaderboard_rows([load_record(r) for r in runs])) + "\n"
    assert (out / "leaderboard.csv").read_text().splitlines()[0].startswith("method,dataset,evaluated_by,step,protocol,scored")


def test_bad_inputs_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="srl-eval"):
        load_record(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"method": "srl"}))
    with pytest.raises(ValueError, match="lacks the field"):
        load_record(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_record(tmp_path / "metrics.json")


def write_ocl_run(root: Path, experiment: str | None) -> Path:
    """An ``ocl_train`` run folder as OCL lays it out, with an ``ocl_eval`` report (``metrics.json``)."""
    run = root / "ocl_run"
    (run / "config").mkdir(parents=True)
    method, dataset = experiment.split("/") if experiment else (None, None)
    names = {"method": method, "dataset": dataset} if experiment else {}
    (run / "config" / "config.yaml").write_text(json.dumps({"experiment": names}))
    checkpoints = run / "lightning_logs" / "version_0" / "checkpoints"
    checkpoints.mkdir(parents=True)
    config = {"method": "srl", "evaluation": {"protocol": "full", "independent_chunks": 4}}
    torch.save({"state_dict": {"models.decoder.weight": torch.zeros(2)}, "global_step": 7,
                "hyper_parameters": {"config": config}, "model_prefix": "models."},
               checkpoints / "last.ckpt")
    report = {"train_config_path": str(run / "config" / "config.yaml"),
              "checkpoint_path": str(checkpoints / "last.ckpt"),
              "metrics": {"val": {"loss_total": float("nan"), "video_fg_ari": 0.5, "video_mbo": 0.25,
                                  "image_fg_ari": 0.4, "image_mbo": 0.2, "num_videos": 8.0, "num_chunks": 16.0}}}
    (run / "metrics.json").write_text(json.dumps(report))
    return run


def test_ocl_eval_reports_join_the_leaderboard(runs: list[Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    ocl_run = write_ocl_run(tmp_path, "srl/synthetic")
    assert load_record(ocl_run) == {
        "method": "srl", "dataset": "synthetic", "evaluated_by": "ocl_eval", "step": 7, "protocol": "full",
        "checkpoint": str(ocl_run / "lightning_logs/version_0/checkpoints/last.ckpt"), "num_videos": 8,
        "num_chunks": 16, "video_fg_ari": 0.5, "video_mbo": 0.25, "image_fg_ari": 0.4, "image_mbo": 0.2,
    }
    cli_compare.main([str(ocl_run), *map(str, runs)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[3].startswith("| srl | synthetic | srl-eval | 300 | official |")
    assert "| srl | synthetic | ocl_eval | 7 | full | 16 chunks of 8 videos | 50.0 | 40.0 | 25.0 | 20.0 |" in lines[4:]


def test_ocl_eval_reports_of_other_experiments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not one of srl-plugin's OCL experiments"):
        load_record(write_ocl_run(tmp_path, None))
