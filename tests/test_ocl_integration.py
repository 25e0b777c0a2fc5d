"""The OCL front door inside OCL: composition through OCL's ``training_config`` into OCL model parts and routed
losses, parity of the OCL-composed SRL model with the official code, ``ocl_train`` + ``ocl_eval`` on the synthetic
data next to ``srl-eval``, a mixed OCL / SRL experiment, and the runtime compatibility fixes. Skipped when OCL is
not importable (docs/OCL.md describes the environment these tests were run in).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ocl = pytest.importorskip("ocl", reason="OCL (object-centric-learning-framework) is not installed; see docs/OCL.md")
ocl_train_module = pytest.importorskip("ocl.cli.train")

import hydra  # noqa: E402
import hydra_zen  # noqa: E402
from ocl.utils.routing import Combined  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from srl_plugin import metrics, runtime  # noqa: E402
from srl_plugin.interop import model_from_official_state_dict  # noqa: E402
from srl_plugin.ocl import compat  # noqa: E402
from srl_plugin.ocl.experiments import OCL_ONLY_PARTS, standalone_run_config  # noqa: E402

pytestmark = pytest.mark.ocl

METHODS = ("srl", "slotcontrast", "videosaur", "slotcurri", "ssync")
DATASETS = ("movi_c", "movi_e", "ytvis2021", "synthetic")
OCL_CONFIGS = Path(ocl_train_module.__file__).resolve().parents[2] / "configs"
SCRIPTS = Path(sys.executable).parent
TINY_DATA = ["experiment.data.batch_size=4", "experiment.data.val_batch_size=4", "experiment.data.val_size=8",
             "experiment.data.synthetic.train_videos=16", "experiment.data.synthetic.val_videos=8"]
RTOL = 1e-5  # the standalone parity tests' tolerance (tests/test_interop.py)
PARITY_OUTPUTS = {"features": "encoder_mlp", "slots": "processor.objects",
                  "grouping_masks": "processor.feature_attributions", "redundancy_attn": "processor.redundancy_attn",
                  "decoder_masks": "decoder.masks", "reconstruction": "decoder.reconstruction"}


def compose_ocl(experiment: str, *overrides: str):
    if not (OCL_CONFIGS / "__init__.py").is_file():
        pytest.skip(f"OCL's configs folder is not at {OCL_CONFIGS}; install OCL editable (docs/OCL.md)")
    with hydra.initialize_config_dir(config_dir=str(OCL_CONFIGS), version_base="1.1"):
        return hydra.compose("training_config", overrides=[f"+experiment={experiment}", *overrides])


def read_path(tree, path: str):
    for name in path.split("."):
        tree = tree[name]
    return tree


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_experiment_composes_into_ocl_parts_routed_losses_and_ocl_metrics(method: str, dataset: str) -> None:
    config = compose_ocl(f"{method}/{dataset}")
    standalone = runtime.compose_experiment(f"{method}/{dataset}")
    method_parts = ["curriculum_errors"] if method == "slotcurri" else []
    assert list(config.models) == ["backbone", *standalone.models, *method_parts, "eval_masks"]
    assert all(node._target_.startswith("routed.") for node in config.models.values())
    assert list(config.losses) == list(standalone.losses)
    assert all(node._target_.startswith("routed.srl_plugin.losses.") for node in config.losses.values())
    assert config.evaluation_metrics.video_fg_ari._target_ == "routed.ocl.metrics.ARIMetric"
    assert config.evaluation_metrics.video_mbo._target_ == "routed.ocl.metrics.AverageBestOverlapMetric"
    # Every hyperparameter is in the composed config (what ocl_train saves), at OCL's experiment.model.
    assert OmegaConf.to_container(config.experiment.model) == runtime.resolved_container(standalone)["model"]
    assert OmegaConf.to_container(config.models, resolve=True) == {
        **{name: node for name, node in OmegaConf.to_container(config.models, resolve=True).items()
           if name in OCL_ONLY_PARTS},
        **runtime.resolved_container(standalone)["models"]}
    assert config.optimizers.opt0.optimizer.lr == standalone.optimizer.lr
    assert config.trainer.max_steps == standalone.trainer.max_steps
    assert config.evaluation_metrics.video_fg_ari.foreground == standalone.evaluation.ignore_background
    for node in ("optimizers", "trainer", "losses", "evaluation_metrics", "dataset"):
        OmegaConf.to_container(config[node], resolve=True)


def test_ocl_combined_model_trains_the_standalone_objective() -> None:
    """One OCL training step's summed losses equal the standalone model's total on the same weights and batch."""
    config = compose_ocl("srl/synthetic")
    model = ocl_train_module.build_model_from_config(config)
    assert type(model).__name__ == "CombinedModel" and type(model.models).__name__ == "Combined"
    assert set(model.losses) == {"loss_recon", "loss_sc", "loss_reg", "loss_cl_dec", "loss_cl_enc"}
    standalone = runtime.build_model(standalone_run_config(config), backbone="random")
    standalone.load_state_dict({key.removeprefix("models."): value for key, value in model.state_dict().items()
                                if key.startswith("models.")})
    video = torch.randn(2, 4, 3, 64, 64)
    outputs = model({"video": video, "batch_size": 2})
    total, logged = model._compute_losses(outputs)
    expected = standalone.compute_losses(standalone(video), global_step=0)
    torch.testing.assert_close(total, expected["total"], rtol=RTOL, atol=0)
    assert logged["train/loss_cl_dec"].item() == 0.0  # outside its window at step 0


@pytest.mark.parametrize("method", METHODS)
def test_ocl_synthetic_experiment_runs_on_the_patch_pixel_backbone(method: str) -> None:
    """An OCL synthetic experiment with the parameter-free patch_pixels backbone node (not a ViT) in
    experiment.model: OCL's feature-extractor part builds it, and one forward gives the standalone objective."""
    config = compose_ocl(f"{method}/synthetic")
    pixels = runtime.resolved_container(runtime.compose_experiment(f"{method}/synthetic", ["backbone=patch_pixels"]))
    config.experiment.model = pixels["model"]
    model = ocl_train_module.build_model_from_config(config)
    assert type(model.models.backbone.model).__name__ == "PatchPixels"
    standalone = runtime.build_model(standalone_run_config(config), backbone="random")
    standalone.load_state_dict({key.removeprefix("models."): value for key, value in model.state_dict().items()
                                if key.startswith("models.")})
    size = pixels["model"]["backbone"]["input_size"]
    video = torch.randn(2, 4, 3, size, size)
    torch.manual_seed(1)  # VideoSAUR draws its initial slots from the global generator in training
    outputs = model({"video": video, "batch_size": 2})
    features = outputs["backbone"]["features"]
    assert features.shape == (2, 4, pixels["model"]["num_patches"], pixels["model"]["feature_dim"])
    torch.testing.assert_close(features, standalone.backbone(video)["backbone_features"], rtol=0, atol=0)
    total, _ = model._compute_losses(outputs)
    torch.manual_seed(1)
    expected = standalone.compute_losses(standalone(video, global_step=0), global_step=0)["total"]
    torch.testing.assert_close(total, expected, rtol=RTOL, atol=0)


