"""Comparing the weights a model expects with the weights a state dict holds, and finding non-finite weights."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class StateDictDifferences:
    """Every key a state dict lacks, every key the model does not know, and every shape that disagrees.

    ``mismatched`` holds ``(key, expected shape, found shape)``.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def describe(self, rename: Callable[[str], str] = str, unknown: Iterable[str] = ()) -> str:
        """All differences in one sentence, keys passed through ``rename`` (e.g. to official names);
        ``unknown``: further unexpected keys, already named as the caller wants them shown."""
        parts = []
        unexpected = [*unknown, *(rename(key) for key in self.unexpected)]
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): {', '.join(unexpected)}")
        if self.missing:
            parts.append(f"missing {len(self.missing)} key(s): {', '.join(rename(key) for key in self.missing)}")
        if self.mismatched:
            shapes = ", ".join(
                f"{rename(key)} (expected {list(expected)}, found {list(found)})"
                for key, expected, found in self.mismatched
            )
            parts.append(f"{len(self.mismatched)} shape mismatch(es): {shapes}")
        return "; ".join(parts)


def state_dict_differences(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], optional: Iterable[str] = ()
) -> StateDictDifferences:
    """Differences between ``expected`` (e.g. ``model.state_dict()``) and ``found``, in ``expected``'s order.

    Keys starting with one of the ``optional`` prefixes may be absent from ``found`` (e.g. a frozen backbone
    that a checkpoint leaves out).
    """
    prefixes = tuple(optional)
    missing = [key for key in expected if key not in found and not (prefixes and key.startswith(prefixes))]
    unexpected = [key for key in found if key not in expected]
    mismatched = [
        (key, tuple(value.shape), tuple(found[key].shape))
        for key, value in expected.items()
        if key in found and tuple(value.shape) != tuple(found[key].shape)
    ]
    return StateDictDifferences(missing, unexpected, mismatched)


def non_finite_tensors(state_dict: Mapping[str, object]) -> list[str]:
    """Keys of the floating-point tensors of ``state_dict`` that hold a NaN or an infinity."""
    return [
        key
        for key, value in state_dict.items()
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
