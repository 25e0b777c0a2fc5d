"""What an import adapter for one official checkpoint layout provides (the registry is :mod:`srl_plugin.interop.build`).

An official Lightning ``state_dict`` tells a model's sizes through its tensor shapes and nothing else; the method's
structure and every other hyperparameter come from the shipped experiment configs. An adapter knows one key
layout: which methods released checkpoints in it, how to recognise it, which model hyperparameters its shapes
tell, and how its keys map onto ours and back.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

StateDict = Mapping[str, torch.Tensor]


class OfficialLayout(ABC):
    """One official checkpoint layout (key names and shapes) and its mapping onto our composed models."""

    methods: ClassVar[tuple[str, ...]]
    # Our state that the official checkpoints never store (filled from the freshly built model on import).
    state_not_in_official: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def matches(self, state_dict: StateDict) -> bool:
        """Whether the keys are this layout's."""

    @abstractmethod
    def detect_method(self, state_dict: StateDict) -> str:
        """The method that ``--method auto`` picks for a state dict of this layout."""

    @abstractmethod
    def shape_hyperparameters(self, state_dict: StateDict) -> dict[str, Any]:
        """The model hyperparameters (``model.<name>`` values) that the tensor shapes tell.

        Raises:
            KeyError: the tensors the shapes are read from are missing (all listed).
        """

    def variant_overrides(self, state_dict: StateDict, preset: str) -> list[str]:
        """Hydra overrides of ``experiment=<method>/<preset>`` for a released variant that the preset's experiment
        does not select (e.g. another backbone); none by default."""
        return []

    @abstractmethod
    def to_ours(self, state_dict: StateDict) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Official tensors renamed (and reshaped) to our layout: ``(converted, unknown_official_keys)``."""

    @abstractmethod
    def to_official(self, state_dict: StateDict) -> dict[str, torch.Tensor]:
        """Inverse of :meth:`to_ours` for one of our models' state dicts (without ``state_not_in_official``)."""

    def official_key(self, key: str) -> str:
        """The official name of our parameter ``key`` for error messages (``key`` itself when there is none)."""
        return key
