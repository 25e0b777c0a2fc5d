"""Convert an official SRL / SlotContrast / SSync / VideoSAUR Lightning checkpoint into an srl-plugin checkpoint.

The result is what ``srl-train`` writes (docs/ARCHITECTURE.md, checkpoint contract): ``state_dict`` with
``model.<param>`` keys, ``hyper_parameters.config`` = the composed ``experiment=<method>/<preset>`` config
(plain dict) whose ``model`` node carries the architecture read from the tensor shapes, ``global_step``
and ``pytorch-lightning_version``. ``srl-eval`` and ``srl-infer`` load it.
"""
from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from srl_plugin.interop.official import detect_method, infer_architecture, model_from_official_state_dict
from srl_plugin.interop.presets import backbone_name
from srl_plugin.interop.videosaur import (
    is_videosaur_state_dict,
    videosaur_backbone_family,
    videosaur_model_from_official_state_dict,
    videosaur_model_kwargs,
)
from srl_plugin.runtime import (
    CHECKPOINT_SUBDIR,
    LAST_CHECKPOINT,
    checkpoint_dict,
    compose_experiment,
    save_checkpoint,
    torch_load_reason,
)

METHODS = ("srl", "slotcontrast", "videosaur", "ssync", "slotcurri")
PRESETS = ("movi_c", "movi_e", "ytvis2021")
# Sizes a preset fixes; a checkpoint that disagrees was trained for another preset (docs/METHODS.md §2.1, §3.1, §4.1).
PRESET_CHECKED_FIELDS = ("feature_dim", "num_slots", "slot_dim")


