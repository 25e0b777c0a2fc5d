"""Convert an official SRL / SlotContrast / SSync / VideoSAUR Lightning checkpoint into an srl-plugin checkpoint.

The result is what ``srl-train`` writes (docs/ARCHITECTURE.md, checkpoint contract): ``state_dict`` with
``model.<param>`` keys, ``hyper_parameters.config`` = the composed ``experiment=<method>/<preset>`` config
(plain dict) whose ``model`` node carries the architecture read from the tensor shapes, ``global_step``
and ``pytorch-lightning_version``. ``srl-eval`` and ``srl-infer`` load it. The model and config come from
:func:`srl_plugin.interop.build.build_from_official` (one adapter per official layout).
"""
from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from srl_plugin.interop.build import build_from_official
from srl_plugin.runtime import (
    CHECKPOINT_SUBDIR,
    LAST_CHECKPOINT,
    checkpoint_dict,
    save_checkpoint,
    torch_load_reason,
)


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
