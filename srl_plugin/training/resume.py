"""Whether a rerun into an existing output folder can continue its checkpoint: same model structure."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import nn

from srl_plugin.models.state import state_dict_differences
from srl_plugin.runtime import BACKBONE_PREFIX, model_state_dict, read_checkpoint

STRUCTURE_SECTIONS = ("method", "model")
SHOWN_KEYS = 8


class ModelMismatchError(ValueError):
    """A rerun's config builds a model whose weights do not fit the output folder's checkpoint."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": leaf}`` (lists are leaves)."""
    if not isinstance(tree, Mapping):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], sections: tuple[str, ...]) -> list[str]:
    """``"key: old -> new"`` for every leaf under ``sections`` that differs (absent shown as ``<unset>``), the
    ``method`` and ``_target_`` keys first."""
    before = flatten({section: old.get(section) for section in sections})
    after = flatten({section: new.get(section) for section in sections})
    keys = sorted(before.keys() | after.keys(), key=lambda key: (key != "method" and not key.endswith("_target_"), key))
    return [
        f"{key}: {before.get(key, '<unset>')} -> {after.get(key, '<unset>')}"
        for key in keys
        if before.get(key, "<unset>") != after.get(key, "<unset>")
    ]


def check_same_model(checkpoint: Path, config: Mapping[str, Any], model: nn.Module) -> None:
    """Raises :class:`ModelMismatchError` when ``model`` (built from ``config``) cannot take the weights of
    ``checkpoint``, naming the config keys under ``method`` / ``model`` that differ from the checkpoint's."""
    stored = read_checkpoint(checkpoint, mmap=True)
    differences = state_dict_differences(model.state_dict(), model_state_dict(stored), optional=(BACKBONE_PREFIX,))
    if not differences:
        return
    changed = config_differences(stored["hyper_parameters"]["config"], config, STRUCTURE_SECTIONS)
    output_dir = checkpoint.parent.parent
    weights = (
        f"{len(differences.missing)} missing, {len(differences.unexpected)} unexpected and "
        f"{len(differences.mismatched)} reshaped weight tensor(s)"
    )
    shown = changed[:SHOWN_KEYS] + ([f"and {len(changed) - SHOWN_KEYS} more"] if len(changed) > SHOWN_KEYS else [])
    keys = "; ".join(shown) if changed else "none (the model code changed since the checkpoint was written)"
    raise ModelMismatchError(
        f"output_dir {output_dir} holds a run of another model structure than this config builds ({weights}); "
        f"config keys that differ from its checkpoint {checkpoint.name}: {keys}. Nothing was written. Rerun "
        f"with the run's own settings to resume it, or choose another output_dir to start a new run"
    )
