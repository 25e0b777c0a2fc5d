"""Checkpoints written by ``ocl_train`` for the plugin's experiments (OCL's run layout, the method's parts as OCL
model parts under ``models.``, ``model_prefix`` recorded) are read by every front door through the runtime."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srl_plugin.runtime import (
    MODEL_PREFIX_RECORD,
    build_model,
    checkpoint_dict,
    checkpoint_path,
    compose_experiment,
    load_model,
    read_checkpoint,
    resolved_container,
)

OCL_PREFIX = "models."


def ocl_checkpoint(model: torch.nn.Module, config: dict, step: int) -> dict:
    """``model``'s checkpoint as OCL's ``CombinedModel`` + ``PluginCheckpointFields`` write it."""
    plugin = checkpoint_dict(model, config, global_step=step)
    state = {OCL_PREFIX + key.removeprefix("model."): value for key, value in plugin["state_dict"].items()}
    state["losses.other.weight"] = torch.zeros(1)  # outside the model parts
    return {**plugin, "state_dict": state, MODEL_PREFIX_RECORD: OCL_PREFIX}


def test_ocl_run_directories_and_weight_prefix_are_read(tmp_path: Path) -> None:
    config = resolved_container(compose_experiment("videosaur/synthetic"))
    model = build_model(config, backbone="random")
    run = tmp_path / "ocl_run"
    for version, step in ((1, 3), (10, 7)):  # the highest version is the newest run
        folder = run / "lightning_logs" / f"version_{version}" / "checkpoints"
        folder.mkdir(parents=True)
        torch.save(ocl_checkpoint(model, config, step), folder / "last.ckpt")
    assert checkpoint_path(run) == run / "lightning_logs" / "version_10" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(run)["global_step"] == 7
    loaded, loaded_config = load_model(run)
    assert loaded_config.method == "videosaur" and not loaded.training
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, msg=name)


def test_checkpoints_without_the_plugin_fields_name_both_front_doors(tmp_path: Path) -> None:
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {OCL_PREFIX + "decoder.weight": torch.zeros(1)}, "global_step": 1}, path)
    with pytest.raises(ValueError, match="ocl_train"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="lightning_logs"):
        checkpoint_path(tmp_path)
