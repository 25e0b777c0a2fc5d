"""Key mapping between official SRL/SlotContrast state dicts and ``srl_plugin`` models (both directions)."""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

# (official prefix, our prefix); ``{i}`` stands for an integer index. Order matters: first match wins.
ENCODER_MLP_PAIRS: tuple[tuple[str, str], ...] = (
    ("encoder.module.output_transform.layers.0.", "encoder_mlp.norm."),
    ("encoder.module.output_transform.layers.1.", "encoder_mlp.fc1."),
    ("encoder.module.output_transform.layers.3.", "encoder_mlp.fc2."),
)
# Slot attention and transformer predictor, shared by the three methods.
PROCESSOR_PAIRS: tuple[tuple[str, str], ...] = (
    ("processor.module.corrector.norm_features.", "processor.corrector.norm_inputs."),
    ("processor.module.corrector.norm_slots.", "processor.corrector.norm_slots."),
    ("processor.module.corrector.to_q.", "processor.corrector.to_q."),
    ("processor.module.corrector.to_k.", "processor.corrector.to_k."),
    ("processor.module.corrector.to_v.", "processor.corrector.to_v."),
    ("processor.module.corrector.gru.", "processor.corrector.gru."),
    ("processor.module.predictor.blocks.{i}.self_attn.", "processor.predictor.blocks.{i}.attn."),
    ("processor.module.predictor.blocks.{i}.linear1.", "processor.predictor.blocks.{i}.fc1."),
    ("processor.module.predictor.blocks.{i}.linear2.", "processor.predictor.blocks.{i}.fc2."),
    ("processor.module.predictor.blocks.{i}.norm1.", "processor.predictor.blocks.{i}.norm1."),
    ("processor.module.predictor.blocks.{i}.norm2.", "processor.predictor.blocks.{i}.norm2."),
)
PREFIX_PAIRS: tuple[tuple[str, str], ...] = (
    ("encoder.module.backbone.model.", "backbone.model."),
    *ENCODER_MLP_PAIRS,
    ("initializer.slots", "initializer.slots"),
    ("processor.module.corrector.mlp.layers.0.", "processor.corrector.mlp.norm."),
    ("processor.module.corrector.mlp.layers.1.", "processor.corrector.mlp.fc1."),
    ("processor.module.corrector.mlp.layers.3.", "processor.corrector.mlp.fc2."),
    *PROCESSOR_PAIRS,
    ("decoder.module.pos_emb", "decoder.pos_emb"),
    ("decoder.module.mlp.layers.", "decoder.mlp."),
    ("projector.projector.", "dec_projector."),
    ("projector2.projector.", "enc_projector."),
)

# Official tensors that carry leading singleton axes our parameters do not have.
OFFICIAL_LEADING_ONES: dict[str, int] = {"initializer.slots": 1, "decoder.module.pos_emb": 2}


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(pattern).replace(re.escape("{i}"), r"(?P<i>\d+)"))


class KeyMap:
    """Renaming rules between an official state-dict layout and ours, in both directions.

    pairs: ``(official prefix, our prefix)``, first match wins; ``{i}`` matches an integer index.
    leading_ones: official keys whose tensors carry that many leading singleton axes ours lack.
    """

    def __init__(self, pairs: tuple[tuple[str, str], ...], leading_ones: Mapping[str, int]) -> None:
        self._to_ours = [(_compile(official), ours) for official, ours in pairs]
        self._to_official = [(_compile(ours), official) for official, ours in pairs]
        self.leading_ones = dict(leading_ones)

    @staticmethod
    def _translate(key: str, rules: list[tuple[re.Pattern[str], str]]) -> str | None:
        for pattern, target in rules:
            match = pattern.match(key)
            if match:
                return target.format(**match.groupdict()) + key[match.end() :]
        return None

    def to_ours(self, key: str) -> str | None:
        """Our parameter name for an official key, or ``None`` when no rule covers it."""
        return self._translate(key, self._to_ours)

    def to_official(self, key: str) -> str | None:
        """The official name of one of our parameters, or ``None`` when it has no official counterpart."""
        return self._translate(key, self._to_official)

    def squeeze(self, official_key: str, value: torch.Tensor) -> torch.Tensor:
        """``value`` of ``official_key`` without the official leading singleton axes."""
        leading = self.leading_ones.get(official_key, 0)
        if not leading:
            return value
        if tuple(value.shape[:leading]) != (1,) * leading:
            raise ValueError(
                f"official '{official_key}' should start with {leading} singleton axes, got {tuple(value.shape)}"
            )
        return value.reshape(value.shape[leading:])

    def unsqueeze(self, official_key: str, value: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`squeeze`: ``value`` with the leading singleton axes ``official_key`` carries."""
        leading = self.leading_ones.get(official_key, 0)
        return value.reshape((1,) * leading + tuple(value.shape)) if leading else value


SRL_KEYMAP = KeyMap(PREFIX_PAIRS, OFFICIAL_LEADING_ONES)


def official_to_ours_key(key: str) -> str | None:
    """Our parameter name for an official SRL/SlotContrast key, or ``None`` when no rule covers it."""
    return SRL_KEYMAP.to_ours(key)


def ours_to_official_key(key: str) -> str | None:
    """The official SRL/SlotContrast name of one of our parameters, or ``None`` without a counterpart."""
    return SRL_KEYMAP.to_official(key)


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Renames (and squeezes) official tensors to our layout; returns ``(converted, unknown_official_keys)``."""
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        ours = official_to_ours_key(key)
        if ours is None:
            unknown.append(key)
            continue
        converted[ours] = SRL_KEYMAP.squeeze(key, value)
    return converted, unknown


def to_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`convert_official_state_dict` for one of our models' state dicts."""
    official: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in state_dict.items():
        name = ours_to_official_key(key)
        if name is None:
            unmapped.append(key)
            continue
        official[name] = SRL_KEYMAP.unsqueeze(name, value)
    if unmapped:
        raise KeyError(f"these parameters have no official counterpart (not an SRL/SlotContrast model?): {unmapped}")
    return official
