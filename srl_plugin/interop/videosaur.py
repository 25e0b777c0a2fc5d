"""Import of official VideoSAUR checkpoints (``martius-lab/videosaur``) into :class:`VideoSAURModel`.

Key layout of an official VideoSAUR Lightning ``state_dict`` (docs/METHODS.md §2, §1.6-§1.9):

- ``initializer.mean`` / ``initializer.log_std`` ``(1, 1, D)``: the RandomInit parameters (the slot count
  is not stored; it comes from the preset).
- ``encoder.module.backbone.model.*`` (optional): the frozen timm ViT;
  ``encoder.module.output_transform.layers.{0,1,3}.*``: the two-layer MLP.
- ``processor.module.corrector.*``: slot attention without residual MLP;
  ``processor.module.predictor.blocks.{i}.*``: the transformer predictor.
- ``decoder.module.*``: SlotMixer with ``pos_emb`` ``(1, N, D)``, ``allocator.blocks.{i}.*`` (whose
  fused ``self_attn.qkv`` holds the cross-attention's query rows then key/value rows), ``norm_memory``,
  ``norm_q``, ``norm_k``, ``to_q``, ``to_k``, ``renderer.layers.{j}.*`` and ``output_transform.*``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from srl_plugin.interop.backbone import BACKBONE_PREFIX, backbone_from_weights, backbone_patch_size
from srl_plugin.interop.keymap import ENCODER_MLP_PAIRS, PROCESSOR_PAIRS, KeyMap
from srl_plugin.models.state import state_dict_differences
from srl_plugin.models.videosaur import VideoSAURModel


# (official prefix, our prefix); ``{i}`` stands for an integer index. First match wins.
VIDEOSAUR_PREFIX_PAIRS: tuple[tuple[str, str], ...] = (
    (BACKBONE_PREFIX, "backbone.model."),
    *ENCODER_MLP_PAIRS,
    ("initializer.mean", "initializer.mean"),
    ("initializer.log_std", "initializer.log_std"),
    *PROCESSOR_PAIRS,
    ("decoder.module.pos_emb", "decoder.pos_emb"),
    ("decoder.module.norm_memory.", "decoder.norm_memory."),
    ("decoder.module.norm_q.", "decoder.norm_query."),
    ("decoder.module.norm_k.", "decoder.norm_key."),
    ("decoder.module.to_q.", "decoder.to_q."),
    ("decoder.module.to_k.", "decoder.to_k."),
    ("decoder.module.allocator.blocks.{i}.self_attn.out_proj.", "decoder.allocator.{i}.attn.out_proj."),
    ("decoder.module.allocator.blocks.{i}.linear1.", "decoder.allocator.{i}.fc1."),
    ("decoder.module.allocator.blocks.{i}.linear2.", "decoder.allocator.{i}.fc2."),
    ("decoder.module.allocator.blocks.{i}.norm1.", "decoder.allocator.{i}.norm1."),
    ("decoder.module.allocator.blocks.{i}.norm2.", "decoder.allocator.{i}.norm2."),
    ("decoder.module.renderer.layers.", "decoder.renderer."),
    ("decoder.module.output_transform.", "decoder.out."),
)

# Official tensors with leading singleton axes that our parameters do not have.
LEADING_ONES: dict[str, int] = {"initializer.mean": 2, "initializer.log_std": 2, "decoder.module.pos_emb": 1}
VIDEOSAUR_KEYMAP = KeyMap(VIDEOSAUR_PREFIX_PAIRS, LEADING_ONES)

# The allocator's fused official cross-attention projection: rows [0, D) are queries, [D, 3D) keys/values.
_FUSED_QKV = re.compile(r"^decoder\.module\.allocator\.blocks\.(\d+)\.self_attn\.qkv\.(weight|bias)$")
_SPLIT_Q = re.compile(r"^decoder\.allocator\.(\d+)\.attn\.q\.(weight|bias)$")

# Preset settings a VideoSAUR state dict cannot tell (docs/METHODS.md §2.1).
VIDEOSAUR_PRESETS: dict[str, dict[str, Any]] = {
    "movi_c": {"num_slots": 11},
    "movi_e": {"num_slots": 15},
    "ytvis2021": {"num_slots": 7},
}
# (timm name, patch size, native input, similarity temperature) per backbone family.
DINO_B8 = ("vit_base_patch8_224.dino", 8, 224, 0.075)
DINO_B16 = ("vit_base_patch16_224.dino", 16, 224, 0.25)
DINOV2_B14 = ("vit_base_patch14_dinov2.lvd142m", 14, 518, 0.15)


def is_videosaur_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when the keys hold a SlotMixer allocator or a RandomInit (VideoSAUR's signatures)."""
    return any(key.startswith(("decoder.module.allocator.", "initializer.mean")) for key in state_dict)