def test_official_srl_state_dict_in_the_ocl_composed_model_matches_the_reference(reference_dir: Path) -> None:
    """Parity through OCL: the shipped OCL experiment srl/movi_c, built by Hydra into OCL's Combined of the
    plugin's routed parts, with the official SRL weights (through the plugin's official key map)."""
    reference = torch.load(reference_dir / "srl_model_reference.pt", weights_only=True)
    features = reference["backbone_features"]  # (2, 4, 16, 384): a 4 x 4 patch grid of DINOv2 S/14 features
    config = compose_ocl("srl/movi_c", f"experiment.model.num_patches={features.shape[2]}",
                         "experiment.model.backbone.pretrained=false", "experiment.model.backbone.allow_random_init=true")
    combined = Combined(**hydra_zen.instantiate(config.models, _convert_="all")).eval()
    losses = hydra_zen.instantiate(config.losses, _convert_="all")
    official = model_from_official_state_dict(reference["state_dict"], preset="movi_c")
    missing, unexpected = combined.load_state_dict(official.state_dict(), strict=False)
    assert unexpected == [] and missing and all(key.startswith("backbone.") for key in missing)  # the frozen ViT
    with torch.no_grad():
        for step in (5000, 30000):
            outputs = combined(inputs={"input": {"backbone_features": features, "batch_size": features.shape[0]},
                                       "model": SimpleNamespace(global_step=step)})
            for name, path in PARITY_OUTPUTS.items():
                expected = reference[name].to(torch.float32)
                scale = expected.abs().max().item()
                torch.testing.assert_close(read_path(outputs, path), expected, rtol=RTOL, atol=RTOL * scale,
                                           msg=lambda message: f"{name}: {message}")
            weighted = {name: loss(inputs=outputs) for name, loss in losses.items()}  # OCL's loss call
            total = torch.stack(list(weighted.values())).sum()  # CombinedModel._compute_losses sums them
            torch.testing.assert_close(total, reference[f"step{step}_total"], rtol=RTOL, atol=0)
            for name, value in weighted.items():
                expected = reference.get(f"step{step}_{name}")
                if expected is None:  # outside its window at this step
                    assert value.item() == 0.0, name
                else:
                    torch.testing.assert_close(value, losses[name].weight * expected, rtol=RTOL, atol=0)


