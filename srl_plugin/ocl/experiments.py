"""The plugin's experiments as OCL config fragments: one definition of every hyperparameter for both front doors.

An OCL experiment (``configs/ocl/experiment/<method>/<dataset>.yaml``) lists ``/srl_experiment/<method>/<dataset>``
in its defaults. That config group is served by :class:`StandaloneExperimentSource` (a Hydra ``ConfigSource``
that the search-path plugin registers in OCL's apps): it composes the standalone experiment exactly as
``srl-train experiment=<method>/<dataset>`` does (``configs/train.yaml`` + ``configs/experiment/...``) and returns,
at the root of OCL's config,

- ``experiment``: the standalone config with every value resolved (``experiment.model`` holds the method's
  hyperparameters, ``experiment.data``, ``experiment.optimizer``, ``experiment.trainer``, ...), so the composed
  OCL config, ``--cfg job`` and the run's saved ``config/config.yaml`` carry every value (self-contained);
- ``models`` and ``losses``: the method's parts and routed losses (``configs/models/<method>.yaml``,
  ``configs/losses/<method>.yaml``) as written, reading ``${experiment.model.<name>}``.

Values are changed on OCL's command line at their OCL path, e.g. ``experiment.model.num_slots=7`` or
``experiment.data.root=/data/movi_c``. :func:`standalone_run_config` turns a composed OCL config back into the
standalone layout (what checkpoints store for ``srl-eval`` / ``srl-infer``).
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.version import VersionBase
from omegaconf import DictConfig, OmegaConf

from srl_plugin.models.routing import register_resolvers
from srl_plugin.runtime import compose_experiment, configs_dir, resolved_container
from srl_plugin.runtime.batch import global_batch

__all__ = ["SCHEME", "StandaloneExperimentSource", "experiment_fragment", "register_resolvers", "standalone_run_config"]

SCHEME = "srl-plugin"
GROUP = "srl_experiment"
# Keys of the standalone config that the fragment places at OCL's root instead of under `experiment`, the
# standalone alias of experiment.model (train.yaml), which OCL's `experiment` node replaces, and the record of
# clips per optimizer step, which is computed from the run's values when a checkpoint is written.
WIRING = ("models", "losses")
ALIAS = "experiment"
GLOBAL_BATCH = "global_batch"
# Parts that only the OCL front door has: the frozen feature extractor (inside ComposedVideoModel in srl-train),
# SlotCurri's error recording (SlotCurriModel.compute_losses) and the evaluation masks (srl-eval's scoring step).
OCL_ONLY_PARTS = ("backbone", "curriculum_errors", "eval_masks")


@contextmanager
def _outside_running_hydra_app() -> Iterator[None]:
    """Sets the running app's ``GlobalHydra`` and version base aside so that the standalone configs can be
    composed (the standalone composition uses Hydra's current version base; OCL's apps run with 1.1, under
    which Hydra changes into the run directory)."""
    running = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    version_base = VersionBase.instance().getbase()
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        # hydra.initialize_* restores singletons from copies on exit, so look the instance up again.
        GlobalHydra.instance().clear()
        if running is not None:
            GlobalHydra.instance().initialize(running)
        VersionBase.instance().version_base = version_base


def _absolute_root(container: dict[str, Any]) -> None:
    """Makes a relative ``data.root`` absolute against the current directory (OCL changes into the run folder)."""
    data = container.get("data") or {}
    root = data.get("root")
    if isinstance(root, str) and not os.path.isabs(root):
        data["root"] = os.path.abspath(root)


def experiment_fragment(name: str) -> dict[str, Any]:
    """The OCL config fragment of standalone experiment ``name`` (``<method>/<dataset>``; module docstring)."""
    with _outside_running_hydra_app():
        config = compose_experiment(name)
    resolved = resolved_container(config)
    for key in (*WIRING, ALIAS, GLOBAL_BATCH):
        resolved.pop(key, None)
    _absolute_root(resolved)
    fragment: dict[str, Any] = {"experiment": resolved}
    for key in WIRING:
        if key in config:
            fragment[key] = OmegaConf.to_container(config[key], resolve=False)
    return fragment


def standalone_run_config(ocl_config: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """The standalone config (``configs/train.yaml`` layout, resolved) of a composed OCL config of the plugin.

    ``experiment`` without OCL's ``callbacks``, plus ``models`` (without the OCL-only parts), ``losses``, the
    ``experiment.model`` alias and ``global_batch`` (clips per optimizer step of these values).
    """
    config = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(ocl_config), resolve=False))
    config.experiment.pop("callbacks", None)  # OCL's, and they may read Hydra's runtime values
    run = OmegaConf.to_container(config.experiment, resolve=True)
    assert isinstance(run, dict)
    if "method" not in run or "model" not in run:
        raise ValueError("not an OCL config of srl-plugin: experiment.method / experiment.model are missing "
                         "(its experiments list /srl_experiment/<method>/<dataset> in their defaults)")
    parts = OmegaConf.to_container(config.models, resolve=True)
    run["models"] = {name: node for name, node in parts.items() if name not in OCL_ONLY_PARTS}
    run["losses"] = OmegaConf.to_container(config.losses, resolve=True)
    run[ALIAS] = {"model": run["model"]}
    run[GLOBAL_BATCH] = global_batch(_root_=OmegaConf.create(run))
    return run


def _experiment_file(config_path: str) -> str | None:
    """``<method>/<dataset>`` for ``srl_experiment/<method>/<dataset>[.yaml]``; None for other paths."""
    path = config_path.removesuffix(".yaml").strip("/")
    head, _, name = path.partition("/")
    return name if head == GROUP and name else None


class StandaloneExperimentSource(ConfigSource):
    """Serves the config group ``srl_experiment/<method>/<dataset>`` (:func:`experiment_fragment`) to Hydra."""

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def _standalone(self, relative: str) -> str:
        """Path of ``configs/experiment/<relative>`` in the installed plugin."""
        return os.path.join(configs_dir(), "experiment", relative)

    def load_config(self, config_path: str) -> ConfigResult:
        name = _experiment_file(config_path)
        if name is None or not self.is_config(config_path):
            raise ConfigLoadError(f"srl-plugin has no experiment config {config_path}")
        return ConfigResult(config=OmegaConf.create(experiment_fragment(name)), path=f"{SCHEME}://{GROUP}/{name}",
                            provider=self.provider, header={"package": "_global_"})

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        path = config_path.strip("/")
        if path == GROUP:
            return True
        name = _experiment_file(path)
        return name is not None and os.path.isdir(self._standalone(name))

    def is_config(self, config_path: str) -> bool:
        name = _experiment_file(config_path)
        return name is not None and os.path.isfile(self._standalone(f"{name}.yaml"))

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        path = config_path.strip("/")
        if not path:
            names = [GROUP] if results_filter in (None, ObjectType.GROUP) else []
            return names
        name = _experiment_file(path)
        folder = self._standalone(name or "") if name is not None or path == GROUP else None
        if folder is None or not os.path.isdir(folder):
            return []
        files: list[str] = []
        for entry in os.listdir(folder):
            self._list_add_result(files=files, file_path=f"{path}/{entry}", file_name=entry,
                                  results_filter=results_filter)
        return sorted(set(files))
