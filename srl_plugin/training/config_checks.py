"""Up-front checks of a composed training config: every bad value is named with its key and a valid example."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

_MISSING = object()


class ConfigValueError(ValueError):
    """Config values of the wrong type or out of range; the message names each key and what it must be."""


@dataclass(frozen=True)
class Rule:
    """``key`` must be a ``kind`` ("int" or "number") satisfying ``check`` (described by ``requirement``).

    ``optional``: the key may be absent or null. ``example`` is a valid value shown in the message.
    """

    key: str
    kind: str
    check: Callable[[float], bool]
    requirement: str
    example: Any
    optional: bool = False


def _at_least(bound: float) -> Callable[[float], bool]:
    return lambda value: value >= bound


RULES = (
    Rule("seed", "int", _at_least(0), ">= 0", 0),
    Rule("num_threads", "int", _at_least(1), ">= 1", 1, optional=True),
    Rule("checkpoint_every_n_steps", "int", _at_least(1), ">= 1", 2500),
    Rule("nonfinite_skips", "int", _at_least(0), ">= 0", 0, optional=True),
    Rule("optimizer.lr", "number", lambda value: 0 < value < math.inf, "> 0 and finite", 4e-4),
    Rule("scheduler.warmup_steps", "int", _at_least(0), ">= 0", 2500),
    Rule("scheduler.decay_steps", "int", _at_least(1), ">= 1", 100000),
    Rule("scheduler.decay_rate", "number", lambda value: 0 < value < math.inf, "> 0 and finite", 0.5),
    Rule("trainer.max_steps", "int", _at_least(1), ">= 1", 100000),
    Rule("trainer.val_check_interval", "int", _at_least(1), ">= 1 (optimizer steps)", 2500),
    Rule("trainer.log_every_n_steps", "int", _at_least(1), ">= 1", 50),
    Rule("trainer.num_nodes", "int", _at_least(1), ">= 1", 1),
    Rule("trainer.gradient_clip_val", "number", lambda value: 0 <= value < math.inf, ">= 0 and finite", 0.05,
         optional=True),
    Rule("model.num_slots", "int", _at_least(2), ">= 2 (slot attention needs slots to compete)", 7),
    Rule("data.batch_size", "int", _at_least(1), ">= 1", 8),
    Rule("data.val_batch_size", "int", _at_least(1), ">= 1", 8),
    Rule("data.chunk_size", "int", _at_least(1), ">= 1", 4),
    Rule("data.num_workers", "int", _at_least(0), ">= 0", 4),
    Rule("data.shuffle_buffer", "int", _at_least(1), ">= 1", 512),
    Rule("data.input_size", "int", _at_least(1), ">= 1", 224),
    Rule("data.num_classes", "int", _at_least(1), ">= 1", 11, optional=True),
    Rule("data.val_size", "int", _at_least(1), ">= 1", 250, optional=True),
    Rule("data.h_flip_prob", "number", lambda value: 0 <= value <= 1, "in [0, 1]", 0.5, optional=True),
)


def _kind_ok(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind == "int" else isinstance(value, (int, float))


def rule_violation(rule: Rule, value: Any) -> str | None:
    """Why ``value`` breaks ``rule`` (``None`` when it does not)."""
    if value is _MISSING or value is None:
        return None if rule.optional else f"{rule.key} is not set; set it, e.g. {rule.key}={rule.example}"
    noun = "an integer" if rule.kind == "int" else "a number"
    if not _kind_ok(value, rule.kind) or not rule.check(value):
        return (
            f"{rule.key}={value!r} ({type(value).__name__}) is invalid: it must be {noun} {rule.requirement}, "
            f"e.g. {rule.key}={rule.example}"
        )
    return None


def config_problem(config: DictConfig, rule: Rule) -> str | None:
    """Why ``config``'s value at ``rule.key`` breaks ``rule``, including a value that is unset (``???``) or
    cannot be resolved; ``None`` when it is fine."""
    try:
        value = OmegaConf.select(config, rule.key, default=_MISSING, throw_on_missing=True)
    except OmegaConfBaseException as error:
        reason = str(error).strip().splitlines()[0]
        return f"{rule.key} has no usable value ({reason}); set it, e.g. {rule.key}={rule.example}"
    return rule_violation(rule, value)


def check_training_config(config: DictConfig) -> None:
    """Raises :class:`ConfigValueError` listing every value of :data:`RULES` that ``config`` gets wrong."""
    problems = [problem for rule in RULES if (problem := config_problem(config, rule)) is not None]
    if problems:
        raise ConfigValueError("invalid config value(s): " + "; ".join(problems))
