"""`srl-cache-features EXPERIMENT [overrides]`: run the frozen backbone once over the training and
validation shards of an experiment and store the features as float16 webdataset shards.

    srl-cache-features srl/movi_c data.root=/data/shards
    srl-cache-features srl/movi_c data.root=/data/shards cache.dir=/fast/cache --device cuda
    srl-train experiment=srl/movi_c data.root=/data/shards features=cached

Both orientations of every training clip are cached when horizontal flips are on. Re-running resumes: shards
already written are skipped. `--overwrite` rebuilds a cache made for another backbone, size or transform.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from srl_plugin.console import TRACEBACK_HELP, command


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="srl-cache-features", description=__doc__, epilog=TRACEBACK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("experiment", help="experiment config <method>/<dataset>, e.g. srl/movi_c")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.root=/data cache.dir=/cache")
    parser.add_argument("--splits", default="train,val", help="comma-separated splits to cache (default train,val)")
    parser.add_argument("--device", default=None, help="device for the backbone (default: cuda if available)")
    parser.add_argument("--clips-per-batch", type=int, default=8, help="clips per backbone call")
    parser.add_argument("--num-workers", type=int, default=None, help="decoding workers (default: data.num_workers)")
    parser.add_argument("--overwrite", action="store_true", help="delete an existing cache of another config first")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.experiment.startswith("experiment="):
        args.experiment = args.experiment.split("=", 1)[1]
    return args


@command("srl-cache-features")
def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `srl-cache-features`."""
    args = parse_args(argv)
    # imported after parsing, so that --help stays fast
    import torch
    from omegaconf import OmegaConf

    from srl_plugin.cache.experiment import (
        cache_dir,
        check_cacheable,
        expected_fingerprint,
        shard_readers,
        split_plans,
        video_datamodule,
    )
    from srl_plugin.cache.store import build_cache
    from srl_plugin.cache.writer import backbone_extractor
    from srl_plugin.runtime import build_backbone, compose_experiment, experiment_name

    config = compose_experiment(args.experiment, args.overrides)
    splits = tuple(split.strip() for split in args.splits.split(",") if split.strip())
    check_cacheable(config, splits)
    video_datamodule(config).prepare_data()  # generates the synthetic data if the config names it
    target = cache_dir(config)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    num_workers = int(OmegaConf.select(config, "data.num_workers", default=0) or 0)
    num_workers = num_workers if args.num_workers is None else args.num_workers
    print(f"feature cache of {experiment_name(config)}: {target}", flush=True)

    backbone = build_backbone(config)
    meta = build_cache(
        target,
        expected_fingerprint(config, backbone),
        split_plans(config, splits, args.clips_per_batch),
        shard_readers(config),
        backbone_extractor(backbone, device),
        experiment=experiment_name(config),
        overwrite=args.overwrite or bool(OmegaConf.select(config, "cache.overwrite", default=False)),
        num_workers=num_workers,
        progress=not args.no_progress,
    )
    for split in splits:
        info = meta["splits"][split]
        print(f"{split}: {info['num_videos']} videos in {len(info['shards'])} shards", flush=True)
    overrides = " ".join(args.overrides)
    print(f"done: {target}\ntrain from it with: srl-train experiment={experiment_name(config)} {overrides} "
          f"features=cached cache.dir={target}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
