"""SlotCurri's slot curriculum as a conditioning part: learned slots used 2 -> K/2 -> K (docs/METHODS.md §11.2)."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from srl_plugin.models.initializers import FixedLearnedInit

SPLIT_NOISE_FACTOR = 0.2
NORM_EPS = 1e-8


def split_counts(errors: torch.Tensor, num_new: int) -> torch.Tensor:
    """How many new slots each old slot spawns: ``num_new`` shared in proportion to ``errors`` (K_old,).

    The integer parts of ``errors / sum(errors) * num_new`` first; the remaining slots go to the largest
    fractional parts (``torch.sort`` descending, as the official code). Returns (K_old,) int64 summing to
    ``num_new``.
    """
    total = errors.sum()
    if not total > 0:
        raise RuntimeError(
            f"cannot split slots: the recorded per-slot reconstruction errors are {errors.tolist()}; they are "
            "recorded by compute_losses (training mode) at the step before each expansion"
        )
    shares = errors / total * num_new
    counts = torch.floor(shares).long()
    remainder = num_new - int(counts.sum())
    if remainder > 0:
        order = torch.sort(shares - counts.to(shares.dtype), descending=True).indices
        counts[order[:remainder]] += 1
    return counts


@torch.no_grad()
def split_slots(slots: torch.Tensor, num_old: int, counts: torch.Tensor) -> None:
    """Writes ``counts[i]`` perturbed copies of each old slot ``i`` into rows ``num_old, num_old + 1, ...``
    of ``slots`` (K, D), in place.

    For old slot ``i``: ``j`` = its most cosine-similar other slot among all K (cosines computed once, before
    any write), ``sigma = 0.2 * |S_i - S_j| * |S_i| / (mean_l |S_l| + 1e-8)`` with ``S_j`` and the mean norm
    read from the live tensor (rows written earlier in this call count, as in the official code), and
    ``S_i + sigma * u`` with ``u`` rows of one ``torch.randn(counts[i], D)`` call (default dtype, the
    parameter's device) normalised to unit length.
    """
    unit = F.normalize(slots, dim=-1)
    cosine = unit @ unit.T
    row = num_old
    for index, count in enumerate(counts.tolist()):
        if count == 0:
            continue
        similarity = cosine[index].clone()
        similarity[index] = -1.0
        neighbour = slots[similarity.argmax()]
        relative_norm = slots[index].norm() / (slots.norm(dim=-1).mean() + NORM_EPS)
        scale = SPLIT_NOISE_FACTOR * (slots[index] - neighbour).norm() * relative_norm
        directions = F.normalize(torch.randn(count, slots.shape[1], device=slots.device), dim=-1)
        slots[row : row + count] = slots[index] + directions * scale.to(directions.dtype)
        row += count


class CurriculumLearnedInit(FixedLearnedInit):
    """Learned fixed slots (``initializer.slots``, K x D) whose training forward follows the slot curriculum.

    With ``s`` the global step and ``(s1, s2) = (schedule_steps // 10, schedule_steps // 4)``: training
    forwards return the first 2 slots while ``s <= s1``, the first ``K // 2`` while ``s <= s2``, all K after;
    evaluation forwards always return all K. At ``s = s1`` and ``s = s2`` the forward first splits the active
    slots into the next count (:func:`split_slots`, in proportion to the per-slot reconstruction errors that
    :meth:`record_errors` stored at step ``s - 1``); that step still trains the old count.

    The errors live in the buffer ``slot_errors`` (K,) and the number of splits done in ``splits_done``, so both
    are in checkpoints and a run resumed between the recording and the split continues exactly (the official code
    keeps the errors in a plain attribute, so a resume there divides 0 by 0). Each split happens once: with
    gradient accumulation the forwards of one step after the first reuse it (the official code would split
    again on every micro-batch), and the errors are those of the last micro-batch of step ``s - 1``. Under DDP,
    the split rows are broadcast from rank 0, so every rank keeps the same slots (rank 0 computes them from its
    own batch and RNG, as a single-process run; the official code lets ranks diverge).

    Args:
        num_slots: final ``K`` (at least 4, so that ``K // 2 >= 2``). slot_dim: ``D``.
        schedule_steps: the official ``model.max_steps`` (MOVi-C / YT-VIS 100000, MOVi-E 300000), at least 10.
    """

    def __init__(self, num_slots: int, slot_dim: int, schedule_steps: int = 100000) -> None:
        if num_slots < 4:
            raise ValueError(f"the slot curriculum 2 -> K//2 -> K needs num_slots >= 4, got {num_slots}")
        if schedule_steps < 10:
            raise ValueError(f"schedule_steps must be >= 10 so that the first split is after step 0, got {schedule_steps}")
        super().__init__(num_slots, slot_dim)
        self.expansion_steps = (schedule_steps // 10, schedule_steps // 4)
        self.slot_counts = (2, num_slots // 2, num_slots)
        self.register_buffer("slot_errors", torch.zeros(num_slots))
        self.register_buffer("splits_done", torch.zeros((), dtype=torch.long))

    def active_slots(self, global_step: int) -> int:
        """The number of slots a training forward uses at ``global_step``."""
        for last_step, count in zip(self.expansion_steps, self.slot_counts):
            if global_step <= last_step:
                return count
        return self.slot_counts[-1]

    def forward(self, batch_size: int, global_step: int | None = None) -> torch.Tensor:
        """(batch_size, k, D) initial slots: ``k`` from the curriculum in training mode (after the split due at
        ``global_step``, if any), ``k = K`` in eval mode."""
        if not self.training:
            return super().forward(batch_size)
        if global_step is None:
            raise ValueError("SlotCurri's training forward follows the slot curriculum: pass global_step")
        if global_step in self.expansion_steps and int(self.splits_done) <= self.expansion_steps.index(global_step):
            self.expand(self.expansion_steps.index(global_step))
        return super().forward(batch_size)[:, : self.active_slots(global_step)]

    def expand(self, phase: int) -> None:
        """Splits the ``slot_counts[phase]`` active slots into ``slot_counts[phase + 1]`` (in place)."""
        num_old = self.slot_counts[phase]
        num_new = self.slot_counts[phase + 1] - num_old
        if num_new > 0:
            split_slots(self.slots.data, num_old, split_counts(self.slot_errors[:num_old], num_new))
            if dist.is_available() and dist.is_initialized():
                dist.broadcast(self.slots.data, src=0)
        self.splits_done.fill_(phase + 1)

    def records_errors_at(self, global_step: int) -> bool:
        """Whether the per-slot errors of ``global_step`` feed a split (one is due at ``global_step + 1``)."""
        return global_step + 1 in self.expansion_steps

    @torch.no_grad()
    def record_errors(self, errors: torch.Tensor) -> None:
        """Stores the (k,) per-slot reconstruction errors of the active slots into ``slot_errors[:k]``."""
        self.slot_errors[: errors.shape[0]] = errors
