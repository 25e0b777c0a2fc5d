"""The runtime floor under every front door (docs/ARCHITECTURE.md): config composition, model building,
the checkpoint format and loading, and running models on batches and long videos.

It stands only on ``models``, ``data``, ``metrics`` and ``losses``; ``training``, ``inference``, ``cache``,
``interop``, ``ocl`` and the benchmarks stand on it.
"""
from srl_plugin.runtime.build import BACKBONE_MODES, build_backbone, build_model, model_node, random_backbone_node
from srl_plugin.runtime.checkpoint import (
    BACKBONE_PREFIX,
    CHECKPOINT_SUBDIR,
    LAST_CHECKPOINT,
    MODEL_PREFIX,
    checkpoint_dict,
    checkpoint_path,
    load_model,
    model_state_dict,
    read_checkpoint,
    save_checkpoint,
)
from srl_plugin.runtime.config import (
    TRAIN_CONFIG,
    compose_config,
    compose_experiment,
    configs_dir,
    experiment_name,
    resolved_container,
)
from srl_plugin.runtime.streaming import (
    frame_windows,
    model_inputs,
    run_model,
    split_into_clips,
    stream,
    video_eval_masks,
)

__all__ = [
    "BACKBONE_MODES",
    "BACKBONE_PREFIX",
    "CHECKPOINT_SUBDIR",
    "LAST_CHECKPOINT",
    "MODEL_PREFIX",
    "TRAIN_CONFIG",
    "build_backbone",
    "build_model",
    "checkpoint_dict",
    "checkpoint_path",
    "compose_config",
    "compose_experiment",
    "configs_dir",
    "experiment_name",
    "frame_windows",
    "load_model",
    "model_inputs",
    "model_node",
    "model_state_dict",
    "random_backbone_node",
    "read_checkpoint",
    "resolved_container",
    "run_model",
    "save_checkpoint",
    "split_into_clips",
    "stream",
    "video_eval_masks",
]
