"""Shared pytest fixtures: location of the official reference values, the tiny-backbone factory."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from srl_plugin.models import FrozenViTBackbone

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


def make_tiny_vit(
    input_size: int = 28,
    embed_dim: int = 32,
    depth: int = 1,
    num_heads: int = 2,
    img_size: int = 42,
    return_keys: bool = False,
    model_name: str = "vit_small_patch14_dinov2.lvd142m",
    **model_kwargs: int,
) -> FrozenViTBackbone:
    """A randomly initialised tiny timm ViT as a frozen backbone (patch 14 at 28 px: 2 x 2 = 4 patches by default)."""
    return FrozenViTBackbone(
        model_name, input_size, pretrained=False, allow_random_init=True, return_keys=return_keys,
        model_kwargs={"img_size": img_size, "depth": depth, "embed_dim": embed_dim, "num_heads": num_heads, **model_kwargs},
    )


@pytest.fixture(scope="session")
def tiny_vit() -> Callable[..., FrozenViTBackbone]:
    """:func:`make_tiny_vit`, the one tiny-backbone factory of the tests (call it with the sizes a test needs)."""
    return make_tiny_vit
