"""`srl-make-synthetic`: write the synthetic MOVi-like dataset (see `srl_plugin.data.synthetic`)."""
from __future__ import annotations

import argparse
import time
from typing import Sequence

from srl_plugin.console import TRACEBACK_HELP, command
from srl_plugin.data.render import PRESETS
from srl_plugin.data.synthetic import (
    DEFAULT_TRAIN_SHARDS,
    DEFAULT_VAL_SHARDS,
    MANIFEST,
    ensure_synthetic_dataset,
    max_instance_id,
    synthetic_shard_patterns,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srl-make-synthetic",
        epilog=TRACEBACK_HELP,
        description="Generate procedurally rendered MOVi-like videos as webdataset shards (same keys, dtypes "
        "and shapes as the MOVi shards: video uint8 (T,H,W,3), segmentations uint8 (T,H,W,1)).",
    )
    parser.add_argument("--out", required=True, help="output folder (the data module's root)")
    parser.add_argument("--preset", default="movi_c_like", choices=sorted(PRESETS))
    parser.add_argument("--train-videos", type=int, default=1000)
    parser.add_argument("--val-videos", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=None, help="frames per video (preset: 24)")
    parser.add_argument("--size", type=int, default=None, help="frame height and width (preset: 128)")
    parser.add_argument(
        "--num-objects", type=int, nargs=2, metavar=("MIN", "MAX"), default=None,
        help="objects per video, inclusive range (preset: easy 3 5, movi_c_like 3 10); training configs need "
        "data.num_classes >= MAX + 1",
    )
    parser.add_argument(
        "--object-radius", type=float, nargs=2, metavar=("MIN", "MAX"), default=None,
        help="object radius as a fraction of the frame size (preset: easy 0.1 0.16, movi_c_like 0.06 0.15)",
    )
    parser.add_argument("--train-shards", type=int, default=DEFAULT_TRAIN_SHARDS)
    parser.add_argument("--val-shards", type=int, default=DEFAULT_VAL_SHARDS)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset made with other parameters in --out (default: refuse)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


@command("srl-make-synthetic")
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    options = {
        name: value for name, value in (("num_objects", args.num_objects), ("object_radius", args.object_radius))
        if value is not None
    }
    root = ensure_synthetic_dataset(
        args.out, preset=args.preset, train_videos=args.train_videos, val_videos=args.val_videos, seed=args.seed,
        frames=args.frames, size=args.size, train_shards=args.train_shards, val_shards=args.val_shards,
        progress=not args.no_progress, overwrite=args.overwrite, **options,
    )
    patterns = synthetic_shard_patterns(args.train_shards, args.val_shards)
    print(f"dataset ready in {root} after {time.perf_counter() - started:.1f} s (an existing dataset with the "
          f"same parameters is reused; see {MANIFEST})")
    print(f"  train_shards: {patterns['train']}")
    print(f"  val_shards:   {patterns['validation']}")
    print(f"  num_classes:  {max_instance_id(args.preset, **options) + 1} or more (background + up to "
          f"{max_instance_id(args.preset, **options)} objects)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
