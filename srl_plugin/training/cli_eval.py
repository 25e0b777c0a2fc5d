"""`srl-eval RUN_DIR_or_CKPT [key=value ...] [--out FILE]`: validate a checkpoint over whole videos.

Runs the validation of the run's experiment (whole videos, decoder masks, video / image FG-ARI and mBO,
docs/METHODS.md §1.3, §1.10, §1.11) with the checkpoint's config merged with `configs/eval.yaml` (fp32, one
device) and the overrides, writes `metrics.json` (default: in the run directory) and prints a table.
The evaluation protocol is `evaluation.protocol`: `full` (every held-out video, the default) or `official`
(exactly the subset the official repository scores on one GPU); the output names it with the number of
videos / chunks scored.

    srl-eval runs/srl_synth
    srl-eval runs/srl_ytvis data.root=/data/ytvis2021 evaluation.protocol=official
    srl-eval runs/srl_movi_c/checkpoints/step_00050000.ckpt data.root=/data/movi_c trainer.devices=2
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from srl_plugin.console import TRACEBACK_HELP, command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srl-eval", description=__doc__, epilog=TRACEBACK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", help="run directory of srl-train or ocl_train (its last.ckpt) or a .ckpt file")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value (data.*, evaluation.*, trainer.*)")
    parser.add_argument("--out", type=Path, default=None, help="metrics file (default: <run dir>/metrics.json)")
    return parser


@command("srl-eval")
def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # imported after parsing, so that --help stays fast
    from lightning.pytorch.utilities import rank_zero_only

    from srl_plugin.runtime import checkpoint_path
    from srl_plugin.training.evaluate import METRICS_FILE, evaluate_checkpoint, run_dir_of

    record = evaluate_checkpoint(args.checkpoint, args.overrides)
    out = args.out or run_dir_of(checkpoint_path(args.checkpoint)) / METRICS_FILE
    rank_zero_only(report)(record, out)


def report(record: dict, out: Path) -> None:
    """Writes the metrics record and prints it as a table (called on rank 0 only)."""
    from srl_plugin.atomic import write_json_atomic
    from srl_plugin.training.leaderboard import leaderboard_rows, scored_text, to_markdown

    write_json_atomic(out, record)
    print(f"srl-eval: protocol {record['protocol']}, scored {scored_text(record)}")
    print(to_markdown(leaderboard_rows([record])))
    print(f"srl-eval: wrote {out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
