"""A method model as a composition of routed parts (docs/ARCHITECTURE.md "Parts and their routed contract").

The wiring is shared with the OCL front door: the frozen ``backbone``, then ``parts`` (``configs/models/<method>.yaml``)
run in order, each reading its inputs by path from one shared outputs dict and writing its output under its own
key, and ``losses`` (``configs/losses/<method>.yaml``), routed loss modules (:mod:`srl_plugin.losses.modules`).
Both files read the method's hyperparameters (``configs/model/<method>.yaml``) by absolute path
``${experiment.model.<name>}``. The public output names of ``forward_features`` map to part outputs through
``outputs``. The method classes (``SRLModel``, ...) are this class with the shipped wiring of their method: built
from a composed config (``runtime.build_model``), or from keyword hyperparameters that override the shipped
model file's values (the one place that defines their structure and defaults).
"""
from __future__ import annotations

import importlib.resources
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from omegaconf import OmegaConf
from torch import nn

from srl_plugin.models.base import FrozenBackboneModel, total_loss
from srl_plugin.models.routing import RoutedPart, build_routed, call_routed, read_path

WIRING_KEYS = ("parts", "losses", "outputs")


def shipped_config(group: str, method: str) -> Any:
    """``configs/<group>/<method>.yaml`` as an OmegaConf node (unresolved, defaults list dropped)."""
    path = importlib.resources.files("srl_plugin") / "configs" / group / f"{method}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped config configs/{group}/{method}.yaml")
    config = OmegaConf.create(path.read_text())
    config.pop("defaults", None)
    return config


def shipped_model_config(method: str) -> Any:
    """The method's hyperparameters, ``configs/model/<method>.yaml``, as an OmegaConf node (unresolved)."""
    return shipped_config("model", method)


