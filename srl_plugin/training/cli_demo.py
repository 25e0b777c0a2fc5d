"""`srl-demo [--out DIR] [--all-methods] [--steps N]`: the whole pipeline on the embedded synthetic data.

1. generates the synthetic MOVi-like dataset under `data.root` of `experiment=srl/synthetic`
   (`$SRL_DATA_ROOT/synthetic`, default `./data/synthetic`) unless it is already there;
2. trains SRL (experiment `srl/synthetic`) into `<out>/srl` (rerunning resumes / reuses it);
3. evaluates it on whole validation videos (`<out>/srl/metrics.json`) and prints video / image FG-ARI and mBO.
With `--all-methods` it does the same for SlotContrast, VideoSAUR, SlotCurri and SSync and prints the `srl-compare`
table.
Extra Hydra overrides after `--` go to every training run (e.g. `-- data.batch_size=8`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from srl_plugin.console import TRACEBACK_HELP, command

METHODS = ("srl", "slotcontrast", "videosaur", "slotcurri", "ssync")
DATASET = "synthetic"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srl-demo", description=__doc__, epilog=TRACEBACK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("srl_demo"), help="folder of the runs (default ./srl_demo)")
    parser.add_argument(
        "--all-methods", action="store_true", help="also train SlotContrast, VideoSAUR, SlotCurri and SSync"
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps per method (default: the config's)")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for the training runs (after --)")
    return parser


def ensure_data(method: str, overrides: Sequence[str]) -> Path:
    """Generates the experiment's synthetic dataset if needed; returns its root."""
    from srl_plugin.data.synthetic import ensure_synthetic_dataset
    from srl_plugin.runtime import TRAIN_CONFIG, compose_config

    config = compose_config(TRAIN_CONFIG, [f"experiment={method}/{DATASET}", *overrides])
    root = Path(str(config.data.root))
    print(f"srl-demo: synthetic data in {root} (generated if absent)", flush=True)
    return ensure_synthetic_dataset(root, progress=True, **config.data.synthetic)


def run_method(method: str, out: Path, steps: int | None, overrides: Sequence[str]) -> dict:
    """Trains and evaluates one method on the synthetic data; returns its metrics record."""
    from srl_plugin.atomic import write_json_atomic
    from srl_plugin.runtime import TRAIN_CONFIG, compose_config
    from srl_plugin.training.evaluate import METRICS_FILE, evaluate_checkpoint
    from srl_plugin.training.fit import train

    run_dir = out / method
    run_overrides = [f"experiment={method}/{DATASET}", f"output_dir={run_dir}", *overrides]
    if steps is not None:
        run_overrides.append(f"trainer.max_steps={steps}")
    started = time.perf_counter()
    print(f"srl-demo: training {method} -> {run_dir}", flush=True)
    train(compose_config(TRAIN_CONFIG, run_overrides))
    trained = time.perf_counter()
    record = evaluate_checkpoint(run_dir)
    write_json_atomic(run_dir / METRICS_FILE, record)
    print(
        f"srl-demo: {method}: trained in {trained - started:.0f} s, evaluated in {time.perf_counter() - trained:.0f} s",
        flush=True,
    )
    return record


@command("srl-demo")
def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # imported after parsing (here and in the functions above), so that --help stays fast
    from srl_plugin.training.leaderboard import leaderboard_rows, to_markdown

    started = time.perf_counter()
    methods = METHODS if args.all_methods else ("srl",)
    ensure_data(methods[0], args.overrides)
    records = [run_method(method, args.out, args.steps, args.overrides) for method in methods]
    print()
    print(to_markdown(leaderboard_rows(records)))
    print(f"\nsrl-demo: done in {time.perf_counter() - started:.0f} s; runs in {args.out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