def test_ssync_synergy_terms_reach_ocl_losses() -> None:
    """SSync's two pseudo-label losses are OCL losses; with the warm-up ratio at 0 they count from step 0."""
    config = compose_ocl("ssync/synthetic", "experiment.model.synergy_warmup_ratio=0")
    model = ocl_train_module.build_model_from_config(config)
    assert set(model.losses) == {"loss_recon", "loss_ss", "loss_grp2deccls", "loss_dec2grpcls"}
    outputs = model({"video": torch.randn(2, 3, 3, 64, 64), "batch_size": 2})
    _, logged = model._compute_losses(outputs)
    assert logged["train/loss_grp2deccls"].item() > 0 and logged["train/loss_dec2grpcls"].item() > 0


def test_slotcurri_follows_its_curriculum_on_ocl_global_step_and_evaluates_all_slots() -> None:
    config = compose_ocl("slotcurri/synthetic", "experiment.model.schedule_steps=40")
    model = ocl_train_module.build_model_from_config(config)
    assert set(model.losses) == {"loss_recon", "loss_ssim", "loss_ss"}
    video = torch.randn(2, 3, 3, 64, 64)
    outputs = model({"video": video, "batch_size": 2})  # OCL's global step is 0: 2 of the 5 slots
    assert outputs["processor"]["objects"].shape[2] == 2
    model.eval()
    with torch.no_grad():
        assert model({"video": video, "batch_size": 2})["processor"]["objects"].shape[2] == 5


def run_script(name: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SRL_DATA_ROOT": str(cwd / "data"), "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run([str(SCRIPTS / name), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("method", ["srl", "slotcontrast", "videosaur"])
def test_ocl_train_then_ocl_eval_and_srl_eval_agree_and_share_the_leaderboard(method: str, tmp_path: Path) -> None:
    # float32 training: ocl_eval scores under the training precision, srl-eval in float32 (docs/OCL.md)
    run_script("ocl_train", [f"+experiment={method}/synthetic", "trainer.max_steps=2", "trainer.precision=32-true",
                             *TINY_DATA], tmp_path)
    (run_dir,) = (tmp_path / "outputs" / method / "synthetic").iterdir()
    assert (run_dir / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    saved = OmegaConf.load(run_dir / "config" / "config.yaml")  # self-contained: every value is in it
    assert saved.experiment.method == method and saved.experiment.data.batch_size == 4
    assert "encoder_mlp" in saved.models and "${experiment.model.slot_dim}" in str(saved.models.encoder_mlp)
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
    assert records[0]["step"] == 2 and records[0]["method"] == method and records[0]["global_batch"] == 4
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


@pytest.mark.slow
def test_mixed_ocl_and_srl_parts_train_through_ocl_train(tmp_path: Path) -> None:
    config = compose_ocl("mix/srl_ocl_parts")
    assert config.models.initializer._target_ == "routed.ocl.conditioning.LearntConditioning"
    assert set(config.models.initializer) == {"_target_", "object_dim", "n_slots", "batch_size_path"}
    assert config.losses.loss_recon._target_ == "routed.ocl.losses.ReconstructionLoss"
    assert list(config.models)[:4] == ["backbone", "encoder_mlp", "initializer", "processor"]
    run_script("ocl_train", ["+experiment=mix/srl_ocl_parts", "trainer.max_steps=2", *TINY_DATA], tmp_path)
    (run_dir,) = (tmp_path / "outputs" / "mix" / "srl_ocl_parts").iterdir()
    checkpoint = torch.load(run_dir / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt",
                            map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 2 and "models.initializer.slots" in checkpoint["state_dict"]
    run_script("ocl_eval", [f"train_config_path={run_dir / 'config' / 'config.yaml'}"], tmp_path)
    report = json.loads((run_dir / "metrics.json").read_text())["metrics"]["val"]
    assert report["num_videos"] == 8 and -1.0 <= report["video_fg_ari"] <= 1.0  # adjusted index: < 0 near chance


@pytest.mark.slow
def test_ocl_train_runs_slotcurri_through_its_slot_splits(tmp_path: Path) -> None:
    run_script("ocl_train", ["+experiment=slotcurri/synthetic", "trainer.max_steps=12",
                             "experiment.model.schedule_steps=40", *TINY_DATA], tmp_path)
    (run_dir,) = (tmp_path / "outputs" / "slotcurri" / "synthetic").iterdir()
    checkpoint = run_dir / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["global_step"] == 12
    errors = state["state_dict"]["models.initializer.slot_errors"]
    assert (errors[:2] > 0).all() and torch.isfinite(state["state_dict"]["models.initializer.slots"]).all()


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
