"""Leaderboards of evaluated runs (`metrics.json` records) as Markdown, CSV and JSON, with the published
numbers of docs/METHODS.md §8 alongside on request.

Records come from `srl-eval` or from OCL's `ocl_eval` run on one of this plugin's OCL experiments
(`{"train_config_path", "checkpoint_path", "metrics": {"val": {...}}}`); the latter are turned into the same
fields (method and dataset from the run's `experiment.method` / `experiment.dataset`, step and protocol from the checkpoint), and
the column `evaluated by` tells the two apart."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from omegaconf import OmegaConf

from srl_plugin.runtime import read_checkpoint
from srl_plugin.training.evaluate import METRIC_NAMES, METRICS_FILE

METRIC_LABELS = {
    "video_fg_ari": "FG-ARI",
    "video_mbo": "mBO",
    "image_fg_ari": "image FG-ARI",
    "image_mbo": "image mBO",
}
BASE_COLUMNS = ("method", "dataset", "evaluated_by", "step", "protocol", "scored")
RECORD_FIELDS = ("method", "dataset", "step", "num_videos")
SRL_EVAL, OCL_EVAL = "srl-eval", "ocl_eval"
OCL_REPORT_FIELDS = ("train_config_path", "checkpoint_path", "metrics")
PUBLISHED_COLUMNS = ("published_fg_ari", "published_mbo", "published_source")

# Video FG-ARI / mBO in percent (docs/METHODS.md §8.1 from the repositories; §8.2 where nothing primary exists;
# SlotCurri and SSync: docs/METHODS.md §8.5, the SSync project page; neither README has a table). The
# VideoSAUR, SlotContrast and SRL numbers were computed by the official validation loaders, i.e.
# `evaluation.protocol=official` (srl_plugin.data.protocol): all 250 videos on MOVi, the first 210 of the 300
# held-out videos for SlotContrast and SRL on YT-VIS, 224 six-frame chunks from validation shards 0-7 for
# VideoSAUR on YT-VIS. The SSync project page does not say.
PUBLISHED: dict[tuple[str, str], tuple[float, float, str]] = {
    ("videosaur", "movi_c"): (64.8, 38.9, "VideoSAUR README (official: 250 videos)"),
    ("videosaur", "movi_e"): (73.9, 35.6, "VideoSAUR README (official: 250 videos)"),
    ("videosaur", "ytvis2021"): (39.5, 29.1, "VideoSAUR README (official: 224 6-frame chunks, DINO 224)"),
    ("slotcontrast", "movi_c"): (69.3, 32.7, "SlotContrast README (official: 250 videos)"),
    ("slotcontrast", "movi_e"): (82.9, 29.2, "SlotContrast README (official: 250 videos)"),
    ("slotcontrast", "ytvis2021"): (38.0, 33.7, "SlotContrast README (official: 210 of 300 videos)"),
    ("srl", "movi_c"): (74.65, 34.80, "SRL README checkpoint (official: 250 videos)"),
    ("srl", "movi_e"): (81.9, 29.3, "SRL paper via secondary notes, unconfirmed (official: 250 videos)"),
    ("srl", "ytvis2021"): (43.69, 36.76, "SRL README checkpoint (official: 210 of 300 videos)"),
    ("slotcurri", "movi_c"): (77.6, 32.8, "SSync project page (3-run mean; protocol not stated)"),
    ("slotcurri", "movi_e"): (83.7, 28.9, "SSync project page (3-run mean; protocol not stated)"),
    ("slotcurri", "ytvis2021"): (44.8, 35.5, "SSync project page (3-run mean; protocol not stated)"),
    ("ssync", "movi_c"): (79.4, 39.5, "SSync project page (3-run mean; protocol not stated)"),
    ("ssync", "movi_e"): (84.0, 34.8, "SSync project page (3-run mean; protocol not stated)"),
    ("ssync", "ytvis2021"): (42.6, 38.7, "SSync project page (3-run mean; protocol not stated)"),
}


def metrics_path(run: str | Path) -> Path:
    """``<run>/metrics.json`` for a run directory, or the given JSON file."""
    path = Path(run).expanduser()
    candidate = path / METRICS_FILE if path.is_dir() else path
    if not candidate.is_file():
        raise FileNotFoundError(f"no {METRICS_FILE} at {candidate}; evaluate the run first with `srl-eval {path}`")
    return candidate


def record_from_ocl_report(report: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The leaderboard record of an ``ocl_eval`` report of one of this plugin's OCL experiments."""
    config_path = Path(str(report["train_config_path"]))
    if not config_path.is_file():
        raise FileNotFoundError(f"{path} names the run config {config_path}, which does not exist")
    run = OmegaConf.load(config_path)
    method, dataset = (OmegaConf.select(run, f"experiment.{key}", default=None) for key in ("method", "dataset"))
    if not isinstance(method, str) or not isinstance(dataset, str):
        raise ValueError(
            f"{path} is an ocl_eval report of a run that is not one of srl-plugin's OCL experiments ({config_path} "
            "has no experiment.method / experiment.dataset); srl-compare ranks runs of "
            "`ocl_train +experiment=<method>/<dataset>`"
        )
    values = dict(report["metrics"].get("val", {}))
    if "num_videos" not in values:
        raise ValueError(f"{path} has no val/num_videos; evaluate the run with this plugin's current OCL configs")
    checkpoint = read_checkpoint(str(report["checkpoint_path"]))
    evaluation = checkpoint["hyper_parameters"]["config"].get("evaluation", {})
    record = {
        "method": method, "dataset": dataset, "evaluated_by": OCL_EVAL, "step": int(checkpoint["global_step"]),
        "checkpoint": str(report["checkpoint_path"]), "protocol": evaluation.get("protocol"),
        "num_videos": int(round(float(values["num_videos"]))),
        "num_chunks": int(round(float(values["num_chunks"]))) if evaluation.get("independent_chunks") else None,
    }
    record.update({name: values[name] for name in METRIC_NAMES if name in values})
    return record


