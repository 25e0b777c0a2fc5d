"""Hyperparameters for the OCL front door taken from the plugin's own experiment configs.

The OCL experiments (``configs/ocl/experiment/<method>/<dataset>.yaml``) do not repeat model, data or
optimisation numbers: they name a standalone experiment (``configs/experiment/<method>/<dataset>.yaml``
composed with ``configs/train.yaml``, exactly as ``srl-train experiment=<method>/<dataset>`` composes it) plus
optional Hydra overrides, and read values from it:

- ``${srl_standalone:<dotted.key>}``: an OmegaConf resolver returning one resolved value (a scalar or a plain
  container) of the experiment named by the OCL config's ``experiment.srl.name`` with the overrides in
  ``experiment.srl.overrides``, e.g. ``${srl_standalone:optimizer.lr}``;
- :func:`build_model` / :func:`build_datamodule`: the experiment's model (``model`` node) and datamodule
  (``data`` node, or the feature cache with ``features: cached``), built as ``srl-train`` builds them.

A run's saved ``config/config.yaml`` holds the resolved experiment under ``experiment.srl.config``
(:mod:`srl_plugin.ocl.saved_config`); when that node is set, the resolver and the builders read it instead of
composing the installed plugin's configs, so ``ocl_eval`` evaluates exactly what was trained.

OCL's Hydra app is already running when these are evaluated, so composition happens with Hydra's global state
set aside and restored afterwards.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf

from srl_plugin.runtime import build_model as build_runtime_model
from srl_plugin.runtime import compose_experiment

RESOLVER_NAME = "srl_standalone"
_MISSING = object()


@contextmanager
def _outside_running_hydra_app() -> Iterator[None]:
    """Sets the running app's ``GlobalHydra`` aside so that ``hydra.initialize_config_dir`` can be used."""
    running = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        # hydra.initialize_* restores singletons from copies on exit, so look the instance up again.
        GlobalHydra.instance().clear()
        if running is not None:
            GlobalHydra.instance().initialize(running)


def _as_overrides(overrides: Sequence[str] | ListConfig | None) -> tuple[str, ...]:
    if overrides is None:
        return ()
    if isinstance(overrides, str) or not all(isinstance(item, str) for item in overrides):
        raise ValueError(
            f"standalone overrides must be a list of Hydra override strings such as "
            f"['model.num_slots=7'], got {overrides!r}"
        )
    return tuple(overrides)


@functools.lru_cache(maxsize=32)
def _compose(experiment: str, overrides: tuple[str, ...]) -> DictConfig:
    with _outside_running_hydra_app():
        config = compose_experiment(experiment, overrides)
    OmegaConf.set_readonly(config, True)
    return config


def standalone_config(experiment: str, overrides: Sequence[str] | ListConfig | None = None) -> DictConfig:
    """``train.yaml`` + ``experiment/<experiment>.yaml`` + overrides, composed by Hydra (read-only, cached)."""
    return _compose(experiment, _as_overrides(overrides))


def standalone_value(experiment: str, key: str, overrides: Sequence[str] | ListConfig | None = None) -> Any:
    """The resolved value at dotted ``key`` of :func:`standalone_config` (plain containers for nodes)."""
    config = standalone_config(experiment, overrides)
    if OmegaConf.select(config, key, default=_MISSING) is _MISSING:
        raise KeyError(
            f"standalone experiment '{experiment}' has no key '{key}' (configs/experiment/{experiment}.yaml)"
        )
    value = OmegaConf.select(config, key, throw_on_missing=True)
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def _resolve(key: str, *, _root_: DictConfig) -> Any:
    selected = OmegaConf.select(_root_, "experiment.srl")
    if selected is None or OmegaConf.select(selected, "name") is None:
        raise KeyError(
            f"${{{RESOLVER_NAME}:{key}}} needs experiment.srl.name (the standalone experiment, e.g. srl/movi_c) in "
            "the OCL config; list /experiment/_srl_plugin_base in the experiment's defaults"
        )
    embedded = OmegaConf.select(selected, "config", default=None)
    if embedded is not None:
        value = OmegaConf.select(embedded, key, default=_MISSING)
        if value is _MISSING:
            raise KeyError(f"the run's saved experiment (experiment.srl.config) has no key '{key}'")
        return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
    return standalone_value(selected.name, key, OmegaConf.select(selected, "overrides"))