class ComposedVideoModel(FrozenBackboneModel):
    """Frozen backbone -> routed parts -> routed losses, with the method-model API of docs/ARCHITECTURE.md.

    Args:
        backbone: the frozen feature extractor (a module, its config node, or ``None`` for
            ``forward_features`` only); its outputs are ``backbone.backbone_features`` (B, T, N, D_f) and, with
            keys, ``backbone.backbone_keys``.
        parts: name -> routed config node (or module), run in this order, hyperparameters resolved (the
            composed config's ``models`` node). Paths also reach ``input.batch_size``, ``input.continuation``
            (streaming) and ``model.global_step``. ``None``: the shipped wiring of ``method``.
        losses: name -> routed loss node (:class:`srl_plugin.losses.modules.WeightedLoss`), resolved (``losses``).
        outputs: public output name -> path (``slots``, ``predicted_slots``, ``grouping_masks``,
            ``decoder_masks``, ``reconstruction``, ``features``, ...).
        num_slots: ``K``. feature_dim: ``D_f``. num_patches: ``N`` (perfect square). Checked against the backbone.
        input_size: frame side (taken from the backbone when there is one).
        conditioning: the part whose output streaming replaces by the previous window's slots.
        hyperparameters: the method's named values the wiring was filled from (kept as attributes).
    """

    method: ClassVar[str | None] = None

    def __init__(
        self,
        backbone: nn.Module | Mapping[str, Any] | None = None,
        parts: Mapping[str, Any] | None = None,
        losses: Mapping[str, Any] | None = None,
        outputs: Mapping[str, str] | None = None,
        **hyperparameters: Any,
    ) -> None:
        super().__init__()
        if isinstance(backbone, nn.Module):
            hyperparameters.setdefault("feature_dim", backbone.feature_dim)
            hyperparameters.setdefault("num_patches", backbone.num_patches)
        if parts is None:
            parts, losses, outputs, hyperparameters = self._shipped_wiring(backbone, hyperparameters)
        if losses is None or outputs is None:
            raise ValueError("a composed model needs parts, losses and outputs (see configs/model/*.yaml)")
        self.backbone = build_routed(backbone).module if isinstance(backbone, Mapping) else backbone
        self.num_slots = int(hyperparameters.pop("num_slots"))
        self.feature_dim, self.num_patches = self._sizes(hyperparameters)
        self.input_size = self._input_size(hyperparameters.pop("input_size", None))
        self.conditioning = str(hyperparameters.pop("conditioning", "initializer"))
        side = math.isqrt(self.num_patches)
        if side * side != self.num_patches:
            raise ValueError(f"num_patches must be a perfect square (square patch grid), got {self.num_patches}")
        self.patch_grid = (side, side)
        self.hyperparameters = dict(hyperparameters)
        for name, value in hyperparameters.items():
            if not hasattr(self, name):
                setattr(self, name, value)
        self._routes: dict[str, dict[str, str]] = {}
        for name, node in parts.items():
            self._register(name, build_routed(node))
        self.losses = nn.ModuleDict()
        self._loss_routes: dict[str, dict[str, str]] = {}
        for name, node in losses.items():
            built = build_routed(node)
            self.losses[name] = built.module
            self._loss_routes[name] = built.paths
        self.output_paths = dict(outputs)
        self.loss_weights = {name: loss.weight for name, loss in self.losses.items()}

    def _shipped_wiring(
        self, backbone: Any, hyperparameters: dict[str, Any]
    ) -> tuple[Any, Any, Any, dict[str, Any]]:
        """The shipped parts and losses of ``method`` filled from ``configs/model/<method>.yaml`` with
        ``hyperparameters`` over its values (resolved as a composed config resolves them)."""
        if self.method is None:
            raise TypeError(f"{type(self).__name__} has no shipped wiring: pass parts, losses and outputs")
        config = shipped_model_config(self.method)
        unknown = sorted(set(hyperparameters) - set(config) - {"feature_dim", "num_patches", "input_size", "conditioning"})
        if unknown:
            raise TypeError(f"{type(self).__name__} has no hyperparameter(s) {unknown}; known: {sorted(config)}")
        model = OmegaConf.merge(config, OmegaConf.create(_plain(hyperparameters)))
        root = OmegaConf.create({"experiment": {"model": model}, "models": shipped_config("models", self.method),
                                 "losses": shipped_config("losses", self.method)})
        resolved = OmegaConf.to_container(root, resolve=True)
        values = {key: value for key, value in resolved["experiment"]["model"].items()
                  if key not in (*WIRING_KEYS, "backbone") and not key.startswith("_")}
        return resolved["models"], resolved["losses"], resolved["experiment"]["model"]["outputs"], values

    def _sizes(self, hyperparameters: dict[str, Any]) -> tuple[int, int]:
        """``(D_f, N)``: what the backbone produces; configured values must agree with it."""
        feature_dim = hyperparameters.pop("feature_dim", None)
        num_patches = hyperparameters.pop("num_patches", None)
        if self.backbone is not None:
            if (feature_dim, num_patches) not in ((None, None), (self.backbone.feature_dim, self.backbone.num_patches)):
                raise ValueError(
                    f"backbone gives {self.backbone.num_patches} patches of width {self.backbone.feature_dim} but the "
                    f"model was configured with num_patches={num_patches}, feature_dim={feature_dim}"
                )
            return self.backbone.feature_dim, self.backbone.num_patches
        if feature_dim is None or num_patches is None:
            raise ValueError("without a backbone the model needs feature_dim and num_patches")
        return int(feature_dim), int(num_patches)

    def _input_size(self, input_size: int | None) -> int | None:
        if self.backbone is None:
            return input_size
        if input_size is not None and input_size != self.backbone.input_size:
            raise ValueError(f"input_size {input_size} differs from the backbone's {self.backbone.input_size}")
        return self.backbone.input_size

    def _register(self, name: str, built: RoutedPart) -> None:
        if hasattr(self, name):
            raise ValueError(f"part name '{name}' clashes with an attribute of the model; rename the part")
        self.add_module(name, built.module)
        self._routes[name] = built.paths

    def forward_features(
        self,
        backbone_features: torch.Tensor,
        backbone_keys: torch.Tensor | None = None,
        initial_slots: torch.Tensor | None = None,
        global_step: int | None = None,
    ) -> dict[str, Any]:
        """Runs every part after the frozen backbone.

        Args:
            backbone_features: (B, T, N, D_f) frozen tokens. backbone_keys: (B, T, N, D_f) or ``None``.
            initial_slots: (B, K, D) slots for frame 0 (streaming continuation; replaces the conditioning part).
            global_step: optimizer steps done (for step-dependent parts), or ``None``.

        Returns the public outputs (``backbone_features`` detached, ``slots`` (B, T, K, D), ``decoder_masks``
        (B, T, K, N), ...; see ``outputs``) plus every part's raw output under its part name and ``backbone``.
        """
        self.check_features(backbone_features)
        encoded = {"backbone_features": backbone_features.detach()}
        if backbone_keys is not None:
            encoded["backbone_keys"] = backbone_keys.detach()
        tree: dict[str, Any] = {
            "input": {"batch_size": backbone_features.shape[0], "continuation": initial_slots is not None},
            "model": _Step(global_step),
            "backbone": encoded,
        }
        for name, paths in self._routes.items():
            if name == self.conditioning and initial_slots is not None:
                tree[name] = initial_slots
                continue
            tree[name] = call_routed(RoutedPart(getattr(self, name), paths), tree)
        outputs = {public: read_path(tree, path) for public, path in self.output_paths.items()}
        outputs.update(encoded)
        outputs.update({name: value for name, value in tree.items() if name not in ("input", "model")})
        return outputs

    def active_losses(self, global_step: int) -> list[str]:
        """Names of the losses with a non-zero weight whose window contains ``global_step``."""
        return [name for name, loss in self.losses.items() if loss.is_active(global_step)]

    def compute_losses(self, outputs: Mapping[str, Any], global_step: int) -> dict[str, torch.Tensor]:
        """``total = sum_i weight_i * loss_i`` plus one unweighted 0-dim tensor per active loss."""
        tree = {**outputs, "model": _Step(global_step)}
        losses: dict[str, torch.Tensor] = {}
        for name in self.active_losses(global_step):
            paths = {arg: path for arg, path in self._loss_routes[name].items() if arg != "global_step"}
            losses[name] = self.losses[name].loss(**{arg: read_path(tree, path) for arg, path in paths.items()})
        return total_loss(losses, self.loss_weights)


class _Step:
    """What ``global_step_path: model.global_step`` reads in the standalone model (OCL's ``CombinedModel`` has
    the attribute itself): optimizer steps done, or ``None`` in a forward pass given no step."""

    def __init__(self, global_step: int | None) -> None:
        self.global_step = None if global_step is None else int(global_step)


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword hyperparameters as config values (tuples -> lists, loss windows -> mappings)."""
    plain: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, tuple):
            value = list(value)
        elif hasattr(value, "__dataclass_fields__"):
            value = {field: getattr(value, field) for field in value.__dataclass_fields__}
        elif isinstance(value, Mapping):
            value = dict(value)
        plain[key] = value
    return plain
