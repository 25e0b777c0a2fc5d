"""Routed parts without OCL: the one interpreter of the ``routed.`` config layout for the standalone harness.

A routed config node names its class as ``_target_: routed.<importable class>`` and says where each tensor
input of the class's ``forward`` comes from with ``<argument>_path: <dotted path>`` (OCL's layout, docs/OCL.md
and docs/ARCHITECTURE.md "Parts"). Here ``routed.`` is stripped, the class is instantiated with the other
arguments, and :func:`call_routed` reads each input from the shared outputs dict by its path; OCL's own
``routed`` package does the same under ``ocl_train``.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

ROUTED_PREFIX = "routed."
PATH_SUFFIX = "_path"


def _choose(condition: bool, value: Any, otherwise: Any) -> Any:
    """``value`` if the boolean ``condition`` holds, else ``otherwise`` (``${srl_if:...}``)."""
    if not isinstance(condition, bool):
        raise ValueError(f"srl_if needs a boolean condition (true / false), got {condition!r}")
    return value if condition else otherwise


# Integer arithmetic for model configs (e.g. a hidden width of 2 * D_f): ${srl_mul:2,${.feature_dim}}; srl_ceil_mul
# rounds a product up (SSync's first synergy step, ceil(0.3 * max_steps)); srl_if picks a value by a boolean
# hyperparameter (VideoSAUR's feature channels: ${srl_if:${.reconstruct_features},${.feature_dim},0}).
CONFIG_RESOLVERS = {"srl_mul": lambda *values: math.prod(int(value) for value in values),
                    "srl_add": lambda *values: sum(int(value) for value in values),
                    "srl_ceil_mul": lambda *values: math.ceil(math.prod(float(value) for value in values)),
                    "srl_if": _choose}


def register_resolvers() -> None:
    """Registers :data:`CONFIG_RESOLVERS` with OmegaConf (idempotent; done on import of this module)."""
    for name, function in CONFIG_RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


def read_path(tree: Any, path: str) -> Any:
    """The value at dotted ``path`` of nested mappings / attributes, e.g. ``decoder.masks``, ``model.global_step``.

    Raises:
        KeyError: a path element is missing (the message names the path and the keys that exist there).
    """
    value = tree
    for index, name in enumerate(path.split(".")):
        if isinstance(value, Mapping):
            if name not in value:
                where = ".".join(path.split(".")[:index]) or "<outputs>"
                raise KeyError(f"routed path '{path}': {where} has no '{name}' (it has {sorted(value)})")
            value = value[name]
        elif hasattr(value, name):
            value = getattr(value, name)
        else:
            raise KeyError(f"routed path '{path}': {type(value).__name__} has no attribute '{name}'")
    return value


@dataclass
class RoutedPart:
    """A built part and where its ``forward`` arguments come from (``argument -> dotted path``)."""

    module: nn.Module
    paths: dict[str, str]


def build_routed(node: Mapping[str, Any] | DictConfig | nn.Module) -> RoutedPart:
    """Instantiates a (``routed.``) config node; an already built module is taken as is (no inputs routed)."""
    if isinstance(node, nn.Module):
        return RoutedPart(node, {})
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    target = str(plain.get("_target_", ""))
    if not target:
        raise ValueError(f"a part needs a _target_ (e.g. routed.srl_plugin.models.NormedMLP); got keys {sorted(plain)}")
    target = target.removeprefix(ROUTED_PREFIX)
    inputs = forward_inputs(target)
    paths = {
        key[: -len(PATH_SUFFIX)]: str(value)
        for key, value in plain.items()
        if key.endswith(PATH_SUFFIX) and key[: -len(PATH_SUFFIX)] in inputs
    }
    arguments = {key: value for key, value in plain.items() if key[: -len(PATH_SUFFIX)] not in paths}
    arguments["_target_"] = target
    return RoutedPart(instantiate(arguments, _convert_="all"), paths)


def forward_inputs(target: str) -> set[str]:
    """Argument names of ``forward`` of the class ``target`` (only these take ``<name>_path`` routes, so a
    constructor argument such as ``weights_path`` stays a constructor argument)."""
    parameters = inspect.signature(get_class(target).forward).parameters
    return {name for name, parameter in parameters.items() if name != "self" and parameter.kind is not parameter.VAR_KEYWORD}


def call_routed(part: RoutedPart, tree: Mapping[str, Any]) -> Any:
    """``part.module(**{argument: read_path(tree, path)})``."""
    return part.module(**{argument: read_path(tree, path) for argument, path in part.paths.items()})


register_resolvers()
