"""Per-sample ARI and best-overlap scores from contingency tables (docs/METHODS.md §1.11).

A contingency table ``N[c, k]`` counts the points labelled ``c`` in the ground truth and ``k`` in the
prediction; points without a ground-truth label do not enter it. Tables are computed frame by frame,
so image metrics use them directly and video metrics sum them over time.
"""
from __future__ import annotations

import torch

# Upper bound on elements converted to float32 at once (frames * (C + K) * H * W).
_CHUNK_ELEMENTS = 1 << 24


def frame_statistics(
    pred_masks: torch.Tensor, true_masks: torch.Tensor, ignore_background: bool
) -> dict[str, torch.Tensor]:
    """Per-frame contingency tables and areas, processed in frame chunks to bound memory.

    Args:
        pred_masks: (B, T, K, H, W) one-hot predicted masks.
        true_masks: (B, T, C, H, W) one-hot ground truth; with ``ignore_background`` channel 0 is the
            background and every pixel must carry exactly one label, otherwise a pixel carries at most one.

    Returns:
        float64 tensors ``table`` (B, T, C', K), ``true_area`` (B, T, C'), ``pred_area`` (B, T, K) and
        ``labelled`` (B, T) (pixels with any ground-truth label, background included), where ``C'`` is
        ``C - 1`` with ``ignore_background`` (channel 0 removed) and ``C`` otherwise.
    """
    for name, masks, layout in (("pred_masks", pred_masks, "(B, T, K, H, W)"), ("true_masks", true_masks, "(B, T, C, H, W)")):
        if not isinstance(masks, torch.Tensor) or masks.dim() != 5:
            shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
            raise ValueError(f"{name} must be a one-hot tensor of shape {layout}, got {shape}")
    if pred_masks.shape[:2] != true_masks.shape[:2] or pred_masks.shape[3:] != true_masks.shape[3:]:
        raise ValueError(
            f"pred_masks {tuple(pred_masks.shape)} and true_masks {tuple(true_masks.shape)} must agree on B, T, H "
            "and W; upsample the predictions to the ground-truth resolution first (hard_masks_from_soft)"
        )
    if ignore_background and true_masks.shape[2] < 1:
        raise ValueError("ignore_background=True needs a background channel 0 in true_masks")
    batch, frames, classes = true_masks.shape[:3]
    slots = pred_masks.shape[2]
    pred = pred_masks.flatten(0, 1).flatten(2)  # (B*T, K, P)
    true = true_masks.flatten(0, 1).flatten(2)  # (B*T, C, P)
    chunk = max(1, _CHUNK_ELEMENTS // ((classes + slots) * pred.shape[-1]))
    tables, true_areas, pred_areas, labelled = [], [], [], []
    for pred_part, true_part in zip(pred.split(chunk), true.split(chunk)):
        pred_part = pred_part.to(torch.float32)
        true_part = true_part.to(torch.float32)
        per_pixel = true_part.sum(dim=1)
        if ignore_background and not bool((per_pixel == 1).all()):
            raise ValueError(
                "true_masks must give every pixel exactly one label (channel 0 = background) when "
                "ignore_background=True; use ignore_background=False for ground truth without a background channel"
            )
        if not bool((per_pixel <= 1).all()):
            raise ValueError("true_masks has overlapping labels (a pixel with more than one channel set)")
        if ignore_background:
            true_part = true_part[:, 1:]
        tables.append(torch.bmm(true_part, pred_part.transpose(1, 2)).to(torch.float64))
        true_areas.append(true_part.sum(dim=-1).to(torch.float64))
        pred_areas.append(pred_part.sum(dim=-1).to(torch.float64))
        labelled.append(per_pixel.sum(dim=-1).to(torch.float64))
    return {
        "table": torch.cat(tables).reshape(batch, frames, *tables[0].shape[1:]),
        "true_area": torch.cat(true_areas).reshape(batch, frames, -1),
        "pred_area": torch.cat(pred_areas).reshape(batch, frames, slots),
        "labelled": torch.cat(labelled).reshape(batch, frames),
    }


def adjusted_rand_index(table: torch.Tensor) -> torch.Tensor:
    """ARI of each (..., C, K) contingency table; 1 where the denominator ``Max - E`` is 0."""
    true_sizes = table.sum(dim=-1)
    pred_sizes = table.sum(dim=-2)
    points = true_sizes.sum(dim=-1)
    index = (table * (table - 1)).sum(dim=(-1, -2))
    true_pairs = (true_sizes * (true_sizes - 1)).sum(dim=-1)
    pred_pairs = (pred_sizes * (pred_sizes - 1)).sum(dim=-1)
    expected = true_pairs * pred_pairs / (points * (points - 1)).clamp(min=1)
    maximum = (true_pairs + pred_pairs) / 2
    denominator = maximum - expected
    safe = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where(denominator == 0, torch.ones_like(denominator), (index - expected) / safe)


def best_overlap(table: torch.Tensor, true_area: torch.Tensor, pred_area: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over active ground-truth channels of the best IoU with any predicted slot.

    Args:
        table: (..., C, K) intersections. true_area: (..., C). pred_area: (..., K).

    Returns:
        ((...) scores, (...) bool: the sample has at least one active channel). Scores of samples without
        active channels are 0 and must be skipped.
    """
    union = true_area[..., :, None] + pred_area[..., None, :] - table
    iou = torch.where(union > 0, table / union.clamp(min=1), torch.zeros_like(table))
    active = true_area > 0
    count = active.sum(dim=-1)
    score = (iou.amax(dim=-1) * active).sum(dim=-1) / count.clamp(min=1)
    return score, count > 0
