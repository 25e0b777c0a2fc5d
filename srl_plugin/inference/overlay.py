"""Slot colours, mask overlays and per-slot mask grids (images are ``uint8`` RGB arrays)."""
from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def slot_palette(num_slots: int) -> np.ndarray:
    """``(K, 3)`` uint8 colours, slot ``k`` always the same colour: hues spaced by the golden ratio."""
    colours = []
    for slot in range(num_slots):
        hue = (slot * GOLDEN_RATIO_CONJUGATE) % 1.0
        value = 0.95 if slot % 2 == 0 else 0.75
        colours.append(colorsys.hsv_to_rgb(hue, 0.85, value))
    return np.round(np.asarray(colours, dtype=np.float64).reshape(num_slots, 3) * 255).astype(np.uint8)


def overlay_masks(frames: np.ndarray, slot_ids: np.ndarray, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blends each pixel with its slot's colour: ``(1 - alpha) * frame + alpha * palette[slot_id]``.

    Args:
        frames: ``(..., H, W, 3)`` uint8. slot_ids: ``(..., H, W)`` integer ids in ``[0, K)``.
        palette: ``(K, 3)`` uint8. alpha: weight of the mask colour in ``[0, 1]``.

    Returns ``(..., H, W, 3)`` uint8.
    """
    if frames.shape[:-1] != slot_ids.shape or frames.shape[-1] != 3:
        raise ValueError(f"frames {frames.shape} and slot ids {slot_ids.shape} do not match")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    blended = (1.0 - alpha) * frames.astype(np.float32) + alpha * palette[slot_ids].astype(np.float32)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def _cell(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` resized so that its longer side is ``size`` (nearest for crisp masks)."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(target, Image.Resampling.NEAREST))


def mask_grid(
    frames: list[np.ndarray], soft_masks: list[np.ndarray], slot_ids: list[np.ndarray], palette: np.ndarray,
    cell_size: int = 128, gap: int = 2,
) -> np.ndarray:
    """A grid image: one row per frame with the frame, its overlay, then each slot's view of the frame.

    A slot's cell is ``mask * (frame + colour) / 2``: black where the slot is absent, the frame tinted in the
    slot's colour where it is present.

    Args:
        frames: ``(H, W, 3)`` uint8 per row. soft_masks: ``(K, H, W)`` float in ``[0, 1]`` per row.
        slot_ids: ``(H, W)`` per row. palette: ``(K, 3)`` uint8.

    Returns the grid, ``uint8`` ``(rows * (h + gap) - gap, (K + 2) * (w + gap) - gap, 3)`` on white.
    """
    rows = []
    for frame, soft, ids in zip(frames, soft_masks, slot_ids, strict=True):
        cells = [frame, overlay_masks(frame, ids, palette)]
        tinted = 0.5 * frame.astype(np.float32)[None] + 0.5 * palette.astype(np.float32)[:, None, None]
        for slot_cell in soft[..., None] * tinted:
            cells.append(np.clip(np.round(slot_cell), 0, 255).astype(np.uint8))
        rows.append([_cell(cell, cell_size) for cell in cells])
    height, width = rows[0][0].shape[:2]
    columns = len(rows[0])
    grid = np.full((len(rows) * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for row_index, row in enumerate(rows):
        for column_index, cell in enumerate(row):
            top, left = row_index * (height + gap), column_index * (width + gap)
            grid[top : top + height, left : left + width] = cell
    return grid
