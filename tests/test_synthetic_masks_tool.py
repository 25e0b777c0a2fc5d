"""The error kinds that `benchmarks/synthetic_masks.py separation` counts, on hand-made slot maps."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

TOOL = Path(__file__).resolve().parents[1] / "benchmarks" / "synthetic_masks.py"
spec = importlib.util.spec_from_file_location("synthetic_masks", TOOL)
synthetic_masks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic_masks)

# One frame of 4 x 4 pixels: background (0) on the left half, object 1 top right, object 2 bottom right.
LABELS = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 2, 2]])[None]


def errors(slots: list[list[int]]) -> dict[str, bool]:
    return synthetic_masks.video_errors(torch.tensor(slots)[None], LABELS, num_slots=4)


def test_objects_in_slots_of_their_own_are_separated() -> None:
    flags = errors([[3, 3, 0, 0], [3, 3, 0, 0], [3, 3, 1, 1], [3, 3, 1, 1]])
    assert flags == {"split": False, "merged": False, "in_background": False, "separated": True}


def test_an_object_halved_between_two_slots_is_split() -> None:
    flags = errors([[3, 3, 0, 2], [3, 3, 0, 2], [3, 3, 1, 1], [3, 3, 1, 1]])
    assert flags == {"split": True, "merged": False, "in_background": False, "separated": False}


def test_a_main_slot_holding_sixty_percent_of_its_object_is_not_a_split() -> None:
    labels = torch.tensor([[0, 1, 1, 1, 1, 1]])[None]
    slots = torch.tensor([[3, 0, 0, 0, 2, 2]])[None]
    assert synthetic_masks.video_errors(slots, labels, num_slots=4)["split"] is False
    slots = torch.tensor([[3, 0, 0, 2, 2, 1]])[None]
    assert synthetic_masks.video_errors(slots, labels, num_slots=4)["split"] is True


def test_two_objects_with_one_main_slot_are_merged() -> None:
    flags = errors([[3, 3, 1, 1], [3, 3, 1, 1], [3, 3, 1, 1], [3, 3, 1, 1]])
    assert flags == {"split": False, "merged": True, "in_background": False, "separated": False}


def test_an_object_swallowed_by_the_background_slot_is_in_background() -> None:
    flags = errors([[3, 3, 0, 0], [3, 3, 0, 0], [3, 3, 3, 3], [3, 3, 3, 3]])
    assert flags == {"split": False, "merged": False, "in_background": True, "separated": False}
