"""SSync's pseudo-labels between slot attention and the decoder (docs/METHODS.md §10.2).

Hard labels from both mask sets, transitive merging of redundant slots by coverage IoU of the slot-attention
logits, then boundary patches (labelled by slot attention, predicted by the decoder) and interior patches
(labelled by the decoder, predicted by slot attention). Label maps are ``(B, T, h, w)`` integer tensors; no
gradient flows through labels, the selected predictions keep theirs.
"""
from __future__ import annotations

import torch
from torch import nn

NUM_NEIGHBOURS = 10


def hard_labels(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Argmax over slots of ``masks`` (B, T, K, N) as a label map (B, T, h, w) with ``h * w = N``."""
    batch, frames = masks.shape[:2]
    return masks.argmax(dim=2).reshape(batch, frames, *grid)


def slot_coverage_iou(logits: torch.Tensor) -> torch.Tensor:
    """Per-video IoU between the slots' coverages, averaged over frames: (B, K, K), float32.

    A slot covers patch n of frame t where its logit ``logits[b, t, k, n]`` (B, T, K, N) exceeds the slot's
    mean logit over all frames and patches. Areas carry ``+1e-6`` and a zero union gives IoU 0; counts and
    IoUs are float32 as in the official code, whatever the logits' dtype.
    """
    threshold = logits.mean(dim=(1, 3), keepdim=True)
    coverage = (logits > threshold).float()
    batch, frames, num_slots, _ = coverage.shape
    areas = coverage.sum(dim=-1) + 1e-6
    flat = coverage.reshape(batch * frames, num_slots, -1)
    intersection = torch.bmm(flat, flat.transpose(1, 2)).reshape(batch, frames, num_slots, num_slots)
    union = areas.unsqueeze(-1) + areas.unsqueeze(-2) - intersection
    iou = torch.where(union > 0, intersection / union, torch.zeros_like(union))
    return iou.mean(dim=1)


def redundant_components(edges: torch.Tensor) -> list[list[int]]:
    """Connected components (of two or more slots) of the symmetric boolean graph ``edges`` (K, K).

    Depth-first search with an explicit stack, started from slot 0, 1, ... in order; neighbours are pushed
    in increasing index order, so the last pushed is visited first. Each component lists its slots in
    visit order (the order that breaks ties between winners).
    """
    neighbours = [torch.nonzero(row).flatten().tolist() for row in edges.cpu()]
    visited = [False] * len(neighbours)
    components = []
    for start, start_neighbours in enumerate(neighbours):
        if visited[start] or not start_neighbours:
            continue
        stack, component = [start], []
        while stack:
            node = stack.pop()
            if visited[node]:
                continue
            visited[node] = True
            component.append(node)
            stack.extend(other for other in neighbours[node] if not visited[other])
        if len(component) > 1:
            components.append(component)
    return components


def merge_targets(logits: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Slot id each slot's label becomes after transitive merging: (B, K) long.

    Args:
        logits: (B, T, K, N) slot-attention logits (last iteration, scaled, before the softmax).
        labels: (B, T, h, w) slot-attention hard labels before merging (their per-slot areas pick winners).
        iou_threshold: slots whose frame-averaged coverage IoU is strictly above it are redundant.

    Every connected group of redundant slots maps to its member with the largest label area (ties: the
    first in depth-first visit order); every other slot maps to itself.
    """
    batch, _, num_slots, _ = logits.shape
    iou = slot_coverage_iou(logits)
    off_diagonal = ~torch.eye(num_slots, dtype=torch.bool, device=logits.device)
    edges = (iou > iou_threshold) & off_diagonal
    edges = edges | edges.transpose(1, 2)
    areas = torch.nn.functional.one_hot(labels.flatten(1), num_slots).sum(dim=1).tolist()
    targets = torch.arange(num_slots, device=labels.device).repeat(batch, 1)
    edges = edges.cpu()  # one device sync for the whole batch; the graph search runs in Python
    for video in range(batch):
        for component in redundant_components(edges[video]):
            winner = max(component, key=lambda slot: areas[video][slot])
            targets[video, component] = winner
    return targets


def relabel(labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``targets[b, labels[b, ...]]``: labels (B, ...) mapped through the per-video table ``targets`` (B, K)."""
    return torch.gather(targets, 1, labels.flatten(1)).reshape(labels.shape)


def neighbour_labels(labels: torch.Tensor) -> torch.Tensor:
    """The 10 neighbours' labels of every patch: (10, B, T, h, w) from ``labels`` (B, T, h, w).

    Order: the 8 spatial neighbours row by row (top-left ... bottom-right), then the same patch in the
    previous and the next frame. Borders (time included) are replicate-padded, so a missing neighbour
    equals the patch itself.
    """
    padded = torch.nn.functional.pad(labels.float().unsqueeze(0), (1, 1, 1, 1, 1, 1), mode="replicate")
    padded = padded.squeeze(0).long()
    height, width = labels.shape[-2:]
    centre_t = slice(1, -1)
    spatial = [
        padded[:, centre_t, dy : dy + height, dx : dx + width]
        for dy in range(3)
        for dx in range(3)
        if (dy, dx) != (1, 1)
    ]
    centre = padded[:, :, 1 : 1 + height, 1 : 1 + width]
    return torch.stack([*spatial, centre[:, :-2], centre[:, 2:]])


def disagreeing_neighbours(labels: torch.Tensor) -> torch.Tensor:
    """Number of the 10 neighbours (see :func:`neighbour_labels`) whose label differs: (B, T, h, w) long."""
    return (neighbour_labels(labels) != labels).sum(dim=0)


class SynergyPseudoLabels(nn.Module):
    """Builds SSync's boundary / interior pseudo-labels and the predictions they supervise.

    Args:
        merge_iou_threshold: coverage IoU above which slots are merged (0.7 MOVi-C, 0.65 MOVi-E, 0.6 YT-VIS).
        boundary_min_disagreeing: a boundary patch disagrees with at least this many SA neighbours (1).
        boundary_min_agreeing: ... and agrees with at least this many (1; rejects isolated noise).
        interior_max_disagreeing: an interior patch disagrees with fewer than this many decoder neighbours (1).
    """

    def __init__(
        self,
        merge_iou_threshold: float = 0.7,
        boundary_min_disagreeing: int = 1,
        boundary_min_agreeing: int = 1,
        interior_max_disagreeing: int = 1,
    ) -> None:
        super().__init__()
        self.merge_iou_threshold = merge_iou_threshold
        self.boundary_min_disagreeing = boundary_min_disagreeing
        self.boundary_min_agreeing = boundary_min_agreeing
        self.interior_max_disagreeing = interior_max_disagreeing

    def boundary(self, grouping_labels: torch.Tensor) -> torch.Tensor:
        """(B, T, h, w) bool: patches on a slot-attention boundary that are not isolated noise."""
        disagreeing = disagreeing_neighbours(grouping_labels)
        return (disagreeing >= self.boundary_min_disagreeing) & (
            NUM_NEIGHBOURS - disagreeing >= self.boundary_min_agreeing
        )

    def interior(self, decoder_labels: torch.Tensor) -> torch.Tensor:
        """(B, T, h, w) bool: patches whose decoder label (almost) all neighbours share."""
        return disagreeing_neighbours(decoder_labels) < self.interior_max_disagreeing

    @torch.no_grad()
    def labels(
        self,
        grouping_logits: torch.Tensor,
        grouping_masks: torch.Tensor,
        decoder_masks: torch.Tensor,
        grid: tuple[int, int],
    ) -> dict[str, torch.Tensor]:
        """Label maps (B, T, h, w): ``original_grp_labels`` / ``original_dec_labels`` (argmax of the SA /
        decoder masks), ``merged_grp_labels`` / ``merged_dec_labels`` (after merging, both with the components
        found on the SA logits), ``is_boundary`` (merged SA labels) and ``is_not_boundary`` (merged decoder
        labels), plus ``original_is_boundary`` / ``original_is_not_boundary`` on the un-merged labels."""
        grouping = hard_labels(grouping_masks, grid)
        decoding = hard_labels(decoder_masks, grid)
        targets = merge_targets(grouping_logits, grouping, self.merge_iou_threshold)
        merged_grouping, merged_decoding = relabel(grouping, targets), relabel(decoding, targets)
        return {
            "original_grp_labels": grouping,
            "original_dec_labels": decoding,
            "original_is_boundary": self.boundary(grouping),
            "original_is_not_boundary": self.interior(decoding),
            "merged_grp_labels": merged_grouping,
            "merged_dec_labels": merged_decoding,
            "is_boundary": self.boundary(merged_grouping),
            "is_not_boundary": self.interior(merged_decoding),
        }

    def forward(
        self,
        grouping_logits: torch.Tensor,
        grouping_masks: torch.Tensor,
        decoder_alpha: torch.Tensor,
        decoder_masks: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Pseudo-labels and the predictions they supervise.

        Args:
            grouping_logits: (B, T, K, N) last-iteration slot-attention logits; grouping_masks: their softmax
                over slots. decoder_alpha: (B, T, K, N) decoder alpha logits; decoder_masks: their softmax.

        Returns:
            The label maps of :meth:`labels` and, flattened in (b, t, h, w) row-major order,
            ``grp_bd_labels`` (n_bd,) merged SA labels at boundary patches with ``dec_bd_preds`` (n_bd, K)
            the decoder logits there, and ``dec_nbd_labels`` (n_nbd,) merged decoder labels at interior
            patches with ``grp_nbd_preds`` (n_nbd, K) the slot-attention logits there.
        """
        side = round(grouping_logits.shape[-1] ** 0.5)
        if side * side != grouping_logits.shape[-1]:
            raise ValueError(f"the patch axis must hold a square grid, got N={grouping_logits.shape[-1]}")
        shapes = {tuple(t.shape) for t in (grouping_logits, grouping_masks, decoder_alpha, decoder_masks)}
        if grouping_logits.dim() != 4 or len(shapes) != 1:
            raise ValueError(f"all four inputs must be (B, T, K, N) of one shape, got shapes {sorted(shapes)}")
        labels = self.labels(grouping_logits, grouping_masks, decoder_masks, (side, side))
        boundary, interior = labels["is_boundary"].flatten(), labels["is_not_boundary"].flatten()
        return {
            **labels,
            "grp_bd_labels": labels["merged_grp_labels"].flatten()[boundary],
            "dec_bd_preds": decoder_alpha.transpose(2, 3).flatten(0, 2)[boundary],
            "dec_nbd_labels": labels["merged_dec_labels"].flatten()[interior],
            "grp_nbd_preds": grouping_logits.transpose(2, 3).flatten(0, 2)[interior],
        }