def register_resolver() -> None:
    """Registers ``${srl_standalone:<key>}`` (idempotent)."""
    if not OmegaConf.has_resolver(RESOLVER_NAME):
        OmegaConf.register_new_resolver(RESOLVER_NAME, _resolve)


def _absolute_data_root(root: Any) -> Any:
    """A relative ``data.root`` taken relative to the directory ``ocl_train`` was started from.

    OCL's Hydra app changes into the run directory, so relative roots would otherwise point inside it.
    """
    if not isinstance(root, str) or os.path.isabs(root):
        return root
    base = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else os.getcwd()
    return os.path.normpath(os.path.join(base, root))


def _missing_file(error: BaseException) -> FileNotFoundError | None:
    """The ``FileNotFoundError`` behind ``error`` (Hydra nests one instantiation error per config level)."""
    current: BaseException | None = error
    while current is not None and not isinstance(current, FileNotFoundError):
        current = current.__cause__
    return current


def ocl_command(experiment: str, overrides: Sequence[str] | ListConfig | None, *extra: str) -> str:
    """The ``ocl_train`` command line that runs ``experiment`` with its overrides plus ``extra`` (OCL's syntax);
    an override of a key that ``extra`` sets is left out."""
    replaced = {item.split("=", 1)[0] for item in extra}
    kept = [item for item in _as_overrides(overrides) if item.split("=", 1)[0] not in replaced]
    items = ",".join(_quoted(item) for item in (*kept, *extra))
    return f'ocl_train +experiment={experiment} "experiment.srl.overrides=[{items}]"'


def build_model(experiment: str, overrides: Sequence[str] | None = None, config: Any = None) -> Any:
    """The method model of the standalone experiment, built as ``srl-train`` builds it (``model`` node);
    from ``config`` (a run's saved, resolved experiment) when given.

    Raises:
        FileNotFoundError: the pretrained backbone weights are missing; the message names the override to
            pass in ``ocl_train``'s syntax.
    """
    try:
        return build_runtime_model(run_config(experiment, overrides, config=config))
    except InstantiationException as error:
        missing = _missing_file(error)
        if missing is None:
            raise
        command = ocl_command(experiment, overrides, "model.backbone.weights_path=/abs/path/to/weights.safetensors")
        raise FileNotFoundError(
            f"{missing}\nInside OCL, pass the weights file to the plugin's experiment: {command}"
        ) from error


def _quoted(value: str) -> str:
    """``value`` as a quoted Hydra override value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_config(experiment: str, overrides: Sequence[str] | None = None, eval_batch_size: int | None = None,
               config: Any = None) -> DictConfig:
    """:func:`standalone_config` as the OCL run uses it, or ``config`` (a run's saved, resolved experiment).

    A relative ``data.root`` is made absolute against the directory the OCL command was started from;
    ``eval_batch_size`` replaces ``data.val_batch_size``.
    """
    if config is not None:
        saved = OmegaConf.create(OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config)
        if eval_batch_size is not None:
            saved.data.val_batch_size = int(eval_batch_size)
        return saved
    extra = list(_as_overrides(overrides))
    root = standalone_value(experiment, "data.root", overrides)
    if _absolute_data_root(root) != root:
        extra.append(f"data.root={_quoted(_absolute_data_root(root))}")
    if eval_batch_size is not None:
        extra.append(f"data.val_batch_size={int(eval_batch_size)}")
    return standalone_config(experiment, extra)


def build_datamodule(experiment: str, overrides: Sequence[str] | None = None,
                     eval_batch_size: int | None = None, config: Any = None) -> Any:
    """The standalone experiment's datamodule (:func:`run_config`), built as ``srl-train`` builds it.

    That is its ``VideoDataModule`` (``data`` node), or the feature-cache datamodule when the experiment sets
    ``features: cached``.
    """
    from srl_plugin.training.runner import build_datamodule as build

    return build(run_config(experiment, overrides, eval_batch_size, config))
