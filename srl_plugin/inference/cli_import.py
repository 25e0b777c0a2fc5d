"""``srl-import-checkpoint SRC.ckpt DST [--method ...] [--preset ...]``: official -> srl-plugin checkpoint."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from srl_plugin.inference.importer import METHODS, PRESETS, import_official_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srl-import-checkpoint",
        description=(
            "Convert an official SRL / SlotContrast / SSync / SlotCurri / VideoSAUR Lightning checkpoint into a "
            "checkpoint that srl-eval and srl-infer load. The architecture is read from the tensor shapes; the preset supplies "
            "the backbone name and the loss settings."
        ),
    )
    parser.add_argument("source", help="official Lightning .ckpt")
    parser.add_argument(
        "destination",
        help="a .ckpt file, or a run directory (written to DST/checkpoints/last.ckpt; srl-eval and srl-infer take DST)",
    )
    parser.add_argument(
        "--method", choices=("auto", *METHODS), default="auto",
        help="default: detected from the keys (SSync and SlotCurri have SlotContrast's keys: pass --method ssync "
        "or slotcurri)",
    )
    parser.add_argument("--preset", choices=PRESETS, default="movi_c", help="dataset the checkpoint was trained on")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load checkpoints that hold arbitrary pickled objects (only for files from a trusted source)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        written = import_official_checkpoint(
            args.source, args.destination, method=args.method, preset=args.preset, trust_pickle=args.trust_pickle
        )
    except (FileNotFoundError, KeyError, ValueError) as error:
        print(f"srl-import-checkpoint: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
