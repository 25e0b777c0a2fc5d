"""`srl-train [experiment=<method>/<dataset>] [key=value ...]`: train a method model with Lightning.

Composes `configs/train.yaml` with the Hydra overrides given on the command line, then trains until
`trainer.max_steps`, logging to TensorBoard and CSV and checkpointing into `<output_dir>/checkpoints`.
Rerunning with the same `output_dir` resumes from `checkpoints/last.ckpt` (give a larger
`trainer.max_steps` to train further). Print the composed config with `--cfg`.

    srl-train experiment=srl/synthetic output_dir=runs/srl_synth trainer.max_steps=300
    srl-train experiment=srl/movi_c data.root=/data/movi_c trainer.devices=2
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import lightning as L
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from omegaconf import DictConfig, OmegaConf

from srl_plugin.runtime import (
    CHECKPOINT_SUBDIR,
    LAST_CHECKPOINT,
    TRAIN_CONFIG,
    batch_layout,
    compose_config,
    describe_layout,
    recipe_mismatch,
    resolved_container,
)
from srl_plugin.training.module import SlotVideoModule
from srl_plugin.training.runner import build_datamodule, build_trainer, set_num_threads

RESOLVED_CONFIG_FILE = "config.yaml"


def train(config: DictConfig) -> Path:
    """Trains (or resumes) the run described by ``config``; returns its output directory."""
    container = resolved_container(config)
    output_dir = Path(container["output_dir"]).expanduser().resolve()
    set_num_threads(config)
    L.seed_everything(int(container["seed"]), workers=True)
    rank_zero_info(f"srl-train: {describe_layout(batch_layout(container))}")
    mismatch = recipe_mismatch(container)
    if mismatch:
        rank_zero_warn(mismatch)
    resume = output_dir / CHECKPOINT_SUBDIR / LAST_CHECKPOINT
    module = SlotVideoModule(container, image_dir=str(output_dir / "images"))
    datamodule = build_datamodule(config)
    trainer = build_trainer(config, output_dir, training=True)
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(container), output_dir / RESOLVED_CONFIG_FILE)
        if resume.is_file():
            print(f"srl-train: resuming from {resume}", flush=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume.is_file() else None)
    return output_dir


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return
    print_only = "--cfg" in args
    config = compose_config(TRAIN_CONFIG, [arg for arg in args if arg != "--cfg"])
    if print_only:
        print(OmegaConf.to_yaml(config))
        return
    output_dir = train(config)
    print(f"srl-train: done; checkpoints in {output_dir / CHECKPOINT_SUBDIR}", flush=True)


if __name__ == "__main__":
    main()
