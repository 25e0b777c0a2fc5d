"""The error kinds that `benchmarks/synthetic_masks.py separation` counts, on hand-made slot maps."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

TOOL = Path(__file__).resolve().parents[1] / "benchmarks" / "synthetic_masks.py"
spec = importlib.util.spec_from_file_location("synthetic_masks", TOOL)
synthetic_masks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic_masks)

# One frame of 4 x 4 pixels: background (0) on the left half, object 1 top right, object 2 bottom right.
LABELS = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 2, 2]])[None]


FLAGS = ("split", "merged", "in_background", "separated")


@pytest.mark.parametrize(
    ("slots", "expected"),
    [
        ([[3, 3, 0, 0], [3, 3, 0, 0], [3, 3, 1, 1], [3, 3, 1, 1]], dict(zip(FLAGS, (False, False, False, True)))),
        ([[3, 3, 0, 2], [3, 3, 0, 2], [3, 3, 1, 1], [3, 3, 1, 1]], dict(zip(FLAGS, (True, False, False, False)))),
        ([[3, 3, 1, 1], [3, 3, 1, 1], [3, 3, 1, 1], [3, 3, 1, 1]], dict(zip(FLAGS, (False, True, False, False)))),
        ([[3, 3, 0, 0], [3, 3, 0, 0], [3, 3, 3, 3], [3, 3, 3, 3]], dict(zip(FLAGS, (False, False, True, False)))),
    ],
    ids=["objects in slots of their own are separated", "an object halved between two slots is split",
         "two objects with one main slot are merged", "an object swallowed by the background slot is in background"],
)
def test_error_kinds_of_one_video(slots: list[list[int]], expected: dict[str, bool]) -> None:
    assert synthetic_masks.video_errors(torch.tensor(slots)[None], LABELS, num_slots=4) == expected


def test_a_main_slot_holding_sixty_percent_of_its_object_is_not_a_split() -> None:
    labels = torch.tensor([[0, 1, 1, 1, 1, 1]])[None]
    slots = torch.tensor([[3, 0, 0, 0, 2, 2]])[None]
    assert synthetic_masks.video_errors(slots, labels, num_slots=4)["split"] is False
    slots = torch.tensor([[3, 0, 0, 2, 2, 1]])[None]
    assert synthetic_masks.video_errors(slots, labels, num_slots=4)["split"] is True
