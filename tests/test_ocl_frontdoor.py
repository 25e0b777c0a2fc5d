"""The OCL front door without OCL: search-path plugin, the experiments' config source and configs, the OCL-only
parts, data wrapper, LR schedule, compat, errors in OCL's syntax.

The tests that need OCL itself live in tests/test_ocl_integration.py and skip when it is not importable.
"""
from __future__ import annotations

import importlib
import importlib.resources
import math
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
from hydra.core.object_type import ObjectType
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

from srl_plugin import metrics
from srl_plugin.losses import FeatureReconstructionLoss, per_slot_reconstruction_error
from srl_plugin.models import CurriculumLearnedInit, FrozenViTBackbone
from srl_plugin.ocl import compat
from srl_plugin.ocl.data import BatchSizeLoader, OCLVideoDataModule, add_batch_size
from srl_plugin.ocl.experiments import (
    SCHEME,
    StandaloneExperimentSource,
    experiment_fragment,
    standalone_run_config,
)
from srl_plugin.ocl.parts import CurriculumErrors, EvalMasks, FrozenFeatureExtractor
from srl_plugin.ocl.scheduling import exp_decay_with_warmup
from srl_plugin.runtime import build_backbone, compose_experiment, resolved_container
from srl_plugin.training.schedule import exp_decay_with_warmup_factor

METHODS = ("srl", "slotcontrast", "videosaur", "slotcurri", "ssync")
DATASETS = ("movi_c", "movi_e", "ytvis2021", "synthetic")
OCL_EXPERIMENTS = importlib.resources.files("srl_plugin") / "configs" / "ocl" / "experiment"
TINY_VIT = {"model_name": "vit_small_patch14_dinov2.lvd142m", "input_size": 16, "pretrained": False,
            "allow_random_init": True, "model_kwargs": {"img_size": 16, "patch_size": 8, "embed_dim": 12,
                                                        "depth": 1, "num_heads": 2}}
TINY_VIT_NODE = {"_target_": "srl_plugin.models.FrozenViTBackbone", **TINY_VIT}


def ocl_config_files() -> list[Path]:
    return sorted(Path(str(OCL_EXPERIMENTS)).rglob("*.yaml"))


def targets(node: object) -> list[str]:
    """Every ``_target_`` in a YAML tree."""
    if isinstance(node, dict):
        found = [node["_target_"]] if "_target_" in node else []
        return found + [target for value in node.values() for target in targets(value)]
    if isinstance(node, list):
        return [target for value in node for target in targets(value)]
    return []


def import_target(target: str) -> object:
    """The object a Hydra ``_target_`` names (``routed.<module>.<Class>`` names ``<module>.<Class>``)."""
    path = target.removeprefix("routed.")
    module_name, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


# --- search-path plugin -------------------------------------------------------------------------------


def plugin_class() -> type[SearchPathPlugin]:
    plugins = Plugins.instance().discover(SearchPathPlugin)
    found = [cls for cls in plugins if cls.__name__ == "SRLPluginSearchPathPlugin"]
    assert len(found) == 1, "hydra did not discover hydra_plugins/srl_plugin_searchpath (reinstall the package)"
    return found[0]


def test_plugin_is_discovered_from_the_hydra_plugins_namespace() -> None:
    assert plugin_class().__module__ == "hydra_plugins.srl_plugin_searchpath.srl_searchpath"
    assert not (Path(importlib.import_module("hydra_plugins").__path__[0]) / "__init__.py").exists()


def test_plugin_appends_the_ocl_configs_only_inside_ocl_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = plugin_class()()
    search_path = ConfigSearchPathImpl()
    monkeypatch.delitem(sys.modules, "ocl", raising=False)
    plugin.manipulate_search_path(search_path)
    assert [entry.path for entry in search_path.get_path()] == []

    monkeypatch.setitem(sys.modules, "ocl", types.ModuleType("ocl"))
    plugin.manipulate_search_path(search_path)
    assert [(entry.provider, entry.path) for entry in search_path.get_path()] == [
        ("srl-plugin", "pkg://srl_plugin.configs.ocl"), ("srl-plugin", f"{SCHEME}://")
    ]
    assert OmegaConf.has_resolver("srl_if")  # the model configs' resolvers, for OCL's composition


