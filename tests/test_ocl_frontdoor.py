"""The OCL front door without OCL: search-path plugin, configs, adapters, metrics, data wrapper, resolver.

The tests that need OCL itself live in tests/test_ocl_integration.py and skip when it is not importable.
"""
from __future__ import annotations

import importlib
import importlib.resources
import math
import re
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
from hydra.core.global_hydra import GlobalHydra
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra.utils import instantiate
from omegaconf import OmegaConf

from srl_plugin import metrics
from srl_plugin.models import SRLModel
from srl_plugin.ocl import compat, standalone
from srl_plugin.ocl.data import BatchSizeLoader, add_batch_size
from srl_plugin.ocl.modules import LossTerm, MethodModel
from srl_plugin.ocl.scheduling import exp_decay_with_warmup
from srl_plugin.training.schedule import exp_decay_with_warmup_factor

METHODS = ("srl", "slotcontrast", "videosaur", "slotcurri", "ssync")
DATASETS = ("movi_c", "movi_e", "ytvis2021", "synthetic")
OCL_EXPERIMENTS = importlib.resources.files("srl_plugin") / "configs" / "ocl" / "experiment"


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
        ("srl-plugin", "pkg://srl_plugin.configs.ocl")
    ]
    assert OmegaConf.has_resolver(standalone.RESOLVER_NAME)


def test_ocl_config_package_is_a_hydra_config_source() -> None:
    from hydra._internal.core_plugins.importlib_resources_config_source import ImportlibResourcesConfigSource

    source = ImportlibResourcesConfigSource(provider="test", path="pkg://srl_plugin.configs.ocl")
    assert source.available()
    assert source.is_group("experiment/srl")
    for method in METHODS:
        for dataset in DATASETS:
            assert source.is_config(f"experiment/{method}/{dataset}"), f"{method}/{dataset}"


# --- configs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ocl_config_files(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_ocl_config_is_valid_yaml_with_importable_plugin_targets(path: Path) -> None:
    text = path.read_text()
    header = text.splitlines()[0]
    assert header in ("# @package _global_", "# @package hydra")
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
def test_each_ocl_experiment_names_its_standalone_experiment_and_loss_terms(method: str, dataset: str) -> None:
    config = yaml.safe_load((Path(str(OCL_EXPERIMENTS)) / method / f"{dataset}.yaml").read_text())
    assert config["experiment"]["srl"]["name"] == f"{method}/{dataset}"
    assert config["defaults"] == ["/experiment/_srl_plugin_base", f"/experiment/{method}/_losses", "_self_"]
    model_node = standalone.standalone_value(f"{method}/{dataset}", "model")
    model = instantiate({**model_node, "backbone": None})
    losses = yaml.safe_load((Path(str(OCL_EXPERIMENTS)) / method / "_losses.yaml").read_text())["losses"]
    assert {node["term"] for node in losses.values()} == set(model.loss_weights)
    assert set(losses) == set(model.loss_weights)


def test_every_standalone_key_the_base_config_reads_exists() -> None:
    text = (Path(str(OCL_EXPERIMENTS)) / "_srl_plugin_base.yaml").read_text()
    keys = sorted(set(re.findall(r"\$\{srl_standalone:([A-Za-z0-9_.]+)\}", text)))
    assert "optimizer.lr" in keys and "model" not in keys
    for method in METHODS:
        for dataset in DATASETS:
            config = standalone.standalone_config(f"{method}/{dataset}")
            for key in keys:
                assert OmegaConf.select(config, key, default="<absent>") != "<absent>", f"{method}/{dataset}: {key}"


# --- resolver and standalone builders ----------------------------------------------------------------


