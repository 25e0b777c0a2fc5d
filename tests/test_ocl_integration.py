"""The OCL front door inside OCL: composition through OCL's ``training_config``, ``ocl_train`` + ``ocl_eval``
on the synthetic data, and the runtime compatibility fixes. Skipped when OCL is not importable (docs/OCL.md
describes the environment these tests were run in).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ocl = pytest.importorskip("ocl", reason="OCL (object-centric-learning-framework) is not installed; see docs/OCL.md")
ocl_train_module = pytest.importorskip("ocl.cli.train")

import hydra  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from srl_plugin import metrics, runtime  # noqa: E402
from srl_plugin.ocl import compat, standalone  # noqa: E402

pytestmark = pytest.mark.ocl

METHODS = ("srl", "slotcontrast", "videosaur", "slotcurri", "ssync")
DATASETS = ("movi_c", "movi_e", "ytvis2021", "synthetic")
OCL_CONFIGS = Path(ocl_train_module.__file__).resolve().parents[2] / "configs"
SCRIPTS = Path(sys.executable).parent
TINY_OVERRIDES = ["data.batch_size=4", "data.val_batch_size=4", "data.val_size=8", "data.synthetic.train_videos=16",
                  "data.synthetic.val_videos=8"]
TINY_DATA = "[" + ",".join(f"'{item}'" for item in TINY_OVERRIDES) + "]"  # Hydra quotes values holding '='.


def compose_ocl(experiment: str, *overrides: str):
    if not (OCL_CONFIGS / "__init__.py").is_file():
        pytest.skip(f"OCL's configs folder is not at {OCL_CONFIGS}; install OCL editable (docs/OCL.md)")
    with hydra.initialize_config_dir(config_dir=str(OCL_CONFIGS), version_base="1.1"):
        return hydra.compose("training_config", overrides=[f"+experiment={experiment}", *overrides])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_experiment_composes_in_ocl_with_the_standalone_hyperparameters(method: str, dataset: str) -> None:
    config = compose_ocl(f"{method}/{dataset}")
    name = f"{method}/{dataset}"
    assert config.experiment.srl.name == name
    assert config.models.method._target_ == "routed.srl_plugin.ocl.modules.MethodModel"
    assert config.optimizers.opt0.optimizer.lr == standalone.standalone_value(name, "optimizer.lr")
    assert config.trainer.max_steps == standalone.standalone_value(name, "trainer.max_steps")
    assert config.trainer.gradient_clip_val == standalone.standalone_value(name, "trainer.gradient_clip_val")
    assert config.evaluation_metrics.video_fg_ari.foreground == standalone.standalone_value(
        name, "evaluation.ignore_background")
    OmegaConf.to_container(config.optimizers, resolve=True)
    OmegaConf.to_container(config.trainer, resolve=True)


def test_experiment_instantiates_with_ocl_components() -> None:
    config = compose_ocl("srl/synthetic", "trainer.max_steps=2", f"experiment.srl.overrides={TINY_DATA}")
    model = ocl_train_module.build_model_from_config(config)
    assert type(model).__name__ == "CombinedModel"
    assert set(model.losses) == {"loss_recon", "loss_sc", "loss_reg", "loss_cl_dec", "loss_cl_enc"}
    video = torch.randn(2, 3, 3, 64, 64)
    outputs = model({"video": video, "batch_size": 2})
    total, logged = model._compute_losses(outputs)
    method = outputs["method"]
    torch.testing.assert_close(total, sum(method["weighted_losses"].values()))
    assert logged["train/loss_cl_dec"].item() == 0.0  # outside its window at step 0


def test_ssync_synergy_terms_reach_ocl_losses() -> None:
    """SSync's two pseudo-label losses are OCL loss terms; with the warm-up ratio at 0 they count from step 0."""
    overrides = "[" + ",".join(f"'{item}'" for item in [*TINY_OVERRIDES, "model.synergy_warmup_ratio=0"]) + "]"
    config = compose_ocl("ssync/synthetic", "trainer.max_steps=2", f"experiment.srl.overrides={overrides}")
    model = ocl_train_module.build_model_from_config(config)
    assert set(model.losses) == {"loss_recon", "loss_ss", "loss_grp2deccls", "loss_dec2grpcls"}
    outputs = model({"video": torch.randn(2, 3, 3, 64, 64), "batch_size": 2})
    total, logged = model._compute_losses(outputs)
    torch.testing.assert_close(total, sum(outputs["method"]["weighted_losses"].values()))
    assert logged["train/loss_grp2deccls"].item() > 0 and logged["train/loss_dec2grpcls"].item() > 0


