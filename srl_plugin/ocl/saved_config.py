"""A self-contained ``config/config.yaml`` for ``ocl_train`` runs of the plugin's experiments.

Hydra writes the composed OCL config to ``<run>/config/config.yaml`` before the job starts; the plugin's
experiments name a standalone experiment (``experiment.srl.name`` + ``experiment.srl.overrides``) instead of
repeating its hyperparameters. :class:`EmbedStandaloneConfig` (a Hydra callback, ``hydra.callbacks`` of
``configs/ocl/experiment/_srl_plugin_base.yaml``) adds that experiment, composed and resolved, under
``experiment.srl.config`` of the saved file. ``ocl_eval`` composes the saved file, and the plugin's resolver
and builders (:mod:`srl_plugin.ocl.standalone`) then read every hyperparameter from it rather than from the
plugin version installed at evaluation time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from srl_plugin.ocl.standalone import run_config
from srl_plugin.runtime import resolved_container

SAVED_CONFIG = "config.yaml"


class EmbedStandaloneConfig(Callback):
    """Writes the resolved standalone experiment into the run's saved ``config.yaml`` (``experiment.srl.config``)."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Rewrites ``<output_dir>/<output_subdir>/config.yaml``; nothing when Hydra saves no config."""
        if config.hydra.output_subdir is None:
            return
        path = Path(config.hydra.runtime.output_dir) / str(config.hydra.output_subdir) / SAVED_CONFIG
        saved = OmegaConf.load(path)
        srl = saved.experiment.srl
        if OmegaConf.select(srl, "config", default=None) is not None:
            return
        srl.config = resolved_container(run_config(srl.name, OmegaConf.select(srl, "overrides")))
        OmegaConf.save(saved, path)
