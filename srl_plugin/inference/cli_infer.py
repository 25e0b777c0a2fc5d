"""``srl-infer INPUT --checkpoint CKPT --out DIR``: slot masks, overlay and slots for a user's video."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from srl_plugin.console import TRACEBACK_HELP, command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        epilog=TRACEBACK_HELP,
        prog="srl-infer",
        description=(
            "Run a trained (or imported) model over a whole video in windows that carry the slots forward, and "
            "write masks.npz, slots.npy, an overlay video/GIF and a PNG grid of per-slot masks."
        ),
    )
    parser.add_argument("input", help=".mp4/.webm video, folder of frames, or webdataset shard (.tar)")
    parser.add_argument(
        "--checkpoint", required=True,
        help="srl-plugin checkpoint or run directory (srl-train, ocl_train, srl-import-checkpoint)",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--window", type=int, default=8, help="frames per model call (memory bound); default 8")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--seed", type=int, default=0, help="seed of VideoSAUR's random slot initialisation")
    parser.add_argument("--key", default=None, help="only this sample of a shard (default: every sample)")
    parser.add_argument("--alpha", type=float, default=0.5, help="mask colour weight in the overlay")
    parser.add_argument("--grid-frames", type=int, default=4, help="frames in mask_grid.png")
    parser.add_argument("--gif-frames", type=int, default=48, help="frames in overlay.gif")
    parser.add_argument("--no-mp4", action="store_true", help="skip overlay.mp4 (GIF only)")
    return parser


@command("srl-infer")
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # imported after parsing, so that --help stays fast
    from srl_plugin.inference.predict import run_inference

    results = run_inference(
        args.input, args.checkpoint, args.out, window=args.window, device=args.device, seed=args.seed,
        key=args.key, alpha=args.alpha, grid_frames=args.grid_frames, gif_frames=args.gif_frames,
        write_mp4=not args.no_mp4,
    )
    for result in results:
        names = ", ".join(path.name for path in result.files)
        print(f"{result.out_dir}: {result.num_frames} frames in {result.seconds:.1f} s -> {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
