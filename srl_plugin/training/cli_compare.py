"""`srl-compare RUN_DIR... [--published] [--format markdown|csv|json] [--out DIR]`: leaderboard of runs.

Reads each run's `metrics.json` (written by `srl-eval`; a path to such a file works too) and prints one
row per run (method, dataset, step, evaluation protocol, videos / chunks scored, video / image FG-ARI and
mBO in percent), sorted by dataset and FG-ARI. `--published` adds the published video FG-ARI / mBO of the
method on that dataset (docs/METHODS.md §8). `--out DIR` also writes leaderboard.md, leaderboard.csv and leaderboard.json there.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from srl_plugin.console import TRACEBACK_HELP, command

SUFFIXES = {"markdown": "md", "csv": "csv", "json": "json"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srl-compare", description=__doc__, epilog=TRACEBACK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", help="run directories (or metrics.json files)")
    parser.add_argument("--published", action="store_true", help="add the published numbers (docs/METHODS.md §8)")
    parser.add_argument("--format", choices=sorted(SUFFIXES), default="markdown", help="what to print")
    parser.add_argument("--out", type=Path, default=None, help="also write leaderboard.{md,csv,json} here")
    return parser


@command("srl-compare")
def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # imported after parsing, so that --help stays fast
    from srl_plugin.training.leaderboard import leaderboard_rows, load_record, to_csv, to_json, to_markdown

    formatters = {"markdown": to_markdown, "csv": to_csv, "json": to_json}
    rows = leaderboard_rows([load_record(run) for run in args.runs], published=args.published)
    print(formatters[args.format](rows).rstrip("\n"))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, formatter in formatters.items():
            (args.out / f"leaderboard.{SUFFIXES[name]}").write_text(formatter(rows).rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main())
