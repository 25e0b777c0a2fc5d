"""Key mapping between official SRL/SlotContrast state dicts and ``srl_plugin`` models (both directions)."""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

# (official prefix, our prefix); ``{i}`` stands for an integer index. Order matters: first match wins.
PREFIX_PAIRS: tuple[tuple[str, str], ...] = (
    ("encoder.module.backbone.model.", "backbone.model."),
    ("encoder.module.output_transform.layers.0.", "encoder_mlp.norm."),
    ("encoder.module.output_transform.layers.1.", "encoder_mlp.fc1."),
    ("encoder.module.output_transform.layers.3.", "encoder_mlp.fc2."),
    ("initializer.slots", "initializer.slots"),
    ("processor.module.corrector.mlp.layers.0.", "processor.corrector.mlp.norm."),
    ("processor.module.corrector.mlp.layers.1.", "processor.corrector.mlp.fc1."),
    ("processor.module.corrector.mlp.layers.3.", "processor.corrector.mlp.fc2."),
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
    ("decoder.module.pos_emb", "decoder.pos_emb"),
    ("decoder.module.mlp.layers.", "decoder.mlp."),
    ("projector.projector.", "dec_projector."),
    ("projector2.projector.", "enc_projector."),
)

# Official tensors that carry leading singleton axes our parameters do not have.
OFFICIAL_LEADING_ONES: dict[str, int] = {"initializer.slots": 1, "decoder.module.pos_emb": 2}


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(pattern).replace(re.escape("{i}"), r"(?P<i>\d+)"))


def _translate(key: str, pairs: list[tuple[str, str]]) -> str | None:
    for source, target in pairs:
        match = _compile(source).match(key)
        if match:
            return target.format(**match.groupdict()) + key[match.end() :]
    return None


def official_to_ours_key(key: str) -> str | None:
    """Our parameter name for an official key, or ``None`` when no rule covers it."""
    return _translate(key, list(PREFIX_PAIRS))


def ours_to_official_key(key: str) -> str | None:
    """The official name of one of our parameters, or ``None`` when it has no official counterpart."""
    return _translate(key, [(ours, official) for official, ours in PREFIX_PAIRS])


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Renames (and squeezes) official tensors to our layout; returns ``(converted, unknown_official_keys)``."""
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        ours = official_to_ours_key(key)
        if ours is None:
            unknown.append(key)
            continue
        leading = OFFICIAL_LEADING_ONES.get(key, 0)
        if leading:
            if tuple(value.shape[:leading]) != (1,) * leading:
                raise ValueError(f"official '{key}' should start with {leading} singleton axes, got {tuple(value.shape)}")
            value = value.reshape(value.shape[leading:])
        converted[ours] = value
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
        leading = OFFICIAL_LEADING_ONES.get(name, 0)
        official[name] = value.reshape((1,) * leading + tuple(value.shape)) if leading else value
    if unmapped:
        raise KeyError(f"these parameters have no official counterpart (not an SRL/SlotContrast model?): {unmapped}")
    return official
