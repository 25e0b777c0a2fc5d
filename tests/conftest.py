"""Shared pytest fixtures: location of the official reference values."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _reference_dir() -> Path:
    configured = os.environ.get("SRL_REFERENCE_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder with the values computed by the official code (see docs/ARCHITECTURE.md)."""
    path = _reference_dir()
    if not (path / "loss_metric_reference.pt").is_file():
        message = f"reference values not found in {path}; set SRL_REFERENCE_DIR"
        if os.environ.get("SRL_REQUIRE_REFERENCE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path
