"""The official VideoSAUR checkpoint layout (``martius-lab/videosaur``) and its mapping onto :class:`VideoSAURModel`.

Key layout of an official VideoSAUR Lightning ``state_dict`` (docs/METHODS.md §2, §1.6-§1.9):

- ``initializer.mean`` / ``initializer.log_std`` ``(1, 1, D)``: the RandomInit parameters (the slot count
  is not stored; it comes from the preset's config).
- ``encoder.module.backbone.model.*`` (optional): the frozen timm ViT;
  ``encoder.module.output_transform.layers.{0,1,3}.*``: the two-layer MLP.
- ``processor.module.corrector.*``: slot attention without residual MLP;
  ``processor.module.predictor.blocks.{i}.*``: the transformer predictor.
- ``decoder.module.*``: SlotMixer with ``pos_emb`` ``(1, N, D)``, ``allocator.blocks.{i}.*`` (whose
  fused ``self_attn.qkv`` holds the cross-attention's query rows then key/value rows), ``norm_memory``,
  ``norm_q``, ``norm_k``, ``to_q``, ``to_k``, ``renderer.layers.{j}.*`` and ``output_transform.*``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from srl_plugin.interop.backbone import BACKBONE_PREFIX, backbone_patch_size
from srl_plugin.interop.keymap import ENCODER_MLP_PAIRS, PROCESSOR_PAIRS, KeyMap
from srl_plugin.interop.layout import OfficialLayout, StateDict
from srl_plugin.interop.presets import backbone_config, backbone_patch, preset_model


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


def official_videosaur_state_dict_from_model(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our :class:`VideoSAURModel`'s weights in the official layout."""
    return videosaur_state_dict_to_official(model.state_dict())


def videosaur_state_dict_to_official(ours: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`convert_videosaur_state_dict`: a state dict of ours in the official layout."""
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


def _require(state_dict: StateDict, key: str) -> torch.Tensor:
    if key not in state_dict:
        raise KeyError(f"'{key}' missing from the state dict; is this an official VideoSAUR checkpoint?")
    return state_dict[key]


def _indices(state_dict: StateDict, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in state_dict if (m := regex.match(key))})


def infer_videosaur_architecture(state_dict: StateDict) -> dict[str, Any]:
    """:class:`VideoSAURModel` hyperparameters read from tensor shapes: ``feature_dim``, ``slot_dim``,
    ``num_patches``, ``mlp_hidden_dim``, ``allocator_blocks``, ``renderer_dims``, ``predictor_blocks``,
    ``reconstruct_features`` (the slot count is not stored)."""
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


class VideoSAURLayout(OfficialLayout):
    """Random slot init, SlotMixer decoder: VideoSAUR checkpoints.

    VideoSAUR released models on three backbones (configs/backbone/ names below). A checkpoint on another backbone
    than its preset's experiment selects is imported with that backbone (told by its patch size, or without
    backbone weights by its patch count); the YT-VIS one on DINOv2 also takes the official ``ytvis_dinov2``
    settings.
    """

    methods = ("videosaur",)
    released_backbones = ("dino_vitb8_224", "dino_vitb16_224", "dinov2_vitb14_518")
    # (preset, backbone) -> what configs/videosaur/ytvis_dinov2 of martius-lab/videosaur sets beside
    # configs/videosaur/ytvis (docs/METHODS.md §2.1).
    variant_settings: dict[tuple[str, str], tuple[str, ...]] = {
        ("ytvis2021", "dinov2_vitb14_518"): ("model.similarity_temperature=0.15", "data.mask_size=224"),
    }

    def matches(self, state_dict: StateDict) -> bool:
        return is_videosaur_state_dict(state_dict)

    def detect_method(self, state_dict: StateDict) -> str:
        return "videosaur"

    def shape_hyperparameters(self, state_dict: StateDict) -> dict[str, Any]:
        return infer_videosaur_architecture(state_dict)

    def variant_overrides(self, state_dict: StateDict, preset: str) -> list[str]:
        patch = backbone_patch_size(state_dict)
        if patch is not None:
            chosen = [name for name in self.released_backbones if backbone_patch(name) == patch]
            if not chosen:
                patches = sorted(backbone_patch(name) for name in self.released_backbones)
                raise ValueError(f"VideoSAUR backbone with patch size {patch} is not one of the released ones {patches}")
        else:
            num_patches = int(_require(state_dict, "decoder.module.pos_emb").shape[-2])
            chosen = [name for name in self.released_backbones if backbone_config(name)["num_patches"] == num_patches]
        preset_backbone = preset_model("videosaur", preset)["backbone"]["model_name"]
        if not chosen or backbone_config(chosen[0])["backbone"]["model_name"] == preset_backbone:
            return []
        return [f"backbone={chosen[0]}", *self.variant_settings.get((preset, chosen[0]), ())]

    def to_ours(self, state_dict: StateDict) -> tuple[dict[str, torch.Tensor], list[str]]:
        return convert_videosaur_state_dict(state_dict)

    def to_official(self, state_dict: StateDict) -> dict[str, torch.Tensor]:
        return videosaur_state_dict_to_official(state_dict)

    def official_key(self, key: str) -> str:
        return VIDEOSAUR_KEYMAP.to_official(key) or key
