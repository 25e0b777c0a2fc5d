"""Two DDP processes on CPU (gloo) give the same validation metrics over the same videos as one process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srl_plugin.data.synthetic import ensure_synthetic_dataset
from srl_plugin.training import cli_eval
from srl_plugin.runtime import compose_config, resolved_container
from srl_plugin.training.module import SlotVideoModule

METRICS = ("video_fg_ari", "image_fg_ari", "video_mbo", "image_mbo")
VAL_VIDEOS = 6


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained SRL model on a small synthetic dataset (2 validation shards), in the shared checkpoint format."""
    root = tmp_path_factory.mktemp("ddp")
    config = compose_config("train", [
        "experiment=srl/synthetic", f"data.root={root / 'data'}", "data.val_batch_size=2",
        "data.synthetic.train_videos=4", f"data.synthetic.val_videos={VAL_VIDEOS}", "data.synthetic.frames=8",
        "trainer.enable_progress_bar=false", "evaluation.log_images=false",
    ])
    container = resolved_container(config)
    ensure_synthetic_dataset(container["data"]["root"], **container["data"]["synthetic"])
    torch.manual_seed(0)
    module = SlotVideoModule(container)
    path = root / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": {"config": container}, "global_step": 0}, path)
    return path


def test_two_gloo_processes_match_one_process(checkpoint: Path, tmp_path: Path) -> None:
    single, distributed = tmp_path / "single.json", tmp_path / "ddp.json"
    cli_eval.main([str(checkpoint), "trainer.accelerator=cpu", "--out", str(single)])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "srl_plugin.training.cli_eval", str(checkpoint), "trainer.accelerator=cpu",
         "trainer.devices=2", "trainer.strategy=ddp", "--out", str(distributed)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    one, two = json.loads(single.read_text()), json.loads(distributed.read_text())
    assert one["num_videos"] == two["num_videos"] == VAL_VIDEOS
    for name in METRICS:
        assert two[name] == pytest.approx(one[name], rel=1e-5, abs=1e-6), name


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_from_the_feature_cache(checkpoint: Path, tmp_path: Path) -> None:
    """The same through the cached-feature source: ranks share the cache's videos exactly as the video shards'."""
    from omegaconf import OmegaConf

    from srl_plugin.cache.experiment import expected_fingerprint, shard_readers, split_plans
    from srl_plugin.cache.store import build_cache
    from srl_plugin.cache.writer import backbone_extractor
    from srl_plugin.runtime import build_backbone

    cache = tmp_path / "cache"
    config = OmegaConf.create(torch.load(checkpoint, weights_only=False)["hyper_parameters"]["config"])
    backbone = build_backbone(config)
    build_cache(cache, expected_fingerprint(config, backbone), split_plans(config, ("val",)), shard_readers(config),
                backbone_extractor(backbone), progress=False)
    cached = ["features=cached", f"cache.dir={cache}", "trainer.accelerator=cpu"]
    single, distributed = tmp_path / "single.json", tmp_path / "ddp.json"
    cli_eval.main([str(checkpoint), *cached, "--out", str(single)])
    completed = subprocess.run(
        [sys.executable, "-m", "srl_plugin.training.cli_eval", str(checkpoint), *cached, "trainer.devices=2",
         "trainer.strategy=ddp", "--out", str(distributed)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    one, two = json.loads(single.read_text()), json.loads(distributed.read_text())
    assert one["num_videos"] == two["num_videos"] == VAL_VIDEOS
    for name in METRICS:
        assert two[name] == pytest.approx(one[name], rel=1e-5, abs=1e-6), name
