"""`srl-make-synthetic`: write the synthetic MOVi-like dataset (see `srl_plugin.data.synthetic`)."""
from __future__ import annotations

import argparse
import time
from typing import Sequence

from srl_plugin.data.render import PRESETS
from srl_plugin.data.synthetic import (
    DEFAULT_TRAIN_SHARDS,
    DEFAULT_VAL_SHARDS,
    MANIFEST,
    ensure_synthetic_dataset,
    synthetic_shard_patterns,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srl-make-synthetic",
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
    parser.add_argument("--train-shards", type=int, default=DEFAULT_TRAIN_SHARDS)
    parser.add_argument("--val-shards", type=int, default=DEFAULT_VAL_SHARDS)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    root = ensure_synthetic_dataset(
        args.out, preset=args.preset, train_videos=args.train_videos, val_videos=args.val_videos, seed=args.seed,
        frames=args.frames, size=args.size, train_shards=args.train_shards, val_shards=args.val_shards,
        progress=not args.no_progress,
    )
    patterns = synthetic_shard_patterns(args.train_shards, args.val_shards)
    print(f"dataset ready in {root} after {time.perf_counter() - started:.1f} s (an existing dataset with the "
          f"same parameters is reused; see {MANIFEST})")
    print(f"  train_shards: {patterns['train']}")
    print(f"  val_shards:   {patterns['validation']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