def test_standalone_values_match_the_standalone_composition() -> None:
    with initialize_config_dir(config_dir=str(importlib.resources.files("srl_plugin") / "configs"), version_base=None):
        expected = compose("train", overrides=["experiment=srl/movi_c", "optimizer.lr=0.001"])
    assert standalone.standalone_value("srl/movi_c", "optimizer.lr", ["optimizer.lr=0.001"]) == 0.001
    assert standalone.standalone_value("srl/movi_c", "model") == OmegaConf.to_container(expected.model, resolve=True)
    assert standalone.standalone_value("srl/movi_c", "scheduler.decay_steps") == expected.trainer.max_steps
    with pytest.raises(KeyError, match="no key 'optimizer.nope'"):
        standalone.standalone_value("srl/movi_c", "optimizer.nope")
    with pytest.raises(ValueError, match="Hydra override strings"):
        standalone.standalone_value("srl/movi_c", "optimizer.lr", "optimizer.lr=0.1")


def test_resolver_reads_the_experiment_named_in_the_config() -> None:
    standalone.register_resolver()
    config = OmegaConf.create({
        "experiment": {"srl": {"name": "slotcontrast/movi_e", "overrides": ["model.num_slots=9"]}},
        "slots": "${srl_standalone:model.num_slots}",
        "lr": "${srl_standalone:optimizer.lr}",
    })
    assert config.slots == 9
    assert config.lr == standalone.standalone_value("slotcontrast/movi_e", "optimizer.lr")
    with pytest.raises(Exception, match="needs experiment.srl.name"):
        OmegaConf.create({"x": "${srl_standalone:optimizer.lr}"}).x


def test_standalone_composition_leaves_a_running_hydra_app_intact() -> None:
    configs = str(importlib.resources.files("srl_plugin") / "configs")
    with initialize_config_dir(config_dir=configs, version_base=None):
        running = GlobalHydra.instance().hydra
        standalone.standalone_config("videosaur/ytvis2021", ["seed=123"])
        assert GlobalHydra.instance().hydra is running
        assert compose("train", overrides=["experiment=srl/synthetic"]).method == "srl"


def test_build_model_uses_the_standalone_model_node() -> None:
    overrides = ["model.num_slots=4"]
    model = standalone.build_model("srl/synthetic", overrides)
    assert isinstance(model, SRLModel) and model.num_slots == 4
    assert model.loss_weights["loss_sc"] == standalone.standalone_value("srl/synthetic", "model.sc_weight")


def test_a_saved_experiment_is_read_instead_of_the_installed_configs(tmp_path: Path) -> None:
    from srl_plugin.ocl.saved_config import EmbedStandaloneConfig
    from srl_plugin.runtime import resolved_container

    run = tmp_path / "run"
    (run / "config").mkdir(parents=True)
    composed = {"experiment": {"srl": {"name": "srl/synthetic", "overrides": ["model.num_slots=4"], "config": None}},
                "lr": "${srl_standalone:optimizer.lr}"}
    (run / "config" / "config.yaml").write_text(yaml.safe_dump(composed))
    hydra_node = {"hydra": {"output_subdir": "config", "runtime": {"output_dir": str(run)}}}
    EmbedStandaloneConfig().on_job_start(OmegaConf.create(hydra_node))
    saved = OmegaConf.load(run / "config" / "config.yaml")
    assert saved.experiment.srl.config == resolved_container(
        standalone.run_config("srl/synthetic", ["model.num_slots=4"]))

    # The saved experiment wins over the installed configs: change it and the run follows.
    saved.experiment.srl.config.optimizer.lr = 0.125
    saved.experiment.srl.config.model.num_slots = 3
    standalone.register_resolver()
    assert saved.lr == 0.125
    model = standalone.build_model("srl/synthetic", config=saved.experiment.srl.config)
    assert model.num_slots == 3


def test_build_datamodule_builds_what_srl_train_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from srl_plugin.cache.experiment import build_cached_datamodule
    from srl_plugin.data.datamodule import VideoDataModule

    monkeypatch.chdir(tmp_path)
    odd_root = "rel dir/it's"
    overrides = [f"data.root={standalone._quoted(odd_root)}"]
    datamodule = standalone.build_datamodule("srl/synthetic", overrides, eval_batch_size=3)
    assert isinstance(datamodule, VideoDataModule)
    assert datamodule.root == str(tmp_path / "rel dir" / "it's") and datamodule.val_batch_size == 3
    assert datamodule.batch_size == standalone.standalone_value("srl/synthetic", "data.batch_size")
    cached_overrides = ["features=cached", f"data.root={tmp_path}"]
    cached = standalone.build_datamodule("srl/synthetic", cached_overrides)
    expected = build_cached_datamodule(standalone.standalone_config("srl/synthetic", cached_overrides))
    assert type(cached) is type(expected)


