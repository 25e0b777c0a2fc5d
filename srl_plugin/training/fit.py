"""Training one run (the job behind `srl-train` and `srl-demo`): the Lightning module, data and trainer of a
composed config, under the run lock, resuming from the run's newest valid checkpoint."""
from __future__ import annotations

import contextlib
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from omegaconf import DictConfig, OmegaConf

from srl_plugin.runtime import (
    CHECKPOINT_SUBDIR,
    batch_layout,
    describe_layout,
    recipe_mismatch,
    resolved_container,
)
from srl_plugin.training.checkpoints import (
    Interruption,
    StepCheckpoint,
    newest_valid_checkpoint,
    read_resumable_checkpoint,
    remove_orphan_temporaries,
)
from srl_plugin.training.config_checks import check_training_config
from srl_plugin.training.module import SlotVideoModule
from srl_plugin.training.resume import check_same_model
from srl_plugin.training.run_lock import RunLock
from srl_plugin.training.runner import build_datamodule, build_trainer, set_num_threads

RESOLVED_CONFIG_FILE = "config.yaml"


class TrainingInterrupted(Exception):
    """SIGTERM / SIGINT stopped training; ``exit_code`` is 128 + the signal number, as a shell reports it."""

    def __init__(self, interruption: Interruption) -> None:
        saved = (
            f"saved checkpoint {interruption.checkpoint}; rerun the same command to resume from it"
            if interruption.checkpoint is not None
            else "no step was done, so there was nothing to save"
        )
        super().__init__(f"stopped by {interruption.signal.name} at step {interruption.step}; {saved}")
        self.exit_code = 128 + int(interruption.signal)


def say(message: str) -> None:
    """Prints an ``srl-train:`` line on rank 0."""
    rank_zero_only(print)(f"srl-train: {message}", flush=True)


def prepare_output_dir(lock: RunLock | None, checkpoint_dir: Path) -> None:
    """Reports a stale lock taken over and removes orphan temporary files (only while holding the lock)."""
    if lock is None:
        return
    if lock.taken_over:
        say(f"took over the stale lock of pid {lock.taken_over.get('pid', '?')} on {lock.taken_over.get('host', '?')} "
            "(that run is no longer alive)")
    orphans = remove_orphan_temporaries(checkpoint_dir) if checkpoint_dir.is_dir() else []
    if orphans:
        say(f"removed {len(orphans)} temporary file(s) left by interrupted checkpoint writes in {checkpoint_dir}")


def train(config: DictConfig) -> Path:
    """Trains (or resumes) the run described by ``config``; returns its output directory.

    Holds ``output_dir``'s run lock throughout (rank 0), resumes from the newest valid checkpoint there
    after checking that this config builds the same model, and turns SIGTERM / SIGINT into
    :class:`TrainingInterrupted` once the checkpoint of the current step is saved.
    """
    check_training_config(config)
    container = resolved_container(config)
    output_dir = Path(container["output_dir"]).expanduser().resolve()
    checkpoint_dir = output_dir / CHECKPOINT_SUBDIR
    set_num_threads(config)
    L.seed_everything(int(container["seed"]), workers=True)
    rank_zero_info(f"srl-train: {describe_layout(batch_layout(container))}")
    mismatch = recipe_mismatch(container)
    if mismatch:
        rank_zero_warn(mismatch)
    lock = RunLock(output_dir) if rank_zero_only.rank == 0 else None
    with lock if lock is not None else contextlib.nullcontext():
        prepare_output_dir(lock, checkpoint_dir)
        resume = newest_valid_checkpoint(checkpoint_dir) if checkpoint_dir.is_dir() else None
        module = SlotVideoModule(container, image_dir=str(output_dir / "images"))
        if resume is not None:
            check_same_model(resume, container, module.model)
        datamodule = build_datamodule(config)
        trainer = build_trainer(config, output_dir, training=True)
        if trainer.is_global_zero:
            OmegaConf.save(OmegaConf.create(container), output_dir / RESOLVED_CONFIG_FILE)
            if resume is not None:
                say(f"resuming from {resume} (step {read_resumable_checkpoint(resume)})")
        checkpoints = next(callback for callback in trainer.callbacks if isinstance(callback, StepCheckpoint))
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume is not None else None)
        except SystemExit as error:  # Lightning ends SIGTERM (SIGTERMException) and SIGINT (exit 1) this way
            if checkpoints.interruption is None:
                raise
            raise TrainingInterrupted(checkpoints.interruption) from error
    return output_dir