def test_ocl_config_package_is_a_hydra_config_source() -> None:
    from hydra._internal.core_plugins.importlib_resources_config_source import ImportlibResourcesConfigSource

    source = ImportlibResourcesConfigSource(provider="test", path="pkg://srl_plugin.configs.ocl")
    assert source.available()
    assert source.is_group("experiment/srl")
    for method in METHODS:
        for dataset in DATASETS:
            assert source.is_config(f"experiment/{method}/{dataset}"), f"{method}/{dataset}"
    assert source.is_config("experiment/mix/srl_ocl_parts")


# --- the experiments' config source -------------------------------------------------------------------


def test_experiment_source_serves_every_standalone_experiment() -> None:
    source = StandaloneExperimentSource(provider="test", path=f"{SCHEME}://")
    assert source.available() and source.is_group("srl_experiment") and source.is_group("srl_experiment/srl")
    assert source.list("", None) == ["srl_experiment"]
    assert set(METHODS) <= set(source.list("srl_experiment", ObjectType.GROUP))
    assert source.list("srl_experiment/srl", ObjectType.CONFIG) == sorted(DATASETS)
    assert source.is_config("srl_experiment/videosaur/ytvis2021") and not source.is_config("srl_experiment/srl/nope")
    loaded = source.load_config("srl_experiment/srl/movi_c.yaml")
    assert loaded.header["package"] == "_global_" and loaded.config.experiment.method == "srl"
    with pytest.raises(Exception, match="no experiment config"):
        source.load_config("srl_experiment/srl/nope")


