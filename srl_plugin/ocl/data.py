"""The plugin's datamodules (``VideoDataModule``, or the feature cache) for OCL's training loop and ``ocl_eval``.

OCL's ``CombinedModel`` needs ``batch["batch_size"]``, its trainer is a ``pytorch_lightning.Trainer``
(a different class hierarchy from ``lightning``), and ``ocl_eval`` calls ``val_dataloader()`` directly,
without ``setup`` or the datamodule's batch hooks. :class:`OCLVideoDataModule` therefore wraps the datamodule
``srl-train`` builds from the same values (``experiment.data``, ``experiment.evaluation``, ...) and adds
``batch_size`` inside the loaders it returns. Batches keep the plugin's keys (docs/ARCHITECTURE.md "Batches"):
route ``input.video``, ``input.masks``, ``input.backbone_features``, ``input.chunk_index``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import pytorch_lightning as pl
from omegaconf import OmegaConf

from srl_plugin.data.shards import MissingShardsError
from srl_plugin.training.runner import build_datamodule

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
    """The datamodule ``srl-train`` builds, as a ``pytorch_lightning`` datamodule.

    Args:
        config: the standalone keys the data depend on (``data``, ``evaluation``, ``features``, ``cache``,
            ``model``, ``method``, ``dataset``, ``seed``), i.e. those of OCL's ``experiment`` node.
        eval_batch_size: replaces ``data.val_batch_size`` (set by ``ocl_eval eval_batch_size=...``).
    """

    def __init__(self, config: Mapping[str, Any], eval_batch_size: int | None = None) -> None:
        super().__init__()
        run = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(config), resolve=True))
        if eval_batch_size is not None:
            run.data.val_batch_size = int(eval_batch_size)
        self.inner = build_datamodule(run)
        self._ready = False

    @staticmethod
    def _with_ocl_hint(step: Callable[[], _Result]) -> _Result:
        """Runs ``step``; missing shards are reported with the ``ocl_train`` override that points at the data."""
        try:
            return step()
        except MissingShardsError as error:
            raise MissingShardsError(
                f"{error}\nInside OCL, pass the data folder: ocl_train +experiment=<method>/<dataset> "
                "experiment.data.root=/abs/path/to/the/shards (or export SRL_DATA_ROOT before ocl_train)"
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