def run_script(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SRL_DATA_ROOT": str(cwd / "data"), "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run([str(SCRIPTS / name), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("method", ["srl", "slotcontrast", "videosaur"])
def test_ocl_train_then_ocl_eval_and_srl_eval_agree_and_share_the_leaderboard(method: str, tmp_path: Path) -> None:
    run_script("ocl_train", [f"+experiment={method}/synthetic", "trainer.max_steps=2",
                             f"experiment.srl.overrides={TINY_DATA}"], tmp_path)
    (run_dir,) = (tmp_path / "outputs" / method / "synthetic").iterdir()
    assert (run_dir / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    saved = OmegaConf.load(run_dir / "config" / "config.yaml")  # self-contained: the experiment is in it
    assert saved.experiment.srl.config.method == method and "model" in saved.experiment.srl.config
    config = f"train_config_path={run_dir / 'config' / 'config.yaml'}"
    run_script("ocl_eval", [config], tmp_path)
    run_script("ocl_eval", [config, "report_filename=metrics_repeat.json"], tmp_path)
    reports = [json.loads((run_dir / name).read_text())["metrics"]["val"]
               for name in ("metrics.json", "metrics_repeat.json")]

    # srl-eval reads the ocl_train run directory and scores the same weights on the same videos, twice.
    srl_eval = [tmp_path / f"srl_eval_{index}.json" for index in range(2)]
    for out in srl_eval:
        run_script("srl-eval", [str(run_dir), "--out", str(out)], tmp_path)
    records = [json.loads(out.read_text()) for out in srl_eval]
    assert records[0]["step"] == 2 and records[0]["method"] == method
    for name in metrics.METRICS:
        assert reports[1][name] == reports[0][name], name  # repeatable (VideoSAUR's slot init is seeded in eval)
        assert records[1][name] == records[0][name], name
        assert reports[0][name] == pytest.approx(records[0][name], rel=1e-5, abs=1e-7), name
    assert reports[0]["num_videos"] == records[0]["num_videos"] == 8
    assert math.isnan(reports[0]["loss_total"])  # losses are not computed in eval

    board = run_script("srl-compare", [str(run_dir), str(srl_eval[0])], tmp_path).stdout
    for evaluator in ("ocl_eval", "srl-eval"):
        assert f"| {method} | synthetic | {evaluator} | 2 | full | 8 videos |" in board
    model, _ = runtime.load_model(run_dir)  # what srl-infer loads
    assert not model.training


def test_slotcurri_follows_its_curriculum_on_ocl_global_step_and_evaluates_all_slots() -> None:
    overrides = "[" + ",".join(f"'{item}'" for item in [*TINY_OVERRIDES, "model.schedule_steps=40"]) + "]"
    config = compose_ocl("slotcurri/synthetic", "trainer.max_steps=2", f"experiment.srl.overrides={overrides}")
    model = ocl_train_module.build_model_from_config(config)
    assert set(model.losses) == {"loss_recon", "loss_ssim", "loss_ss"}
    video = torch.randn(2, 3, 3, 64, 64)
    outputs = model({"video": video, "batch_size": 2})  # OCL's global step is 0: 2 of the 5 slots
    assert outputs["method"]["slots"].shape[2] == 2
    total, _ = model._compute_losses(outputs)
    torch.testing.assert_close(total, sum(outputs["method"]["weighted_losses"].values()))
    model.eval()
    with torch.no_grad():
        assert model({"video": video, "batch_size": 2})["method"]["slots"].shape[2] == 5


@pytest.mark.slow
def test_ocl_train_runs_slotcurri_through_its_slot_splits(tmp_path: Path) -> None:
    overrides = "[" + ",".join(f"'{item}'" for item in [*TINY_OVERRIDES, "model.schedule_steps=40"]) + "]"
    run_script("ocl_train", ["+experiment=slotcurri/synthetic", "trainer.max_steps=12",
                             f"experiment.srl.overrides={overrides}"], tmp_path)
    (run_dir,) = (tmp_path / "outputs" / "slotcurri" / "synthetic").iterdir()
    checkpoint = run_dir / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["global_step"] == 12
    errors = state["state_dict"]["models.method.model.initializer.slot_errors"]
    assert (errors[:2] > 0).all() and torch.isfinite(state["state_dict"]["models.method.model.initializer.slots"]).all()


def test_compat_fixes_make_the_affected_ocl_parts_work() -> None:
    import numpy

    import ocl.preprocessing
    import ocl.scheduling
    import ocl.visualizations

    applied = compat.apply_patches()
    assert compat.apply_patches() == applied  # idempotent
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = ocl.scheduling.cosine_annealing_with_optional_warmup(optimizer, T_max=10, warmup_steps=2)
    assert scheduler["lr_scheduler"]["interval"] == "step"
    assert ocl.preprocessing.numpy.isnan(ocl.preprocessing.numpy.NaN)
    assert numpy.pi == ocl.visualizations.np.math.pi
    segmentation = ocl.visualizations.Segmentation(n_instances=1)
    colours = segmentation._get_cmap(5)
    assert len(colours) == 5 and all(len(colour) == 3 for colour in colours)


@pytest.mark.parametrize("ignore_background", [True, False])
def test_ocl_video_metrics_equal_the_plugin_metrics(ignore_background: bool) -> None:
    from ocl.metrics import ARIMetric, AverageBestOverlapMetric

    generator = torch.Generator().manual_seed(3)
    soft = torch.rand(3, 4, 5, 16, generator=generator).softmax(dim=2)
    labels = torch.randint(0, 4, (3, 4, 12, 12), generator=generator)
    true = torch.nn.functional.one_hot(labels, 4).permute(0, 1, 4, 2, 3).float()
    if not ignore_background:  # YT-VIS layout: no background channel, unlabelled pixels all-zero
        true = true[:, :, 1:]
    hard = metrics.hard_masks_from_soft(soft, (12, 12))
    pairs = ((ARIMetric(foreground=ignore_background), metrics.VideoARI(ignore_background=ignore_background)),
             (AverageBestOverlapMetric(ignore_background=ignore_background),
              metrics.VideoMBO(ignore_background=ignore_background)))
    for theirs, ours in pairs:
        theirs.update(hard, true)
        ours.update(hard, true)
        torch.testing.assert_close(theirs.compute().double(), ours.compute(), rtol=1e-12, atol=1e-12)


def test_ocl_timm_extractor_works_beside_the_plugin_with_timm_1() -> None:
    import timm
    from ocl.feature_extractors.timm import TimmFeatureExtractor

    assert int(timm.__version__.split(".")[0]) >= 1
    extractor = TimmFeatureExtractor("vit_tiny_patch16_224", feature_level="block2", aux_features=["key2"],
                                     pretrained=False, freeze=True)
    features, positions, aux = extractor.forward_images(torch.rand(2, 3, 224, 224))
    assert features.shape == (2, 196, 192) and positions.shape == (196, 2)
    assert aux["key2"].shape == (2, 196, 192)
    with pytest.raises(ValueError, match="ParallelBlock"):  # timm 1.x's parallel blocks are refused, as in OCL
        TimmFeatureExtractor("vit_small_patch16_18x2_224", feature_level="key1", pretrained=False)


def test_importing_the_plugin_fixes_plain_library_use_of_ocl(tmp_path: Path) -> None:
    script = (
        "import srl_plugin.ocl, ocl.feature_extractors.timm, ocl.scheduling, torch\n"
        "optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)\n"
        "ocl.scheduling.cosine_annealing_with_optional_warmup(optimizer, T_max=10, warmup_steps=2)\n"
        "print(sorted(getattr(ocl, srl_plugin.ocl.compat.APPLIED_FLAG)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ocl.scheduling._CosineAnnealingWithWarmup.__init__" in result.stdout


def test_input_video_visualisation_is_skipped_for_feature_batches() -> None:
    from ocl.visualization_types import Video

    from srl_plugin.ocl.visualizations import InputVideo

    visualisation = InputVideo(n_instances=2)
    assert isinstance(visualisation(torch.randn(3, 2, 3, 8, 8)), Video)
    assert visualisation(None) is None
