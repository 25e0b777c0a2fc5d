"""Markdown table of `bench_training.py` JSON reports (for docs/BENCHMARKS.md).

    python benchmarks/report.py benchmarks/results/cpu_*.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _cell(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _memory(phase: dict[str, Any]) -> str:
    base = phase.get("rss_after_model_build_mib")
    return _cell(phase.get("peak_memory_mib"), 0) + ("" if base is None else f" ({base:.0f})")


def rows(report: dict[str, Any]) -> list[str]:
    """One markdown row per (experiment, path): training and evaluation numbers side by side."""
    phases = report["phases"]
    lines = []
    for path in ("video", "cached"):
        train, evaluate = phases.get(f"train_{path}", {}), phases.get(f"eval_{path}", {})
        lines.append(
            f"| {report['experiment']} | {path} | {_cell(train.get('steps_per_s'))} | {_cell(train.get('clips_per_s'))} "
            f"| {_cell(train.get('cpu_seconds_per_step'), 1)} | {_memory(train)} | {_cell(evaluate.get('videos_per_s'))} "
            f"| {_cell(evaluate.get('cpu_seconds_per_video'), 1)} | {_memory(evaluate)} |"
        )
    return lines


def markdown(reports: list[dict[str, Any]]) -> str:
    """The results table, the cached/uncached ratios and the conditions of each run."""
    lines = [
        "| experiment | features | train steps/s | train clips/s | train CPU s/step | train peak RSS MiB "
        "(after model build) | eval videos/s | eval CPU s/video | eval peak RSS MiB (after model build) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for report in reports:
        lines += rows(report)
    lines += ["", "| experiment | train speed-up: wall / CPU time | eval speed-up: wall / CPU time "
              "| cached loader clips/s | load avg before / after (1, 5, 15 min) | wall s |", "|---|---|---|---|---|---|"]
    for report in reports:
        loader = report["phases"].get("loader_cached", {}).get("clips_per_s")
        lines.append(
            f"| {report['experiment']} | {_cell(report.get('train_speedup_cached'), 2)}x / "
            f"{_cell(report.get('train_speedup_cached_cpu_time'), 2)}x "
            f"| {_cell(report.get('eval_speedup_cached'), 2)}x / {_cell(report.get('eval_speedup_cached_cpu_time'), 2)}x "
            f"| {_cell(loader, 1)} "
            f"| {report.get('load_average_before')} / {report.get('load_average_after')} | {report.get('wall_seconds')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    paths = [Path(path) for path in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        raise SystemExit("usage: python benchmarks/report.py REPORT.json [REPORT.json ...]")
    print(markdown([json.loads(path.read_text()) for path in paths]))


if __name__ == "__main__":
    main()
