"""The official SRL-family checkpoint layout (hynnsk/SRL, martius-lab/slotcontrast, wjun0830/SSync,
wjun0830/SlotCurri): SlotContrast's key names, plus ``projector.*`` / ``projector2.*`` in SRL's."""
from __future__ import annotations

import re
from typing import Any, ClassVar

import torch

from srl_plugin.interop.keymap import convert_official_state_dict, ours_to_official_key, to_official_state_dict
from srl_plugin.interop.layout import OfficialLayout, StateDict

ARCHITECTURE_KEYS = (
    "initializer.slots",
    "encoder.module.output_transform.layers.0.weight",
    "encoder.module.output_transform.layers.1.weight",
    "decoder.module.pos_emb",
)


def detect_method(state_dict: StateDict) -> str:
    """'srl' when the SRL projectors are present, else 'slotcontrast' (SlotCurri and SSync checkpoints have
    SlotContrast's keys, so they are told apart only by ``method``)."""
    has_projectors = any(key.startswith(("projector.", "projector2.")) for key in state_dict)
    return "srl" if has_projectors else "slotcontrast"


def _indexed_weights(state_dict: StateDict, pattern: str) -> list[torch.Tensor]:
    """Weights whose key matches ``pattern`` (one ``(\\d+)`` group), ordered by that index."""
    regex = re.compile(pattern)
    found = {int(m.group(1)): value for key, value in state_dict.items() if (m := regex.fullmatch(key))}
    return [found[index] for index in sorted(found)]


def infer_architecture(state_dict: StateDict) -> dict[str, object]:
    """Sizes read from tensor shapes: ``feature_dim``, ``num_slots``, ``slot_dim``, ``num_patches``,
    ``mlp_hidden_dim``, ``decoder_hidden_dims``, ``predictor_blocks``."""
    absent = [key for key in ARCHITECTURE_KEYS if key not in state_dict]
    if absent:
        raise KeyError(f"{absent} missing from the state dict; is this an official SRL/SlotContrast checkpoint?")
    _, num_slots, slot_dim = state_dict["initializer.slots"].shape
    feature_dim = state_dict["encoder.module.output_transform.layers.0.weight"].shape[0]
    mlp_hidden_dim = state_dict["encoder.module.output_transform.layers.1.weight"].shape[0]
    num_patches = state_dict["decoder.module.pos_emb"].shape[-2]
    decoder_layers = _indexed_weights(state_dict, r"decoder\.module\.mlp\.layers\.(\d+)\.weight")
    if not decoder_layers or decoder_layers[-1].shape[0] != feature_dim + 1:
        raise ValueError(
            f"the decoder MLP should end with D_f + 1 = {feature_dim + 1} outputs; this does not look like an "
            "MLP broadcast decoder (VideoSAUR checkpoints are not supported)"
        )
    blocks = {m.group(1) for key in state_dict if (m := re.match(r"processor\.module\.predictor\.blocks\.(\d+)\.", key))}
    return {
        "feature_dim": int(feature_dim),
        "num_slots": int(num_slots),
        "slot_dim": int(slot_dim),
        "num_patches": int(num_patches),
        "mlp_hidden_dim": int(mlp_hidden_dim),
        "decoder_hidden_dims": tuple(int(w.shape[0]) for w in decoder_layers[:-1]),
        "predictor_blocks": len(blocks),
    }


class SlotContrastFamilyLayout(OfficialLayout):
    """Learned slots, MLP broadcast decoder: SRL, SlotContrast, SlotCurri and SSync checkpoints."""

    methods = ("srl", "slotcontrast", "slotcurri", "ssync")
    # SlotCurri's per-slot errors (a plain attribute in the official code, zero after loading) and its count of
    # splits done, so an import starts from zeros as the official code does.
    state_not_in_official: ClassVar[frozenset[str]] = frozenset({"initializer.slot_errors", "initializer.splits_done"})

    def matches(self, state_dict: StateDict) -> bool:
        return "initializer.slots" in state_dict or any(key.startswith("decoder.module.mlp.") for key in state_dict)

    def detect_method(self, state_dict: StateDict) -> str:
        return detect_method(state_dict)

    def shape_hyperparameters(self, state_dict: StateDict) -> dict[str, Any]:
        return infer_architecture(state_dict)

    def to_ours(self, state_dict: StateDict) -> tuple[dict[str, torch.Tensor], list[str]]:
        return convert_official_state_dict(state_dict)

    def to_official(self, state_dict: StateDict) -> dict[str, torch.Tensor]:
        return to_official_state_dict(state_dict)

    def official_key(self, key: str) -> str:
        return ours_to_official_key(key) or key
