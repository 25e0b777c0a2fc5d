"""``ocl_train`` checkpoints that every srl-plugin front door reads (``srl-eval``, ``srl-infer``, ``load_model``).

:class:`PluginCheckpointFields` is a Lightning callback (``experiment.callbacks.srl_plugin_fields`` in the
plugin's OCL experiments) that adds the fields of the plugin's checkpoint format
(:mod:`srl_plugin.runtime.checkpoint`) to every checkpoint OCL writes: the run's config in the standalone layout
(:func:`srl_plugin.ocl.experiments.standalone_run_config` of the run's saved ``config/config.yaml``) under
``hyper_parameters.config``, and ``model_prefix: models.``: the method's parts are OCL's model parts, whose
names are the attribute names of the standalone model. OCL ignores both when it loads the checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from srl_plugin.ocl.experiments import standalone_run_config
from srl_plugin.runtime import MODEL_PREFIX_RECORD

OCL_MODEL_PREFIX = "models."


class PluginCheckpointFields(pytorch_lightning.Callback):
    """Adds ``hyper_parameters.config`` and ``model_prefix`` to OCL's checkpoints.

    Args:
        saved_config: the run's saved OCL config; ``None``: the one of the running ``ocl_train``
            (``<hydra.runtime.output_dir>/<hydra.output_subdir>/config.yaml``).
    """

    def __init__(self, saved_config: str | None = None) -> None:
        self.saved_config = None if saved_config is None else Path(saved_config)
        self._config: dict[str, Any] | None = None

    def _saved_config(self) -> Path:
        if self.saved_config is not None:
            return self.saved_config
        if not HydraConfig.initialized() or HydraConfig.get().output_subdir is None:
            raise RuntimeError("PluginCheckpointFields needs saved_config outside an ocl_train run that saves its config")
        hydra = HydraConfig.get()
        return Path(hydra.runtime.output_dir) / str(hydra.output_subdir) / "config.yaml"

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Adds the fields in place (Lightning calls this for every checkpoint it writes)."""
        if self._config is None:
            self._config = standalone_run_config(OmegaConf.load(self._saved_config()))
        checkpoint.setdefault("hyper_parameters", {})["config"] = self._config
        checkpoint[MODEL_PREFIX_RECORD] = OCL_MODEL_PREFIX
