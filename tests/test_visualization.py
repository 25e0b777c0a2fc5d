"""Mask figures are labelled: row names in a left margin, a slot colour legend below."""
from __future__ import annotations

import torch

from srl_plugin.training.visualization import LABEL_WIDTH, LEGEND_HEIGHT, mask_overlay_grid


def test_mask_figure_has_row_labels_and_a_slot_legend() -> None:
    masks = torch.nn.functional.one_hot(torch.randint(0, 3, (4, 16, 16)), 3).permute(0, 3, 1, 2)
    image = mask_overlay_grid(torch.rand(4, 3, 16, 16), masks)
    rows_height = 2 * (16 + 2) + 2  # make_grid: two rows of 16 px with 2 px padding
    assert image.shape[-2] == rows_height + LEGEND_HEIGHT
    assert image.shape[-1] >= LABEL_WIDTH + 4 * (16 + 2) + 2
    margin, legend = image[:, :rows_height, :LABEL_WIDTH], image[:, rows_height:, LABEL_WIDTH:]
    assert (margin < 0.5).any() and (margin > 0.9).float().mean() > 0.5, "dark label text on a white margin"
    for colour in ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)):  # slot_palette(3): red, green, blue
        assert (legend == torch.tensor(colour).view(3, 1, 1)).all(dim=0).any(), f"legend swatch {colour}"
