"""`srl-train [experiment=<method>/<dataset>] [key=value ...]`: train a method model with Lightning.

Composes `configs/train.yaml` with the Hydra overrides given on the command line, then trains until
`trainer.max_steps`, logging to TensorBoard and CSV and checkpointing into `<output_dir>/checkpoints`.
Rerunning with the same `output_dir` resumes from its newest valid checkpoint (give a larger
`trainer.max_steps` to train further); a config that builds another model is refused. One run at a time
per `output_dir` (a lock file; a second run is refused). SIGTERM / SIGINT save a checkpoint and exit
with 128 + the signal number; a non-finite loss or gradient stops the run with an error (see
`nonfinite_skips`). Print the composed config with `--cfg`.
Errors are printed as one message; add `--traceback` (or set `SRL_TRACEBACK=1`) for the full traceback.

    srl-train experiment=srl/synthetic output_dir=runs/srl_synth trainer.max_steps=300
    srl-train experiment=srl/movi_c data.root=/data/movi_c trainer.devices=2
"""
from __future__ import annotations

import sys
from typing import Sequence

from srl_plugin.console import command


@command("srl-train")
def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return
    # imported after the --help check, so that --help stays fast
    from omegaconf import OmegaConf

    from srl_plugin.runtime import CHECKPOINT_SUBDIR, TRAIN_CONFIG, compose_config
    from srl_plugin.training.fit import TrainingInterrupted, train

    print_only = "--cfg" in args
    config = compose_config(TRAIN_CONFIG, [arg for arg in args if arg != "--cfg"])
    if print_only:
        print(OmegaConf.to_yaml(config))
        return
    try:
        output_dir = train(config)
    except TrainingInterrupted as stop:
        print(f"srl-train: {stop}", file=sys.stderr, flush=True)
        sys.exit(stop.exit_code)
    print(f"srl-train: done; checkpoints in {output_dir / CHECKPOINT_SUBDIR}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
