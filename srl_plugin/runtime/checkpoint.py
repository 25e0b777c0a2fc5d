"""The checkpoint format of this package and loading a model from it (every front door reads it here).

Format (written by ``srl-train`` and ``srl-import-checkpoint``): a Lightning checkpoint dict with
- ``state_dict``: ``model.<param>`` for the whole method model; the frozen backbone (``model.backbone.*``) is
  left out when the config can rebuild it (pretrained timm weights or ``weights_path``);
- ``frozen_backbone`` (only when the backbone was left out): ``{"model_name", "weights_sha256"}``, checked
  against the rebuilt backbone when the checkpoint is loaded or resumed;
- ``hyper_parameters``: ``{"config": <resolved experiment config as a plain dict>}`` (self-contained);
- ``global_step``: optimizer steps done;
- ``model_prefix`` (optional, default ``model.``): the prefix of the method model's weights in ``state_dict``;
  ``ocl_train`` checkpoints of the plugin's experiments carry ``models.method.model.`` and the config
  (``srl_plugin.ocl.checkpoints``), so every front door reads them too.
A run directory keeps them in ``<output_dir>/checkpoints/``: the newest ``checkpoint.keep_last`` of the
``step_<N>.ckpt`` files and ``last.ckpt`` (the newest); an ``ocl_train`` run directory keeps them in
``lightning_logs/version_<V>/checkpoints/``. Weights holding NaN or Inf are never written, and
loading refuses them.
"""
from __future__ import annotations

import errno
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import lightning
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from torch import nn

from srl_plugin.atomic import atomic_path, deferred_signals
from srl_plugin.models.backbone import weights_sha256
from srl_plugin.models.state import non_finite_tensors, state_dict_differences
from srl_plugin.runtime.build import build_model

CHECKPOINT_SUBDIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
MODEL_PREFIX = "model."
BACKBONE_PREFIX = "backbone."
BACKBONE_RECORD = "frozen_backbone"
MODEL_PREFIX_RECORD = "model_prefix"
OCL_CHECKPOINTS = "lightning_logs/version_*/checkpoints"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class CheckpointError(ValueError):
    """A checkpoint cannot be written, read or used; the message names the file, the cause and the fix."""


class BackboneMismatchError(ValueError):
    """The backbone rebuilt from a checkpoint's config is not the one the checkpoint was trained with."""


def torch_load_reason(error: BaseException) -> str:
    """The informative line of a ``torch.load`` failure (without torch's advice to unpickle untrusted data)."""
    text = str(error).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _os_error_in_chain(error: BaseException) -> OSError | None:
    """The first ``OSError`` among ``error``, its causes and contexts (torch wraps write errors)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def write_failure(target: Path, error: BaseException) -> CheckpointError:
    """One clear message for a failed checkpoint write: a full disk (with the free space left) or the OS error."""
    os_error = _os_error_in_chain(error)
    if os_error is not None and os_error.errno in DISK_FULL_ERRNOS:
        free = shutil.disk_usage(target.parent).free / 2**20
        return CheckpointError(
            f"no space left on the device to write checkpoint {target} ({free:.0f} MiB free in {target.parent}); "
            "free disk space or set output_dir to a disk with room, then rerun the same command to resume. "
            "Earlier checkpoints are intact."
        )
    reason = os_error if os_error is not None else error
    return CheckpointError(
        f"could not write checkpoint {target} ({type(reason).__name__}: {reason}); check that the folder is "
        "writable and has room, or set output_dir elsewhere. Earlier checkpoints are intact."
    )


def _ocl_last_checkpoint(run_dir: Path) -> Path | None:
    """``lightning_logs/version_<V>/checkpoints/last.ckpt`` of an ``ocl_train`` run (highest ``V``), if any."""
    found = [path / LAST_CHECKPOINT for path in run_dir.glob(OCL_CHECKPOINTS) if (path / LAST_CHECKPOINT).is_file()]
    return max(found, key=lambda path: int(path.parent.parent.name.removeprefix("version_")), default=None)


def checkpoint_path(path_or_run_dir: str | Path) -> Path:
    """The checkpoint file of a run directory (``checkpoints/last.ckpt``, or ``ocl_train``'s
    ``lightning_logs/version_<V>/checkpoints/last.ckpt``) or the given ``.ckpt`` file."""
    path = Path(path_or_run_dir).expanduser()
    if path.is_dir():
        candidate = path / CHECKPOINT_SUBDIR / LAST_CHECKPOINT
        if not candidate.is_file():
            candidate = _ocl_last_checkpoint(path)
        if candidate is None:
            raise FileNotFoundError(
                f"run directory {path} has no {CHECKPOINT_SUBDIR}/{LAST_CHECKPOINT} (srl-train) or "
                f"{OCL_CHECKPOINTS}/{LAST_CHECKPOINT} (ocl_train); train into it with "
                f"`srl-train output_dir={path}` or pass a .ckpt file"
            )
        return candidate
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file or run directory at {path}")
    return path


def read_checkpoint(path_or_run_dir: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """The checkpoint dict, checked to be in this package's format (see the module docstring).

    ``mmap``: map the tensors from the file instead of reading them (cheap checks of large checkpoints).
    Raises :class:`CheckpointError` for an unreadable file or another format.
    """
    path = checkpoint_path(path_or_run_dir)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({torch_load_reason(error)}); it is corrupted, truncated "
            "(e.g. an interrupted copy) or not a checkpoint"
        ) from error
    is_dict = isinstance(checkpoint, dict)
    config = (checkpoint.get("hyper_parameters") or {}).get("config") if is_dict else None
    state_dict = checkpoint.get("state_dict") if is_dict else None
    prefix = checkpoint.get(MODEL_PREFIX_RECORD, MODEL_PREFIX) if is_dict else MODEL_PREFIX
    if not isinstance(config, dict) or not isinstance(state_dict, dict) or not any(
        key.startswith(prefix) for key in state_dict
    ):
        raise CheckpointError(
            f"{path} is not an srl-plugin checkpoint: it needs 'state_dict' with '{prefix}*' weights and "
            "'hyper_parameters': {'config': ...}. Train with srl-train (or ocl_train +experiment=<method>/<dataset> "
            "of this plugin) or convert an official checkpoint with srl-import-checkpoint"
        )
    return checkpoint


def check_finite(checkpoint: Mapping[str, Any], path: str | Path) -> None:
    """Raises :class:`CheckpointError` when the checkpoint's weights hold NaN or Inf."""
    non_finite = non_finite_tensors(checkpoint["state_dict"])
    if non_finite:
        raise CheckpointError(
            f"{path} holds non-finite weights (NaN or Inf in {len(non_finite)} tensor(s): "
            f"{', '.join(non_finite[:5])}); it was written by a diverged run and cannot be used. Take an "
            "earlier step_<N>.ckpt of that run, or retrain with a lower optimizer.lr"
        )


