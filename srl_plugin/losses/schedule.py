"""Step windows that switch SRL's losses on and off (docs/METHODS.md §4.8, §6.1)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LossWindow:
    """The set of training steps on which a loss is active.

    Evaluated on the trainer's optimizer step (``global_step``), the decision of docs/METHODS.md §6.1 item 1.
    Official MOVi-C windows: the regulariser is ``LossWindow(0, 10000, True, True)`` (closed interval) and
    DEC/ENC are ``LossWindow(20000, None, False, False)`` (strictly after step 20000).

    Args:
        start: first boundary step.
        end: last boundary step, or ``None`` for a window that never closes.
        start_inclusive: whether ``start`` itself is active.
        end_inclusive: whether ``end`` itself is active (ignored when ``end`` is ``None``).
    """

    start: int
    end: int | None
    start_inclusive: bool
    end_inclusive: bool

    def __post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"LossWindow end ({self.end}) must not be before start ({self.start})")

    def is_active(self, global_step: int) -> bool:
        """Whether the loss is on at optimizer step ``global_step``."""
        after_start = global_step >= self.start if self.start_inclusive else global_step > self.start
        if not after_start:
            return False
        if self.end is None:
            return True
        return global_step <= self.end if self.end_inclusive else global_step < self.end