@pytest.mark.parametrize("name", ["srl/movi_c", "videosaur/ytvis2021", "slotcurri/synthetic", "ssync/movi_e"])
def test_fragment_holds_every_value_and_the_shared_wiring(name: str, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SRL_DATA_ROOT", raising=False)
    fragment = experiment_fragment(name)
    composed = compose_experiment(name)
    expected = resolved_container(composed)
    assert set(fragment) == {"experiment", "models", "losses"}
    for key in ("models", "losses", "experiment", "global_batch"):
        expected.pop(key)
    expected["data"]["root"] = str(tmp_path / expected["data"]["root"])  # relative roots made absolute
    assert fragment["experiment"] == expected  # every value written out: nothing to look up later
    assert fragment["models"] == OmegaConf.to_container(composed.models)  # the shared part files as written
    assert fragment["losses"] == OmegaConf.to_container(composed.losses)
    text = yaml.safe_dump(fragment)
    assert "${experiment.model." in text and "\\${" not in text and "srl_standalone" not in text


def test_standalone_run_config_round_trips_the_standalone_composition(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    fragment = experiment_fragment("srl/synthetic")
    ocl_config = {**fragment, "models": {"backbone": {"_target_": "x"}, **fragment["models"], "eval_masks": {}}}
    ocl_config["experiment"]["callbacks"] = {"fields": {"saved_config": "${hydra:runtime.output_dir}"}}
    run = standalone_run_config(ocl_config)
    expected = resolved_container(compose_experiment("srl/synthetic", [f"data.root={tmp_path}/data/synthetic"]))
    assert run == expected


def test_standalone_run_config_refuses_other_ocl_configs() -> None:
    with pytest.raises(ValueError, match="not an OCL config of srl-plugin"):
        standalone_run_config({"experiment": {"callbacks": {}}, "models": {}, "losses": {}})


# --- configs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ocl_config_files(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_ocl_config_is_valid_yaml_with_importable_plugin_targets(path: Path) -> None:
    text = path.read_text()
    header = text.splitlines()[0]
    assert header in ("# @package _global_", "# @package hydra")
    assert "srl_standalone" not in text and "MethodModel" not in text and "LossTerm" not in text
    for target in targets(yaml.safe_load(text)):
        module = target.removeprefix("routed.").split(".")[0]
        if module in ("ocl", "pytorch_lightning"):
            continue  # OCL's own classes (checked by tests/test_ocl_integration.py)
        obj = import_target(target)
        assert callable(obj), target
        if target.startswith("routed."):
            assert isinstance(obj, type), f"{target}: routed targets must be classes"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_each_ocl_experiment_includes_its_standalone_experiment(method: str, dataset: str) -> None:
    config = yaml.safe_load((Path(str(OCL_EXPERIMENTS)) / method / f"{dataset}.yaml").read_text())
    method_parts = ["/experiment/slotcurri/_curriculum"] if method == "slotcurri" else []
    assert config["defaults"] == ["/experiment/_srl_plugin_base", f"/srl_experiment/{method}/{dataset}",
                                  *method_parts, "/experiment/_srl_plugin_eval", "_self_"]


# --- OCL-only parts ---------------------------------------------------------------------------------


def test_feature_extractor_is_the_standalone_backbone_and_passes_cached_features_through() -> None:
    torch.manual_seed(0)
    extractor = FrozenFeatureExtractor(backbone={**TINY_VIT_NODE, "return_keys": True})
    backbone = FrozenViTBackbone(**TINY_VIT, return_keys=True)
    backbone.load_state_dict(extractor.state_dict())  # same parameter names as the standalone backbone
    assert extractor.train().model.training is False  # frozen: stays in eval mode
    video = torch.randn(2, 3, 3, 16, 16)
    out = extractor(video=video)
    expected = backbone(video)
    torch.testing.assert_close(out["backbone_features"], expected["backbone_features"])
    assert out["features"] is out["backbone_features"] and out["aux_features"]["keys"] is out["backbone_keys"]
    cached = torch.randn(2, 3, 4, 12)
    passed = extractor(backbone_features=cached)
    torch.testing.assert_close(passed["backbone_features"], cached)
    with pytest.raises(ValueError, match="input.video or input.backbone_features"):
        extractor()


def test_feature_extractor_builds_the_backbone_its_config_names() -> None:
    """The shipped patch_pixels backbone node (not a ViT) gives the standalone backbone's features and sizes."""
    node = resolved_container(compose_experiment("srl/synthetic", ["backbone=patch_pixels"]))["model"]["backbone"]
    extractor = FrozenFeatureExtractor(backbone={**node, "return_keys": True})
    backbone = build_backbone({"model": {"backbone": node}})
    assert type(backbone).__name__ == "PatchPixelBackbone"
    assert (extractor.feature_dim, extractor.num_patches) == (backbone.feature_dim, backbone.num_patches)
    assert extractor.state_dict().keys() == backbone.state_dict().keys()
    video = torch.randn(2, 3, 3, backbone.input_size, backbone.input_size)
    out = extractor(video=video)
    torch.testing.assert_close(out["features"], backbone(video)["backbone_features"], rtol=0, atol=0)
    assert out["features"].shape == (2, 3, backbone.num_patches, backbone.feature_dim)
    assert out["aux_features"]["keys"] is out["backbone_keys"]
    with pytest.raises(ValueError, match="needs a _target_"):
        FrozenFeatureExtractor(backbone=TINY_VIT)


def test_missing_weights_name_the_ocl_override(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="experiment.model.backbone.weights_path=/abs/path"):
        FrozenFeatureExtractor(backbone={**TINY_VIT_NODE, "weights_path": str(tmp_path / "absent.safetensors")})


def test_eval_masks_are_the_decoder_masks_upsampled_to_the_ground_truth() -> None:
    soft = torch.rand(3, 4, 5, 16).softmax(dim=2)
    true = torch.nn.functional.one_hot(torch.randint(0, 3, (3, 4, 8, 6)), 3).permute(0, 1, 4, 2, 3).float()
    part = EvalMasks(num_patches=16)
    out = part(soft, true)
    torch.testing.assert_close(out["hard_masks"], metrics.hard_masks_from_soft(soft, (8, 6)))
    torch.testing.assert_close(out["mask_grid"].flatten(-2), soft)
    assert out["true_masks"] is not true and torch.equal(out["true_masks"], true)
    assert out["videos"].item() == 3 and out["chunks"].item() == 3
    chunked = part(soft, true, chunk_index=torch.tensor([0, 1, 0]), padding=torch.tensor([False, False, True]))
    assert chunked["videos"].item() == 1 and chunked["chunks"].item() == 2 and chunked["hard_masks"].shape[0] == 2
    assert set(part(soft)) == {"mask_grid"}  # training batches carry no ground truth
    with pytest.raises(ValueError, match="perfect square"):
        EvalMasks(num_patches=15)


def test_curriculum_errors_are_recorded_at_the_step_before_a_split() -> None:
    conditioning = CurriculumLearnedInit(num_slots=4, slot_dim=3, schedule_steps=40)  # splits at 4 and 10
    recon, target = torch.randn(2, 3, 16, 6), torch.randn(2, 3, 16, 6)
    masks = torch.rand(2, 3, 2, 16).softmax(dim=2)
    part = CurriculumErrors()
    part(conditioning, recon, target, masks, global_step=2)
    assert conditioning.slot_errors.abs().sum() == 0
    part(conditioning, recon, target, masks, global_step=3)
    torch.testing.assert_close(conditioning.slot_errors[:2], per_slot_reconstruction_error(recon, target, masks))
    conditioning.slot_errors.zero_()
    part.eval()(conditioning, recon, target, masks, global_step=3)
    assert conditioning.slot_errors.abs().sum() == 0


def test_losses_are_not_computed_in_eval_mode() -> None:
    loss = FeatureReconstructionLoss(weight=2.0)
    recon, target = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(loss(recon, target, global_step=0), 2.0 * loss.loss(recon, target))
    assert torch.isnan(loss.eval()(recon, target, global_step=0))


# --- data ---------------------------------------------------------------------------------------------


def data_config(name: str, *overrides: str) -> dict:
    run = resolved_container(compose_experiment(name, list(overrides)))
    return {key: run[key] for key in ("method", "dataset", "seed", "features", "cache", "data", "evaluation", "model")}


def test_batch_size_is_added_to_every_batch() -> None:
    batches = [{"video": torch.zeros(3, 2, 3, 4, 4)}, {"backbone_features": torch.zeros(5, 2, 4, 8)}]
    loader = BatchSizeLoader(batches)
    assert len(loader) == 2
    assert [batch["batch_size"] for batch in loader] == [3, 5]
    with pytest.raises(KeyError, match="none of"):
        add_batch_size({"masks": torch.zeros(1)})


def test_ocl_datamodule_serves_ocl_eval_without_a_trainer(tmp_path: Path) -> None:
    overrides = [f"data.root={tmp_path}", "data.synthetic.train_videos=2", "data.synthetic.val_videos=3",
                 "data.synthetic.frames=4", "data.val_size=3"]
    datamodule = OCLVideoDataModule(data_config("srl/synthetic", *overrides), eval_batch_size=2)
    batches = list(datamodule.val_dataloader())  # generates the data itself: ocl_eval calls no prepare_data
    assert [batch["batch_size"] for batch in batches] == [2, 1]
    assert batches[0]["video"].shape[:2] == (2, 4) and batches[0]["masks"].shape[:2] == (2, 4)


def test_lr_schedule_is_the_standalone_schedule_in_ocl_form() -> None:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    out = exp_decay_with_warmup(optimizer, warmup_steps=3, decay_steps=10, decay_rate=0.5)
    assert out["lr_scheduler"]["interval"] == "step"
    scheduler = out["lr_scheduler"]["scheduler"]
    for step in range(8):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(exp_decay_with_warmup_factor(step, 3, 10, 0.5))
        optimizer.step()
        scheduler.step()


# --- compat -----------------------------------------------------------------------------------------


def test_compat_does_nothing_without_ocl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "ocl", raising=False)
    monkeypatch.setattr(compat.importlib.util, "find_spec", lambda name: None)  # as where OCL is not installed
    assert compat.apply_if_ocl_installed() == []
    assert "ocl" not in sys.modules


def test_module_alias_adds_attributes_and_forwards_the_rest() -> None:
    alias = compat._ModuleWithAliases(math, NaN=float("nan"))
    assert math.isnan(alias.NaN) and alias.pi == math.pi and not hasattr(math, "NaN")


# --- errors in OCL's terms ------------------------------------------------------------------------------


def test_missing_shards_name_the_ocl_override(tmp_path: Path) -> None:
    from srl_plugin.data.shards import MissingShardsError

    datamodule = OCLVideoDataModule(data_config("srl/movi_c", f"data.root={tmp_path}"))
    with pytest.raises(MissingShardsError, match="experiment.data.root=/abs/path/to/the/shards"):
        datamodule.val_dataloader()