def model_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The method model's weights (``model.`` prefix, or the checkpoint's ``model_prefix``, removed)."""
    prefix = checkpoint.get(MODEL_PREFIX_RECORD, MODEL_PREFIX)
    return {key[len(prefix) :]: value for key, value in checkpoint["state_dict"].items() if key.startswith(prefix)}


def checkpoint_dict(model: nn.Module, config: Mapping[str, Any], global_step: int = 0) -> dict[str, Any]:
    """The checkpoint layout (module docstring) for ``model`` and its resolved ``config``."""
    return {
        "state_dict": {f"{MODEL_PREFIX}{key}": value.detach().cpu() for key, value in model.state_dict().items()},
        "hyper_parameters": {"config": dict(config)},
        "global_step": int(global_step),
        "pytorch-lightning_version": lightning.__version__,
    }


def backbone_record(model: nn.Module, config: Mapping[str, Any] | DictConfig) -> dict[str, str] | None:
    """``{"model_name", "weights_sha256"}`` of the model's frozen backbone when the config rebuilds the same
    weights (pretrained timm weights or ``weights_path``), else ``None``: a randomly initialised backbone
    cannot be rebuilt, so its weights stay in the checkpoint."""
    backbone = getattr(model, "backbone", None)
    node = OmegaConf.select(OmegaConf.create(config), "model.backbone", default=None)
    if backbone is None or node is None or not (node.get("pretrained") or node.get("weights_path")):
        return None
    return {"model_name": backbone.model_name, "weights_sha256": weights_sha256(backbone.model)}


def drop_backbone_weights(checkpoint: dict[str, Any], record: Mapping[str, str]) -> None:
    """Removes ``model.backbone.*`` from ``checkpoint["state_dict"]`` and stores ``record`` in its place."""
    prefix = MODEL_PREFIX + BACKBONE_PREFIX
    checkpoint["state_dict"] = {key: value for key, value in checkpoint["state_dict"].items() if not key.startswith(prefix)}
    checkpoint[BACKBONE_RECORD] = dict(record)


def check_backbone(record: Mapping[str, str], backbone: nn.Module, source: str | Path) -> None:
    """Raises :class:`BackboneMismatchError` unless ``backbone`` has the name and weights hash in ``record``."""
    found = {"model_name": backbone.model_name, "weights_sha256": weights_sha256(backbone.model)}
    if found != dict(record):
        raise BackboneMismatchError(
            f"{source} was trained on the frozen backbone '{record['model_name']}' with weights sha256 "
            f"{record['weights_sha256'][:16]}..., but its config now builds '{found['model_name']}' with weights "
            f"sha256 {found['weights_sha256'][:16]}...; checkpoints leave the backbone out and rebuild it, so "
            "the same weights must be available: set model.backbone.weights_path to the file used in training "
            "(or restore that timm / Hugging Face cache)"
        )


def restore_backbone_weights(checkpoint: dict[str, Any], model: nn.Module, source: str | Path) -> None:
    """Puts the (checked) weights of ``model.backbone`` back into a checkpoint that left them out, so that the
    checkpoint loads strictly into a model that holds the backbone (resuming training)."""
    record = checkpoint.get(BACKBONE_RECORD)
    if record is None:
        return
    if getattr(model, "backbone", None) is None:
        raise BackboneMismatchError(f"{source} expects the frozen backbone '{record['model_name']}', but the model has none")
    check_backbone(record, model.backbone, source)
    backbone_state = model.backbone.state_dict()
    checkpoint["state_dict"].update({f"{MODEL_PREFIX}{BACKBONE_PREFIX}{key}": value for key, value in backbone_state.items()})


def save_checkpoint(checkpoint: Mapping[str, Any], path: str | Path) -> Path:
    """Writes ``checkpoint`` to ``path`` atomically (fsynced temporary file renamed over it).

    SIGINT / SIGTERM wait until the write is done (:func:`srl_plugin.atomic.deferred_signals`). Raises
    :class:`CheckpointError` (and leaves ``path`` as it was) when the weights hold NaN or Inf, and when the write
    fails, e.g. on a full disk.
    """
    target = Path(path)
    non_finite = non_finite_tensors(checkpoint.get("state_dict", {}))
    if non_finite:
        raise CheckpointError(
            f"refusing to write checkpoint {target}: {len(non_finite)} weight tensor(s) hold NaN or Inf "
            f"({', '.join(non_finite[:5])}); the training diverged. Earlier checkpoints are kept; lower "
            "optimizer.lr or trainer.gradient_clip_val"
        )
    try:
        with deferred_signals(), atomic_path(target, fsync=True) as temporary, open(temporary, "wb") as file:
            torch.save(dict(checkpoint), file)
    except (OSError, RuntimeError) as error:
        raise write_failure(target, error) from error
    return target


def load_model(
    path_or_run_dir: str | Path,
    backbone: Literal["auto", "none"] = "auto",
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, DictConfig]:
    """``(model in eval mode, config)`` from a run directory or a ``.ckpt`` file.

    ``backbone="auto"``: when the checkpoint holds the backbone weights (``model.backbone.*``) the backbone is
    built randomly initialised and every weight is loaded strictly; otherwise the backbone is built as the
    config says (pretrained weights from the local cache or ``weights_path``) and all other weights must match.
    ``backbone="none"``: the model is built without its frozen ViT (it then runs through ``forward_features``
    on precomputed features), which works even when neither the checkpoint nor timm's cache has its weights.

    Raises:
        FileNotFoundError: no such file / run directory, or backbone weights in neither the checkpoint nor
            timm's cache.
        CheckpointError (a ValueError): not an srl-plugin checkpoint (e.g. an official one: convert it with
            srl-import-checkpoint), non-finite weights, or weights that do not match the config's model (every
            missing, unexpected and reshaped key listed).
        BackboneMismatchError: the backbone the config rebuilds has another name or weights than the one the
            checkpoint was trained with.
    """
    if backbone not in ("auto", "none"):
        raise ValueError(f"backbone must be 'auto' or 'none', got {backbone!r}")
    path = checkpoint_path(path_or_run_dir)
    checkpoint = read_checkpoint(path, map_location)
    check_finite(checkpoint, path)
    config = OmegaConf.create(checkpoint["hyper_parameters"]["config"])
    state_dict = model_state_dict(checkpoint)
    has_backbone = any(key.startswith(BACKBONE_PREFIX) for key in state_dict)
    if backbone == "none":
        state_dict = {key: value for key, value in state_dict.items() if not key.startswith(BACKBONE_PREFIX)}
        mode = "none"
    else:
        mode = "random" if has_backbone else "config"
    try:
        model = build_model(config, backbone=mode)
    except InstantiationException as error:
        missing_weights = root_cause(error)
        if not isinstance(missing_weights, FileNotFoundError):
            raise
        raise FileNotFoundError(
            f"{path_or_run_dir} holds no backbone weights, so the model needs timm's pretrained ViT, which is not "
            "in the local cache; running on video is impossible until it is (features-only use works through "
            f"load_model(path, backbone='none')). {missing_weights}"
        ) from error
    record = checkpoint.get(BACKBONE_RECORD)
    if mode == "config" and record is not None:
        check_backbone(record, model.backbone, path)
    differences = state_dict_differences(
        model.state_dict(), state_dict, optional=(BACKBONE_PREFIX,) if mode == "config" else ()
    )
    if differences:
        raise CheckpointError(
            f"checkpoint {path} does not match the model its config builds: {differences.describe()}. The "
            "checkpoint was written by another version or edited; retrain, or re-import the official checkpoint"
        )
    model.load_state_dict(state_dict, strict=mode != "config")
    return model.to(map_location).eval(), config


def root_cause(error: BaseException) -> BaseException:
    """The innermost ``__cause__`` of a chain (Hydra wraps errors of nested instantiations)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error
