"""Build an ``SRLModel`` / ``SlotContrastModel`` / ``SlotCurriModel`` / ``SSyncModel`` from an official checkpoint's
state dict."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

from srl_plugin.interop.backbone import backbone_from_weights, backbone_patch_size
from srl_plugin.interop.keymap import convert_official_state_dict, ours_to_official_key, to_official_state_dict
from srl_plugin.interop.presets import backbone_name, method_kwargs, patch_size
from srl_plugin.models.backbone import FrozenViTBackbone
from srl_plugin.models.slotcontrast import SlotContrastModel
from srl_plugin.models.slotcurri import SlotCurriModel
from srl_plugin.models.srl import SRLModel
from srl_plugin.models.ssync import SSyncModel
from srl_plugin.models.state import state_dict_differences

MODEL_CLASSES: dict[str, type[SRLModel | SlotContrastModel | SlotCurriModel]] = {
    "srl": SRLModel,
    "slotcontrast": SlotContrastModel,
    "slotcurri": SlotCurriModel,
    "ssync": SSyncModel,
}
# Our state that official checkpoints never store: SlotCurri's per-slot errors (a plain attribute there, zero
# after loading) and its count of splits done, so an import starts from zeros as the official code does.
STATE_NOT_IN_OFFICIAL = frozenset({"initializer.slot_errors", "initializer.splits_done"})
ARCHITECTURE_KEYS = (
    "initializer.slots",
    "encoder.module.output_transform.layers.0.weight",
    "encoder.module.output_transform.layers.1.weight",
    "decoder.module.pos_emb",
)


def detect_method(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'srl' when the SRL projectors are present, else 'slotcontrast' (SlotCurri and SSync checkpoints have
    SlotContrast's keys, so they are told apart only by ``method``)."""
    has_projectors = any(key.startswith(("projector.", "projector2.")) for key in state_dict)
    return "srl" if has_projectors else "slotcontrast"


def _require(state_dict: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state_dict:
        raise KeyError(f"'{key}' missing from the state dict; is this an official SRL/SlotContrast-family checkpoint?")
    return state_dict[key]


def _indexed_weights(state_dict: Mapping[str, torch.Tensor], pattern: str) -> list[torch.Tensor]:
    """Weights whose key matches ``pattern`` (one ``(\\d+)`` group), ordered by that index."""
    regex = re.compile(pattern)
    found = {int(m.group(1)): value for key, value in state_dict.items() if (m := regex.fullmatch(key))}
    return [found[index] for index in sorted(found)]


def infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> dict[str, object]:
    """Sizes read from tensor shapes: ``feature_dim``, ``num_slots``, ``slot_dim``, ``num_patches``,
    ``mlp_hidden_dim``, ``decoder_hidden_dims``, ``predictor_blocks``."""
    absent = [key for key in ARCHITECTURE_KEYS if key not in state_dict]
    if absent:
        raise KeyError(f"{absent} missing from the state dict; is this an official SRL/SlotContrast checkpoint?")
    _, num_slots, slot_dim = _require(state_dict, "initializer.slots").shape
    feature_dim = _require(state_dict, "encoder.module.output_transform.layers.0.weight").shape[0]
    mlp_hidden_dim = _require(state_dict, "encoder.module.output_transform.layers.1.weight").shape[0]
    num_patches = _require(state_dict, "decoder.module.pos_emb").shape[-2]
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


def _build_backbone(
    state_dict: Mapping[str, torch.Tensor], method: str, preset: str, input_size: int
) -> FrozenViTBackbone | None:
    """The preset's timm ViT sized from the checkpoint (weights are loaded afterwards), or ``None``."""
    patch = backbone_patch_size(state_dict)
    if patch is not None and patch != patch_size(method, preset):
        raise ValueError(f"checkpoint backbone has patch size {patch}, preset '{preset}' expects {patch_size(method, preset)}")
    return backbone_from_weights(state_dict, backbone_name(method, preset), input_size)


def model_from_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], preset: str = "movi_c", method: str = "auto"
) -> SRLModel | SlotContrastModel | SlotCurriModel:
    """Builds our model from an official SRL, SlotContrast, SlotCurri or SSync ``state_dict`` and loads every weight.

    Args:
        state_dict: the ``state_dict`` of an official Lightning checkpoint (official key names). Without
            ``encoder.module.backbone.*`` the model has no backbone and runs only through ``forward_features``.
        preset: ``movi_c``, ``movi_e`` or ``ytvis2021``: loss weights, windows, top-k, SlotCurri's curriculum
            steps, SSync's merge threshold and schedule, and the backbone name.
        method: ``srl``, ``slotcontrast``, ``slotcurri``, ``ssync`` or ``auto`` (SRL when
            ``projector.*``/``projector2.*`` are present, else SlotContrast: SlotCurri and SSync checkpoints use
            SlotContrast's key names, so name them).

    Raises:
        KeyError: listing official keys with no counterpart and parameters the state dict does not provide.
    """
    if method == "auto":
        method = detect_method(state_dict)
    kwargs = method_kwargs(method, preset)
    architecture = infer_architecture(state_dict)
    input_size = math.isqrt(int(architecture["num_patches"])) * patch_size(method, preset)
    backbone = _build_backbone(state_dict, method, preset, input_size)
    model_class = MODEL_CLASSES[method]
    model = model_class(backbone=backbone, input_size=input_size, **architecture, **kwargs)

    converted, unknown = convert_official_state_dict(state_dict)
    expected = model.state_dict()
    converted.update({key: expected[key] for key in STATE_NOT_IN_OFFICIAL if key in expected})
    differences = state_dict_differences(expected, converted)
    if unknown or differences:
        raise KeyError(
            f"official state dict does not match a {model_class.__name__} (preset '{preset}'; official names): "
            + differences.describe(lambda key: ours_to_official_key(key) or key, unknown=sorted(unknown))
        )
    model.load_state_dict(converted, strict=True)
    return model


def official_state_dict_from_model(model: SRLModel | SlotContrastModel | SlotCurriModel) -> dict[str, torch.Tensor]:
    """Our model's weights in the official key layout (inverse of :func:`model_from_official_state_dict`;
    state the official checkpoints do not store is left out)."""
    return to_official_state_dict(
        {key: value for key, value in model.state_dict().items() if key not in STATE_NOT_IN_OFFICIAL}
    )

