"""``srl-import-checkpoint SRC.ckpt DST [--method ...] [--preset ...]``: official -> srl-plugin checkpoint."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from srl_plugin.console import TRACEBACK_HELP, command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        epilog=TRACEBACK_HELP,
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
        "--method", default="auto",
        help="srl, slotcontrast, videosaur, ssync, slotcurri or auto (default: detected from the keys; SSync and "
        "SlotCurri have SlotContrast's keys: pass --method ssync or slotcurri)",
    )
    parser.add_argument(
        "--preset", default="movi_c", help="dataset the checkpoint was trained on: movi_c (default), movi_e, ytvis2021"
    )
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load checkpoints that hold arbitrary pickled objects (only for files from a trusted source)",
    )
    return parser


@command("srl-import-checkpoint")
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # imported after parsing, so that --help stays fast
    from srl_plugin.inference.importer import import_official_checkpoint

    written = import_official_checkpoint(
        args.source, args.destination, method=args.method, preset=args.preset, trust_pickle=args.trust_pickle
    )
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
