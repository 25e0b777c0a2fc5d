"""Shared pytest fixtures and helpers: the official reference values, the tiny-backbone factory, tiny synthetic runs.

Test modules import the plain helpers with ``from conftest import ...`` (pytest puts ``tests/`` on the path).
"""
from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from srl_plugin.models import FrozenViTBackbone

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT / "tests" / "reference"


@pytest.fixture(scope="session", autouse=True)
def sigint_as_in_a_terminal() -> Iterator[None]:
    """SIGINT with Python's default handler for the whole session, as in a terminal.

    A suite started in the background by a non-interactive shell (``cmd &``) or under ``nohup`` inherits SIGINT
    ignored, and Python and `srl-train` respect that, so the Ctrl-C tests would see no interrupt and fail (or wait
    on a run that trains on). With a handler installed here, `srl-train` children start with SIGINT's default
    disposition too (exec resets handled signals, but keeps ignored ones).
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if ignored:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


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


TINY_VIT_32 = [
    "backbone=tiny_random_vit",
    "model.backbone.input_size=32",
    "model.backbone.model_kwargs.img_size=32",
    "model.num_patches=16",
]
"""Overrides that put an experiment on the tiny random ViT at 32 px (4 x 4 = 16 patches)."""


def tiny_synthetic_overrides(
    root: Path, *, shards: int, train_videos: int, val_videos: int, shuffle_buffer: int, val_size: int | None
) -> list[str]:
    """Overrides for a tiny synthetic dataset under ``root`` (8 frames of 32 px, ``shards`` shards per split,
    batch 2) on :data:`TINY_VIT_32`."""
    last = f"{shards - 1:06d}"
    pattern = "{000000.." + last + "}" if shards > 1 else last
    return [
        f"data.root={root}",
        f"data.train_shards='synthetic-train-{pattern}.tar'",
        f"data.val_shards='synthetic-validation-{pattern}.tar'",
        f"data.synthetic.train_videos={train_videos}",
        f"data.synthetic.val_videos={val_videos}",
        f"data.synthetic.train_shards={shards}",
        f"data.synthetic.val_shards={shards}",
        "data.synthetic.frames=8",
        "data.synthetic.size=32",
        *TINY_VIT_32,
        "data.batch_size=2",
        "data.val_batch_size=2",
        f"data.shuffle_buffer={shuffle_buffer}",
        f"data.val_size={'null' if val_size is None else val_size}",
    ]
