"""`srl-convert {ytvis2021,videos} --src SRC --out DATA_ROOT [...]`: make the shards `srl-train` reads.

    srl-convert ytvis2021 --src ~/ytvis2021_raw/train --out ~/data/ytvis2021
    srl-train experiment=srl/ytvis2021 data.root=~/data/ytvis2021
    srl-convert videos --src ~/my_videos --out ~/data/mine --stride 5
    srl-train experiment=srl/ytvis2021 data.root=~/data/mine 'data.train_shards=videos-train-*.tar' ...

Each conversion writes shard by shard (progress bar over videos); running it again with the same arguments
keeps finished shards and writes the rest. Errors name the offending file. MOVi-C / MOVi-E come from TFDS
through the official route (docs/DATA.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from srl_plugin.console import TRACEBACK_HELP, command
from srl_plugin.convert.videos import VIDEOS_PER_SHARD, convert_videos
from srl_plugin.convert.ytvis import SHORT_SIDE, TRAIN_PER_SHARD, VAL_PER_SHARD, convert_ytvis2021


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srl-convert", description=__doc__, epilog=TRACEBACK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ytvis = commands.add_parser("ytvis2021", help="YouTube-VIS 2021 train folder -> official train + held-out shards")
    ytvis.add_argument("--src", type=Path, required=True, help="the YT-VIS 2021 train folder (JPEGImages/ + instances.json)")
    ytvis.add_argument("--out", type=Path, required=True, help="data root to write ytvis-{train,validation}-*.tar into")
    ytvis.add_argument("--val-videos", type=int, default=300, help="last videos held out for evaluation (official: 300)")
    ytvis.add_argument("--short-side", type=int, default=SHORT_SIDE, help="short side after resizing (0: keep)")
    ytvis.add_argument("--train-per-shard", type=int, default=TRAIN_PER_SHARD, help="videos per train shard")
    ytvis.add_argument("--val-per-shard", type=int, default=VAL_PER_SHARD, help="videos per held-out shard")
    videos = commands.add_parser("videos", help="folder of .mp4/.webm files or frame folders -> training shards")
    videos.add_argument("--src", type=Path, required=True, help="folder of videos or of frame folders")
    videos.add_argument("--out", type=Path, required=True, help="data root to write <prefix>-train-*.tar into")
    videos.add_argument("--prefix", default="videos", help="shard name prefix")
    videos.add_argument("--short-side", type=int, default=SHORT_SIDE, help="short side after resizing (0: keep)")
    videos.add_argument("--stride", type=int, default=1, help="keep every n-th frame (YT-VIS keeps every 5th)")
    videos.add_argument("--max-frames", type=int, default=0, help="keep at most this many frames per video (0: all)")
    videos.add_argument("--per-shard", type=int, default=VIDEOS_PER_SHARD, help="videos per shard")
    return parser


@command("srl-convert")
def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "ytvis2021":
        summary = convert_ytvis2021(args.src.expanduser(), args.out.expanduser(), args.val_videos, args.short_side,
                                    args.train_per_shard, args.val_per_shard)
    else:
        summary = convert_videos(args.src.expanduser(), args.out.expanduser(), args.prefix, args.short_side,
                                 args.stride, args.max_frames, args.per_shard)
    print(f"srl-convert {args.command}: {json.dumps(summary)}; shards in {args.out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
