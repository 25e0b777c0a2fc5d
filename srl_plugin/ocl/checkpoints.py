"""``ocl_train`` checkpoints that every srl-plugin front door reads (``srl-eval``, ``srl-infer``, ``load_model``).

:class:`PluginCheckpointFields` is a Lightning callback (``experiment.callbacks.srl_plugin_fields`` in the
plugin's OCL experiments) that adds the fields of the plugin's checkpoint format
(:mod:`srl_plugin.runtime.checkpoint`) to every checkpoint OCL writes: the resolved standalone experiment config
under ``hyper_parameters.config`` and ``model_prefix``, the prefix of the method model's weights inside OCL's
``CombinedModel`` (``models.method.model.``). OCL ignores both when it loads the checkpoint.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning

from srl_plugin.ocl.standalone import run_config
from srl_plugin.runtime import MODEL_PREFIX_RECORD, resolved_container


class PluginCheckpointFields(pytorch_lightning.Callback):
    """Adds ``hyper_parameters.config`` and ``model_prefix`` to OCL's checkpoints.

    Args:
        experiment: the standalone experiment (``experiment.srl.name``, e.g. ``srl/movi_c``).
        overrides: its Hydra overrides (``experiment.srl.overrides``).
        model_prefix: where the method model's weights sit in OCL's state dict.
        config: the run's saved, resolved experiment (``experiment.srl.config``), used instead of composing.
    """

    def __init__(self, experiment: str, overrides: Sequence[str] | None = None,
                 model_prefix: str = "models.method.model.", config: Any = None) -> None:
        self.experiment = experiment
        self.overrides = list(overrides or [])
        self.model_prefix = model_prefix
        self.config = config

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Adds the fields in place (Lightning calls this for every checkpoint it writes)."""
        config = resolved_container(run_config(self.experiment, self.overrides, config=self.config))
        checkpoint.setdefault("hyper_parameters", {})["config"] = config
        checkpoint[MODEL_PREFIX_RECORD] = self.model_prefix