def test_relative_data_root_is_taken_from_the_start_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert standalone._absolute_data_root("data/x") == str(tmp_path / "data" / "x")
    assert standalone._absolute_data_root("/abs/x") == "/abs/x"


# --- adapters ---------------------------------------------------------------------------------------


def tiny_srl(**kwargs) -> SRLModel:
    defaults = dict(backbone=None, feature_dim=16, num_slots=3, slot_dim=8, num_patches=16,
                    decoder_hidden_dims=(16,), topk_enc=2, redundancy_k=2, group_frames=2)
    return SRLModel(**{**defaults, **kwargs})


def test_method_model_returns_the_models_outputs_and_weighted_losses() -> None:
    torch.manual_seed(0)
    model = tiny_srl(dec_window={"start": 0, "end": None, "start_inclusive": False, "end_inclusive": False})
    adapter = MethodModel(model)
    features = torch.randn(2, 4, 16, 16)
    out = adapter(backbone_features=features, global_step=5)
    torch.manual_seed(0)
    reference = tiny_srl(dec_window={"start": 0, "end": None, "start_inclusive": False, "end_inclusive": False})
    expected = reference.forward_features(features)
    expected_losses = reference.compute_losses(expected, global_step=5)
    torch.testing.assert_close(out["slots"], expected["slots"])
    torch.testing.assert_close(out["eval_masks"], reference.eval_masks(expected))
    assert out["mask_grid"].shape == (2, 4, 3, 4, 4)
    torch.testing.assert_close(out["mask_grid"].flatten(-2), out["eval_masks"])
    active = {"loss_recon", "loss_sc", "loss_reg", "loss_cl_dec"}
    assert set(out["weighted_losses"]) == set(reference.active_losses(5)) == active
    torch.testing.assert_close(sum(out["weighted_losses"].values()), expected_losses["total"])
    assert out["loss_names"] == ("loss_recon", "loss_sc", "loss_reg", "loss_cl_dec", "loss_cl_enc")


def test_method_model_computes_no_losses_in_eval_mode() -> None:
    adapter = MethodModel(tiny_srl()).eval()
    out = adapter(backbone_features=torch.randn(1, 3, 16, 16), global_step=0)  # T=3: frame groups of 2 do not fit
    assert out["losses"] == {}
    assert set(out["weighted_losses"]) == set(out["loss_names"])
    assert all(torch.isnan(value) for value in out["weighted_losses"].values())
    assert torch.isnan(LossTerm("loss_sc")(out["weighted_losses"], out["loss_names"]))


def test_method_model_evaluates_like_srl_eval_with_chunks_and_streaming() -> None:
    torch.manual_seed(0)
    model = tiny_srl().eval()
    features = torch.randn(2, 5, 16, 16)
    labels = torch.randint(0, 3, (2, 5, 8, 8))
    masks = torch.nn.functional.one_hot(labels, 3).permute(0, 1, 4, 2, 3).float()
    with torch.no_grad():
        chunked = MethodModel(model, independent_chunks=2).eval()(backbone_features=features, masks=masks)
        clips = torch.stack([features[:, :2], features[:, 2:4]], dim=1).flatten(0, 1)  # (B * 2, 2, N, D_f)
        torch.testing.assert_close(chunked["eval_masks"], model.eval_masks(model.forward_features(clips)))
        torch.testing.assert_close(chunked["eval_true_masks"],
                                   torch.stack([masks[:, :2], masks[:, 2:4]], dim=1).flatten(0, 1))
        streamed = MethodModel(model, stream_frames=2).eval()(backbone_features=features, masks=masks)
        whole = MethodModel(model).eval()(backbone_features=features, masks=masks)
    torch.testing.assert_close(streamed["eval_masks"], whole["eval_masks"])
    assert whole["eval_true_masks"] is masks and "slots" in whole and "slots" not in streamed
    assert "eval_true_masks" not in MethodModel(model)(backbone_features=features)