def load_record(run: str | Path) -> dict[str, Any]:
    """One run's metrics record (``srl-eval`` or ``ocl_eval``), checked for the fields a leaderboard needs."""
    path = metrics_path(run)
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if isinstance(record, dict) and all(field in record for field in OCL_REPORT_FIELDS):
        record = record_from_ocl_report(record, path)
    missing = [field for field in (*RECORD_FIELDS, *METRIC_NAMES) if not isinstance(record, dict) or field not in record]
    if missing:
        raise ValueError(f"{path} lacks the field(s) {missing}; rewrite it with `srl-eval`")
    return record


def scored_text(record: Mapping[str, Any]) -> str:
    """What a record's numbers were computed on: `"250 videos"` or `"224 chunks of 51 videos"`."""
    if record.get("num_chunks") is None:
        return f"{record['num_videos']} videos"
    return f"{record['num_chunks']} chunks of {record['num_videos']} videos"


def leaderboard_rows(records: Iterable[Mapping[str, Any]], published: bool = False) -> list[dict[str, Any]]:
    """One row per record, scores in percent, sorted by dataset then video FG-ARI (best first). Records
    written before protocols were recorded show the protocol as `unrecorded`."""
    rows = []
    for record in records:
        row: dict[str, Any] = {column: record[column] for column in ("method", "dataset")}
        row["evaluated_by"] = record.get("evaluated_by", SRL_EVAL)
        row["step"] = record["step"]
        row["protocol"] = record.get("protocol", "unrecorded")
        row["scored"] = scored_text(record)
        row.update({name: 100.0 * float(record[name]) for name in METRIC_NAMES})
        if published:
            fg_ari, mbo, source = PUBLISHED.get((str(record["method"]), str(record["dataset"])), (None, None, ""))
            row.update(zip(PUBLISHED_COLUMNS, (fg_ari, mbo, source)))
        rows.append(row)
    return sorted(rows, key=lambda row: (str(row["dataset"]), -row["video_fg_ari"], str(row["method"])))


def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Column order: method, dataset, evaluator, step, protocol, what was scored, the four metrics, then the
    published ones if present."""
    columns = [*BASE_COLUMNS, *METRIC_NAMES]
    if rows and PUBLISHED_COLUMNS[0] in rows[0]:
        columns += PUBLISHED_COLUMNS
    return columns


def _header(column: str) -> str:
    if column in METRIC_LABELS:
        return f"{METRIC_LABELS[column]} (%)"
    return column.replace("_", " ")


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def to_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table (scores with one decimal)."""
    columns = columns_of(rows)
    lines = [
        "| " + " | ".join(_header(column) for column in columns) + " |",
        "|" + "|".join("---" if column in ("method", "dataset", "evaluated_by", "protocol", "scored", "published_source")
                       else "---:" for column in columns)
        + "|",
    ]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV with a header row and full-precision scores."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns_of(rows), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """A JSON list of row objects."""
    return json.dumps(list(rows), indent=2) + "\n"
