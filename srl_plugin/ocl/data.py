"""The plugin's datamodules (``VideoDataModule``, or the feature cache) for OCL's training loop and ``ocl_eval``.

OCL's ``CombinedModel`` needs ``batch["batch_size"]``, its trainer is a ``pytorch_lightning.Trainer``
(a different class hierarchy from ``lightning``), and ``ocl_eval`` calls ``val_dataloader()`` directly,
without ``setup`` or the datamodule's batch hooks. :class:`OCLVideoDataModule` therefore wraps the
standalone experiment's datamodule and adds ``batch_size`` inside the loaders it returns. Batches keep the
plugin's keys (docs/ARCHITECTURE.md "Batches"): route ``input.video``, ``input.masks``,
``input.backbone_features``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import pytorch_lightning as pl

from srl_plugin.data.shards import MissingShardsError
from srl_plugin.ocl.standalone import build_datamodule, ocl_command

_Result = TypeVar("_Result")

_BATCH_TENSORS = ("video", "backbone_features")


def add_batch_size(batch: dict[str, Any]) -> dict[str, Any]:
    """``batch`` with ``batch_size`` = leading size of ``video`` or ``backbone_features``."""
    for key in _BATCH_TENSORS:
        if key in batch:
            return {**batch, "batch_size": int(batch[key].shape[0])}
    raise KeyError(f"batch has none of {_BATCH_TENSORS} (keys: {sorted(batch)})")


class BatchSizeLoader:
    """Iterates ``loader`` and adds ``batch_size`` to each batch; has a length when ``loader`` has one."""

    def __init__(self, loader: Iterable[dict[str, Any]]) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.loader:
            yield add_batch_size(batch)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]


class OCLVideoDataModule(pl.LightningDataModule):
    """The datamodule of a standalone experiment as a ``pytorch_lightning`` datamodule.

    Args:
        experiment: standalone experiment, e.g. ``srl/movi_c`` (``configs/experiment/srl/movi_c.yaml``).
        overrides: Hydra overrides of the standalone config, e.g. ``["data.root=/data/movi_c"]``.
        eval_batch_size: replaces the validation batch size (set by ``ocl_eval eval_batch_size=...``).
        config: the run's saved, resolved experiment (``experiment.srl.config``), used instead of composing.
    """

    def __init__(self, experiment: str, overrides: Sequence[str] | None = None,
                 eval_batch_size: int | None = None, config: Any = None) -> None:
        super().__init__()
        self.experiment = experiment
        self.overrides = list(overrides or [])
        self.inner = build_datamodule(experiment, overrides, eval_batch_size, config)
        self._ready = False

    def _with_ocl_hint(self, step: Callable[[], _Result]) -> _Result:
        """Runs ``step``; missing shards are reported with the ``ocl_train`` override that points at the data."""
        try:
            return step()
        except MissingShardsError as error:
            command = ocl_command(self.experiment, self.overrides, "data.root=/abs/path/to/the/shards")
            raise MissingShardsError(
                f"{error}\nInside OCL, pass the data folder to the plugin's experiment: {command} "
                "(or export SRL_DATA_ROOT)"
            ) from error

    def _ensure_ready(self) -> None:
        """``prepare_data`` + ``setup`` of the wrapped module when no trainer drives them (``ocl_eval``)."""
        if self.trainer is None and not self._ready:
            self.prepare_data()
            self._with_ocl_hint(lambda: self.inner.setup("validate"))
            self._ready = True

    def prepare_data(self) -> None:
        self._with_ocl_hint(self.inner.prepare_data)

    def setup(self, stage: str | None = None) -> None:
        self.inner.trainer = self.trainer
        self._with_ocl_hint(lambda: self.inner.setup(stage or "fit"))

    def train_dataloader(self) -> BatchSizeLoader:
        self._ensure_ready()
        return BatchSizeLoader(self._with_ocl_hint(self.inner.train_dataloader))

    def val_dataloader(self) -> BatchSizeLoader:
        self._ensure_ready()
        return BatchSizeLoader(self._with_ocl_hint(self.inner.val_dataloader))
