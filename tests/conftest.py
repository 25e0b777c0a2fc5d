"""Shared pytest fixtures: location of the official reference values."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT / "tests" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder with the values computed by the official code, shipped in the repository (tests/reference/README.md).

    `tests/reference/sync.py` checks it against its source, the shared reference folder.
    """
    if not (REFERENCE_DIR / "loss_metric_reference.pt").is_file():
        pytest.fail(f"reference values missing from {REFERENCE_DIR}; restore tests/reference/ from git")
    return REFERENCE_DIR