def test_method_model_needs_frames_or_features_and_a_method_model() -> None:
    with pytest.raises(KeyError, match="needs 'video' or 'backbone_features'"):
        MethodModel(tiny_srl())()
    with pytest.raises(TypeError, match="lacks"):
        MethodModel(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="independent_chunks must be a positive int"):
        MethodModel(tiny_srl(), independent_chunks=0)


def test_loss_term_picks_its_term_or_zero_outside_its_window() -> None:
    weighted = {"loss_recon": torch.tensor(2.0), "loss_sc": torch.tensor(0.5)}
    names = ("loss_recon", "loss_sc", "loss_reg")
    assert LossTerm("loss_sc")(weighted, names).item() == 0.5
    zero = LossTerm("loss_reg")(weighted, names)
    assert zero.shape == () and zero.item() == 0.0
    with pytest.raises(ValueError, match="not a loss of the model"):
        LossTerm("loss_typo")(weighted, names)


def test_hard_eval_masks_are_the_soft_masks_upsampled_to_the_ground_truth() -> None:
    model = tiny_srl().eval()
    features = torch.randn(2, 3, 16, 16)
    masks = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 3, 8, 6)), 3).permute(0, 1, 4, 2, 3).float()
    with torch.no_grad():
        out = MethodModel(model).eval()(backbone_features=features, masks=masks)
    torch.testing.assert_close(out["eval_hard_masks"], metrics.hard_masks_from_soft(out["eval_masks"], (8, 6)))
    assert out["eval_hard_masks"].shape == (2, 3, 3, 8, 6) and out["eval_videos"].item() == 2
    with torch.no_grad():
        chunked = MethodModel(model, independent_chunks=1).eval()(backbone_features=features, masks=masks)
    assert chunked["eval_videos"].item() == 2 and chunked["eval_chunks"].item() == 6


def test_batch_size_is_added_to_every_batch() -> None:
    batches = [{"video": torch.zeros(3, 2, 3, 4, 4)}, {"backbone_features": torch.zeros(5, 2, 4, 8)}]
    loader = BatchSizeLoader(batches)
    assert len(loader) == 2
    assert [batch["batch_size"] for batch in loader] == [3, 5]
    with pytest.raises(KeyError, match="none of"):
        add_batch_size({"masks": torch.zeros(1)})


def test_ocl_datamodule_serves_ocl_eval_without_a_trainer(tmp_path: Path) -> None:
    from srl_plugin.ocl.data import OCLVideoDataModule

    overrides = [f"data.root={tmp_path}", "data.synthetic.train_videos=2", "data.synthetic.val_videos=3",
                 "data.synthetic.frames=4", "data.val_size=3"]
    datamodule = OCLVideoDataModule("srl/synthetic", overrides, eval_batch_size=2)
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


def test_missing_weights_name_the_ocl_override(tmp_path: Path) -> None:
    overrides = [f"model.backbone.weights_path={tmp_path / 'absent.safetensors'}", "model.num_slots=5"]
    with pytest.raises(FileNotFoundError) as raised:
        standalone.build_model("srl/movi_c", overrides)
    assert (
        "ocl_train +experiment=srl/movi_c \"experiment.srl.overrides=['model.num_slots=5',"
        "'model.backbone.weights_path=/abs/path/to/weights.safetensors']\""
    ) in str(raised.value)


def test_missing_shards_name_the_ocl_override(tmp_path: Path) -> None:
    from srl_plugin.data.shards import MissingShardsError
    from srl_plugin.ocl.data import OCLVideoDataModule

    datamodule = OCLVideoDataModule("srl/movi_c", [f"data.root={tmp_path}"])
    with pytest.raises(MissingShardsError) as raised:
        datamodule.val_dataloader()
    assert (
        "ocl_train +experiment=srl/movi_c \"experiment.srl.overrides=['data.root=/abs/path/to/the/shards']\""
    ) in str(raised.value)