def read_official_state_dict(path: str | Path, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], int]:
    """``(state_dict, global_step)`` of an official Lightning ``.ckpt``.

    The file is read with ``weights_only=True`` (tensors and plain containers only) unless ``trust_pickle``,
    which unpickles arbitrary objects: only for files from a trusted source.

    Raises:
        FileNotFoundError / ValueError: missing file, not a Lightning checkpoint, or already an srl-plugin one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as error:
        if isinstance(error, pickle.UnpicklingError) and "Unsupported global" in str(error):
            raise ValueError(
                f"{path} holds objects beyond tensors and plain containers, which are not loaded by default "
                f"({error}); if you trust the file, pass --trust-pickle (trust_pickle=True)"
            ) from error
        raise ValueError(
            f"{path} could not be read as a PyTorch checkpoint ({torch_load_reason(error)}): it is corrupted or not "
            "a checkpoint; pass an official SRL / SlotContrast / VideoSAUR Lightning .ckpt"
        ) from error
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise ValueError(f"{path} is not a Lightning checkpoint: it has no 'state_dict' entry")
    state_dict = dict(checkpoint["state_dict"])
    if any(key.startswith("model.") for key in state_dict):
        raise ValueError(
            f"{path} is already an srl-plugin checkpoint ('model.*' keys); use it directly with srl-eval / srl-infer"
        )
    return state_dict, int(checkpoint.get("global_step", 0))


def resolve_method(state_dict: Mapping[str, torch.Tensor], method: str) -> str:
    """``method`` itself, or (``auto``) what the keys say: VideoSAUR, SRL (projectors) or SlotContrast (SSync
    and SlotCurri checkpoints carry SlotContrast's keys: ask for ``ssync`` / ``slotcurri`` by name)."""
    if method == "auto":
        return "videosaur" if is_videosaur_state_dict(state_dict) else detect_method(state_dict)
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; choose one of {', '.join(METHODS)} or auto")
    return method


def _model_overrides(
    state_dict: Mapping[str, torch.Tensor], method: str, preset: str, model: nn.Module
) -> dict[str, Any]:
    """Constructor arguments of the built model that the config's ``model`` node must carry."""
    if method == "videosaur":
        kwargs = videosaur_model_kwargs(state_dict, preset)
    else:
        kwargs = {**infer_architecture(state_dict), "input_size": model.input_size}
    return {key: list(value) if isinstance(value, tuple) else value for key, value in kwargs.items()}


def _backbone_overrides(
    state_dict: Mapping[str, torch.Tensor], method: str, preset: str, model: nn.Module
) -> dict[str, Any]:
    """The config's ``model.backbone`` fields: name and input size, plus the ViT shape when its weights are included.

    With backbone weights in the checkpoint the backbone is built at random and then overwritten by them
    (``pretrained: false``, ``allow_random_init: true``); without them it comes from the timm cache.
    """
    if method == "videosaur":
        model_name = videosaur_backbone_family(state_dict, preset)[0]
    else:
        model_name = backbone_name(method, preset)
    overrides: dict[str, Any] = {
        "model_name": model_name, "input_size": model.input_size, "return_keys": method == "videosaur"
    }
    if model.backbone is not None:
        vit = model.backbone.model
        overrides.update(
            pretrained=False,
            weights_path=None,
            allow_random_init=True,
            model_kwargs={
                "img_size": int(vit.patch_embed.img_size[0]),
                "depth": len(vit.blocks),
                "embed_dim": int(vit.embed_dim),
                "num_heads": int(vit.blocks[0].attn.num_heads),
            },
        )
    return overrides


def experiment_config(method: str, preset: str) -> DictConfig:
    """The composed (unresolved) ``experiment=<method>/<preset>`` config."""
    try:
        return compose_experiment(f"{method}/{preset}")
    except Exception as error:
        raise ValueError(
            f"no usable experiment config '{method}/{preset}' ships with srl_plugin ({error}); "
            f"check --method/--preset (methods: {', '.join(METHODS)}; presets: {', '.join(PRESETS)})"
        ) from error


def _check_preset(config: DictConfig, overrides: dict[str, Any], method: str, preset: str) -> None:
    """Raises when the checkpoint's slot count / widths differ from what the preset's config fixes."""
    mismatches = [
        f"{field}: checkpoint {overrides[field]}, preset {config['model'][field]}"
        for field in PRESET_CHECKED_FIELDS
        if field in config["model"] and config["model"][field] != overrides[field]
    ]
    if mismatches:
        others = [name for name in PRESETS if name != preset]
        raise ValueError(
            f"this {method} checkpoint does not match preset '{preset}' ({'; '.join(mismatches)}); "
            f"pass the preset it was trained with (--preset {' or '.join(others)})"
        )


def build_from_official(
    state_dict: Mapping[str, torch.Tensor], method: str = "auto", preset: str = "movi_c"
) -> tuple[nn.Module, dict[str, Any]]:
    """``(model, config)``: our model with every official weight loaded, and its resolved experiment config.

    Raises:
        KeyError: unknown or missing official keys (all listed).
        ValueError: unknown method/preset, or a checkpoint trained for another preset.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    method = resolve_method(state_dict, method)
    composed = experiment_config(method, preset)
    if method == "videosaur":
        model = videosaur_model_from_official_state_dict(state_dict, preset=preset)
    else:
        model = model_from_official_state_dict(state_dict, preset=preset, method=method)
    overrides = _model_overrides(state_dict, method, preset, model)
    _check_preset(composed, overrides, method, preset)
    overrides.update({f"backbone.{key}": value for key, value in _backbone_overrides(state_dict, method, preset, model).items()})
    OmegaConf.set_struct(composed, False)
    for key, value in overrides.items():
        OmegaConf.update(composed, f"model.{key}", value, merge=False)
    OmegaConf.update(composed, "data.input_size", model.input_size, merge=False)
    return model, OmegaConf.to_container(composed, resolve=True, throw_on_missing=False)


def import_official_checkpoint(
    source: str | Path,
    destination: str | Path,
    method: str = "auto",
    preset: str = "movi_c",
    trust_pickle: bool = False,
) -> Path:
    """Converts the official checkpoint ``source`` and writes ours to ``destination`` (parents created).

    ``destination`` is a ``.ckpt`` file, or else a run directory: the checkpoint then goes to
    ``<destination>/checkpoints/last.ckpt`` (where ``srl-train`` keeps it, so ``srl-eval`` / ``srl-infer``
    take the directory) and the config's ``output_dir`` names that directory.
    ``trust_pickle``: see :func:`read_official_state_dict`. Returns the written path. See
    :func:`build_from_official` for the errors.
    """
    state_dict, global_step = read_official_state_dict(source, trust_pickle)
    model, config = build_from_official(state_dict, method=method, preset=preset)
    destination = Path(destination)
    if destination.suffix != ".ckpt":
        config["output_dir"] = str(destination)
        destination = destination / CHECKPOINT_SUBDIR / LAST_CHECKPOINT
    return save_checkpoint(checkpoint_dict(model, config, global_step), destination)
