"""Keep tests/reference/ equal to its source, the shared folder of values computed by the official code.

The parity tests read the copy in this folder, so that a fresh clone runs them with nothing beside it. The
source of truth stays outside the repository (default `../shared/reference` beside the checkout, or
`$SRL_REFERENCE_SOURCE`). Usage:

    python tests/reference/sync.py            # check: exit 1 and name each file that differs or is missing
    python tests/reference/sync.py --update   # copy every source file over the in-repository copy

Every file of the source is mirrored byte for byte; files that only exist here (this script) are left alone.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
from pathlib import Path

COPY_DIR = Path(__file__).resolve().parent
DEFAULT_SOURCE = COPY_DIR.parents[2] / "shared" / "reference"


def source_dir() -> Path:
    """Folder holding the source reference files (`$SRL_REFERENCE_SOURCE` or ../shared/reference)."""
    configured = os.environ.get("SRL_REFERENCE_SOURCE")
    return Path(configured) if configured else DEFAULT_SOURCE


def differing_files(source: Path, copy: Path = COPY_DIR) -> list[str]:
    """Names of the source files whose in-repository copy is missing or has other bytes."""
    names = sorted(path.name for path in source.iterdir() if path.is_file())
    return [name for name in names if not (copy / name).is_file() or not filecmp.cmp(source / name, copy / name, shallow=False)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="copy the source files into tests/reference/")
    args = parser.parse_args(argv)
    source = source_dir()
    if not source.is_dir():
        print(f"reference source {source} not found; set SRL_REFERENCE_SOURCE to the shared reference folder", file=sys.stderr)
        return 2
    stale = differing_files(source)
    if args.update:
        for name in stale:
            shutil.copy2(source / name, COPY_DIR / name)
        print(f"updated {len(stale)} file(s) from {source}: {', '.join(stale) or 'none'}")
        return 0
    if stale:
        print(f"tests/reference/ differs from {source} in: {', '.join(stale)}; run {Path(__file__).name} --update", file=sys.stderr)
        return 1
    print(f"tests/reference/ equals {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