def convert_videosaur_state_dict(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Official VideoSAUR tensors in our layout; returns ``(converted, unknown_official_keys)``."""
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        fused = _FUSED_QKV.match(key)
        if fused:
            index, kind = fused.groups()
            dim = value.shape[0] // 3
            converted[f"decoder.allocator.{index}.attn.q.{kind}"] = value[:dim]
            converted[f"decoder.allocator.{index}.attn.kv.{kind}"] = value[dim:]
            continue
        ours = VIDEOSAUR_KEYMAP.to_ours(key)
        if ours is None:
            unknown.append(key)
            continue
        converted[ours] = VIDEOSAUR_KEYMAP.squeeze(key, value)
    return converted, unknown


def official_videosaur_state_dict_from_model(model: VideoSAURModel) -> dict[str, torch.Tensor]:
    """Inverse of :func:`convert_videosaur_state_dict`: our model's weights in the official layout."""
    ours = model.state_dict()
    official: dict[str, torch.Tensor] = {}
    for key, value in ours.items():
        split = _SPLIT_Q.match(key)
        if split:
            index, kind = split.groups()
            kv = ours[f"decoder.allocator.{index}.attn.kv.{kind}"]
            official[f"decoder.module.allocator.blocks.{index}.self_attn.qkv.{kind}"] = torch.cat([value, kv])
            continue
        if re.match(r"^decoder\.allocator\.\d+\.attn\.kv\.", key):
            continue
        name = VIDEOSAUR_KEYMAP.to_official(key)
        if name is None:
            raise KeyError(f"parameter '{key}' has no official VideoSAUR counterpart")
        official[name] = VIDEOSAUR_KEYMAP.unsqueeze(name, value)
    return official


def _require(state_dict: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state_dict:
        raise KeyError(f"'{key}' missing from the state dict; is this an official VideoSAUR checkpoint?")
    return state_dict[key]


def _indices(state_dict: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in state_dict if (m := regex.match(key))})


def infer_videosaur_architecture(state_dict: Mapping[str, torch.Tensor], preset: str) -> dict[str, Any]:
    """Constructor sizes of :class:`VideoSAURModel` read from tensor shapes (slot count from ``preset``).

    Returns ``feature_dim``, ``num_slots``, ``slot_dim``, ``num_patches``, ``mlp_hidden_dim``,
    ``allocator_blocks``, ``renderer_dims``, ``predictor_blocks``, ``reconstruct_features``.
    """
    if preset not in VIDEOSAUR_PRESETS:
        raise ValueError(f"unknown preset '{preset}'; choose one of {sorted(VIDEOSAUR_PRESETS)}")
    slot_dim = int(_require(state_dict, "initializer.mean").shape[-1])
    feature_dim = int(_require(state_dict, "encoder.module.output_transform.layers.0.weight").shape[0])
    mlp_hidden_dim = int(_require(state_dict, "encoder.module.output_transform.layers.1.weight").shape[0])
    num_patches = int(_require(state_dict, "decoder.module.pos_emb").shape[-2])
    output_dim = int(_require(state_dict, "decoder.module.output_transform.weight").shape[0])
    if output_dim not in (num_patches, num_patches + feature_dim):
        raise ValueError(
            f"the SlotMixer output has {output_dim} channels; expected N = {num_patches} (MOVi) or "
            f"D_f + N = {feature_dim + num_patches} (YT-VIS)"
        )
    renderer = _indices(state_dict, r"^decoder\.module\.renderer\.layers\.(\d+)\.weight$")
    return {
        "feature_dim": feature_dim,
        "num_slots": VIDEOSAUR_PRESETS[preset]["num_slots"],
        "slot_dim": slot_dim,
        "num_patches": num_patches,
        "mlp_hidden_dim": mlp_hidden_dim,
        "allocator_blocks": len(_indices(state_dict, r"^decoder\.module\.allocator\.blocks\.(\d+)\.")),
        "renderer_dims": tuple(
            int(state_dict[f"decoder.module.renderer.layers.{i}.weight"].shape[0]) for i in renderer
        ),
        "predictor_blocks": len(_indices(state_dict, r"^processor\.module\.predictor\.blocks\.(\d+)\.")),
        "reconstruct_features": output_dim == num_patches + feature_dim,
    }


def videosaur_backbone_family(state_dict: Mapping[str, torch.Tensor], preset: str) -> tuple[str, int, int, float]:
    """``(timm name, patch size, native input, similarity temperature)`` of the checkpoint's backbone.

    With backbone weights the patch size decides; without them MOVi means DINO B/8 and YT-VIS means DINO
    B/16, unless the decoder has 1369 positions (DINOv2 B/14 at 518).
    """
    patch_size = backbone_patch_size(state_dict)
    if patch_size is not None:
        families = {8: DINO_B8, 16: DINO_B16, 14: DINOV2_B14}
        if patch_size not in families:
            raise ValueError(
                f"VideoSAUR backbone with patch size {patch_size} is not one of the released ones (8, 14, 16)"
            )
        return families[patch_size]
    if preset.startswith("movi"):
        return DINO_B8
    return DINOV2_B14 if int(state_dict["decoder.module.pos_emb"].shape[-2]) == 37 * 37 else DINO_B16


def videosaur_model_kwargs(state_dict: Mapping[str, torch.Tensor], preset: str) -> dict[str, Any]:
    """Every :class:`VideoSAURModel` keyword argument but ``backbone``, from the shapes and ``preset``."""
    architecture = infer_videosaur_architecture(state_dict, preset)
    _, patch_size, _, temperature = videosaur_backbone_family(state_dict, preset)
    return {
        **architecture,
        "input_size": math.isqrt(architecture["num_patches"]) * patch_size,
        "similarity_temperature": temperature,
    }


def videosaur_model_from_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], preset: str = "movi_c"
) -> VideoSAURModel:
    """Builds our :class:`VideoSAURModel` from an official VideoSAUR ``state_dict`` and loads every weight.

    Raises:
        KeyError: listing official keys with no counterpart and parameters the state dict does not provide.
    """
    kwargs = videosaur_model_kwargs(state_dict, preset)
    model_name = videosaur_backbone_family(state_dict, preset)[0]
    backbone = backbone_from_weights(state_dict, model_name, kwargs["input_size"], return_keys=True)
    model = VideoSAURModel(backbone=backbone, **kwargs)
    converted, unknown = convert_videosaur_state_dict(state_dict)
    differences = state_dict_differences(model.state_dict(), converted)
    if unknown or differences:
        raise KeyError(
            f"official state dict does not match a VideoSAURModel (preset '{preset}'; official names for "
            "unexpected keys, ours for the others): " + differences.describe(unknown=sorted(unknown))
        )
    model.load_state_dict(converted, strict=True)
    return model
