"""Every experiment config composes with the layout other parts rely on, carries the published
hyperparameters (docs/METHODS.md §1.12, §2.1, §3.1, §4.1, §4.8, §10.1) and instantiates."""
from __future__ import annotations

import importlib.resources
from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from srl_plugin.runtime import build_model, compose_config, compose_experiment, resolved_container
from srl_plugin.training.config_checks import check_training_config
from srl_plugin.training.runner import build_strategy, world_size

METHODS = ("srl", "slotcontrast", "videosaur", "slotcurri", "ssync")
DATASETS = ("movi_c", "movi_e", "ytvis2021", "synthetic")
EXPERIMENTS = [f"{method}/{dataset}" for method in METHODS for dataset in DATASETS]
REAL = [name for name in EXPERIMENTS if not name.endswith("synthetic")]
MODEL_CLASSES = {
    "srl": "srl_plugin.models.SRLModel",
    "slotcontrast": "srl_plugin.models.SlotContrastModel",
    "videosaur": "srl_plugin.models.VideoSAURModel",
    "slotcurri": "srl_plugin.models.SlotCurriModel",
    "ssync": "srl_plugin.models.SSyncModel",
}
DATA_KEYS = {
    "_target_", "train_shards", "val_shards", "root", "dataset_type", "input_size", "mask_size", "num_classes",
    "chunk_size", "batch_size", "val_batch_size", "num_workers", "shuffle_buffer", "h_flip_prob", "val_size",
    "skip_bad_samples", "short_videos", "seed", "synthetic",
}
BACKBONE_KEYS = {
    "_target_", "model_name", "input_size", "pretrained", "weights_path", "allow_random_init", "return_keys",
    "model_kwargs",
}
TRAINER_KEYS = {
    "max_steps", "precision", "gradient_clip_val", "accelerator", "devices", "num_nodes", "strategy",
    "val_check_interval", "log_every_n_steps",
}

# (backbone, input, N, D_f, K, D, batch, lr, steps, precision, flip, val batch, mask size) per docs/METHODS.md.
PUBLISHED: dict[str, tuple[Any, ...]] = {
    "srl/movi_c": ("vit_small_patch14_dinov2.lvd142m", 336, 576, 384, 11, 64, 64, 8e-4, 100000, "16-mixed", 0.5, 16, 336),
    "srl/movi_e": ("vit_base_patch14_dinov2.lvd142m", 336, 576, 768, 15, 128, 64, 8e-4, 300000, "16-mixed", 0.5, 4, 336),
    "srl/ytvis2021": ("vit_base_patch14_dinov2.lvd142m", 518, 1369, 768, 7, 64, 64, 8e-4, 100000, "16-mixed", 0.0, 1, 518),
    "slotcontrast/movi_c": ("vit_small_patch14_dinov2.lvd142m", 336, 576, 384, 11, 64, 64, 4e-4, 100000, "32-true", 0.5, 16, 336),
    "slotcontrast/movi_e": ("vit_base_patch14_dinov2.lvd142m", 336, 576, 768, 15, 128, 64, 4e-4, 300000, "32-true", 0.5, 4, 336),
    "slotcontrast/ytvis2021": ("vit_base_patch14_dinov2.lvd142m", 518, 1369, 768, 7, 64, 64, 8e-4, 100000, "32-true", 0.0, 1, 518),
    "videosaur/movi_c": ("vit_base_patch8_224.dino", 224, 784, 768, 11, 128, 128, 4e-4, 100000, "32-true", 0.5, 16, 224),
    "videosaur/movi_e": ("vit_base_patch8_224.dino", 224, 784, 768, 15, 128, 128, 4e-4, 100000, "32-true", 0.5, 16, 224),
    "videosaur/ytvis2021": ("vit_base_patch16_224.dino", 224, 196, 768, 7, 64, 128, 4e-4, 100000, "32-true", 0.5, 16, 224),
    "slotcurri/movi_c": ("vit_small_patch14_dinov2.lvd142m", 336, 576, 384, 11, 64, 64, 8e-4, 100000, "16-mixed", 0.5, 16, 336),
    "slotcurri/movi_e": ("vit_base_patch14_dinov2.lvd142m", 336, 576, 768, 15, 128, 64, 8e-4, 300000, "16-mixed", 0.5, 4, 336),
    "slotcurri/ytvis2021": ("vit_base_patch14_dinov2.lvd142m", 518, 1369, 768, 7, 64, 32, 8e-4, 100000, "16-mixed", 0.0, 1, 518),
    "ssync/movi_c": ("vit_small_patch14_dinov2.lvd142m", 336, 576, 384, 11, 64, 64, 8e-4, 100000, "16-mixed", 0.5, 16, 336),
    "ssync/movi_e": ("vit_base_patch14_dinov2.lvd142m", 336, 576, 768, 15, 128, 64, 8e-4, 300000, "16-mixed", 0.5, 4, 336),
    "ssync/ytvis2021": ("vit_base_patch14_dinov2.lvd142m", 518, 1369, 768, 7, 64, 64, 8e-4, 100000, "16-mixed", 0.0, 1, 518),
}
# The official validation loaders on one GPU (dataset.val_size, num_val_workers, val_batch_size, val chunk size).
OFFICIAL_LOADERS = {
    "srl/movi_c": (250, 2, 16, None), "srl/movi_e": (250, 1, 4, None), "srl/ytvis2021": (200, 1, 1, None),
    "slotcontrast/movi_c": (250, 2, 16, None), "slotcontrast/movi_e": (250, 1, 4, None),
    "slotcontrast/ytvis2021": (200, 1, 1, None),
    "videosaur/movi_c": (250, 8, 16, None), "videosaur/movi_e": (250, 8, 16, None),
    "videosaur/ytvis2021": (200, 8, 16, 6),
    "slotcurri/movi_c": (250, 2, 16, None), "slotcurri/movi_e": (250, 1, 4, None),
    "slotcurri/ytvis2021": (200, 1, 1, None),
    "ssync/movi_c": (250, 2, 16, None), "ssync/movi_e": (250, 1, 4, None), "ssync/ytvis2021": (200, 1, 1, None),
}
# SSync (docs/METHODS.md §10.1): merge IoU threshold and the step count the 0.3 warm-up ratio multiplies.
SSYNC_SYNERGY = {"ssync/movi_c": (0.7, 100000), "ssync/movi_e": (0.65, 300000), "ssync/ytvis2021": (0.6, 100000)}
# SRL loss schedule (docs/METHODS.md §4.8): reg window [start, end] inclusive, DEC / ENC strictly after, k, topk.
SRL_SCHEDULE = {
    "srl/movi_c": ((0, 10000), 20000, 20000, 5, 8),
    "srl/movi_e": ((2500, 30000), 60000, 60000, 7, 24),
    "srl/ytvis2021": ((0, 10000), 20000, 0, 3, 16),
}


def compose(experiment: str, *overrides: str):
    return compose_config("train", [f"experiment={experiment}", *overrides])


def test_all_experiment_files_exist() -> None:
    root = importlib.resources.files("srl_plugin") / "configs" / "experiment"
    assert sorted(f"{method}/{item.name[:-5]}" for method in METHODS for item in (root / method).iterdir()
                  if item.name.endswith(".yaml")) == sorted(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_layout_contract(experiment: str) -> None:
    config = compose(experiment)
    check_training_config(config)  # every shipped experiment passes srl-train's up-front value checks
    container = resolved_container(config)
    method, dataset = experiment.split("/")
    assert (container["method"], container["dataset"]) == (method, dataset)
    assert {"seed", "output_dir", "features", "cache", "optimizer", "scheduler", "checkpoint_every_n_steps"} <= set(
        container
    )
    assert container["features"] == "video" and "dir" in container["cache"]
    assert container["model"]["_target_"] == MODEL_CLASSES[method]
    assert set(container["model"]["backbone"]) == BACKBONE_KEYS
    backbone_class = "PatchPixelBackbone" if dataset == "synthetic" else "FrozenViTBackbone"
    assert container["model"]["backbone"]["_target_"] == f"srl_plugin.models.{backbone_class}"
    assert set(container["data"]) == DATA_KEYS
    assert container["data"]["_target_"] == "srl_plugin.data.VideoDataModule"
    assert TRAINER_KEYS <= set(container["trainer"])
    assert container["trainer"]["gradient_clip_val"] == 0.05
    assert container["data"]["chunk_size"] == (2 if experiment == "srl/synthetic" else 4)  # SRL's demo preset: 2
    assert container["data"]["input_size"] == container["model"]["backbone"]["input_size"]
    assert container["optimizer"]["_target_"] == "torch.optim.Adam"
    assert container["scheduler"]["decay_steps"] == container["trainer"]["max_steps"]
    assert container["scheduler"]["decay_rate"] == 0.5
    assert (container["data"]["synthetic"] is not None) == (dataset == "synthetic")


@pytest.mark.parametrize("experiment", REAL)
def test_published_hyperparameters(experiment: str) -> None:
    config = resolved_container(compose(experiment))
    model, data, trainer = config["model"], config["data"], config["trainer"]
    backbone, size, patches, feature_dim, slots, slot_dim, batch, lr, steps, precision, flip, val_batch, mask = (
        PUBLISHED[experiment]
    )
    assert model["backbone"]["model_name"] == backbone
    assert model["backbone"]["input_size"] == size and data["input_size"] == size
    assert (model["num_patches"], model["feature_dim"], model["num_slots"], model["slot_dim"]) == (
        patches, feature_dim, slots, slot_dim,
    )
    assert (data["batch_size"], config["optimizer"]["lr"], trainer["max_steps"], trainer["precision"]) == (
        batch, lr, steps, precision,
    )
    assert (data["h_flip_prob"], data["val_batch_size"], data["mask_size"]) == (flip, val_batch, mask)
    assert config["scheduler"]["warmup_steps"] == 2500
    assert model["backbone"]["pretrained"] is True and model["backbone"]["allow_random_init"] is False
    ytvis = experiment.endswith("ytvis2021")
    assert data["dataset_type"] == ("ytvis" if ytvis else "movi")
    assert data["num_classes"] == (25 if ytvis else 24 if experiment.endswith("movi_e") else 11)
    assert config["evaluation"]["ignore_background"] is (not ytvis)
    assert data["shuffle_buffer"] == (100 if ytvis else 512)
    assert data["val_size"] == (None if ytvis else 250)
    assert config["evaluation"]["protocol"] == "full"
    assert config["evaluation"]["official_loader"] == dict(
        zip(("val_size", "num_workers", "batch_size", "chunk_size"), OFFICIAL_LOADERS[experiment])
    )
    assert trainer["val_check_interval"] == (1000 if experiment.startswith("videosaur") else 2500)


@pytest.mark.parametrize("experiment", sorted(SRL_SCHEDULE))
def test_srl_loss_weights_and_windows(experiment: str) -> None:
    model = resolved_container(compose(experiment))["model"]
    (reg_start, reg_end), dec_start, enc_start, redundancy_k, topk = SRL_SCHEDULE[experiment]
    assert (model["recon_weight"], model["sc_weight"], model["reg_weight"], model["dec_weight"], model["enc_weight"]) == (
        1.0, 0.25, 0.1, 0.1, 0.1,
    )
    assert model["reg_window"] == {"start": reg_start, "end": reg_end, "start_inclusive": True, "end_inclusive": True}
    assert model["dec_window"] == {"start": dec_start, "end": None, "start_inclusive": False, "end_inclusive": False}
    assert model["enc_window"] == {"start": enc_start, "end": None, "start_inclusive": False, "end_inclusive": False}
    assert (model["redundancy_k"], model["topk_enc"], model["group_frames"]) == (redundancy_k, topk, 4)
    assert (model["slot_temperature"], model["consistency_temperature"], model["base_temperature"]) == (0.1, 0.1, 0.07)
    assert resolved_container(compose(experiment))["ddp"]["find_unused_parameters"] is True


@pytest.mark.parametrize("experiment", [name for name in REAL if name.startswith(("slotcontrast", "ssync"))])
def test_slotcontrast_losses(experiment: str) -> None:
    model = resolved_container(compose(experiment))["model"]
    assert (model["recon_weight"], model["ss_weight"], model["slot_temperature"], model["batch_contrast"]) == (
        1.0, 0.5, 0.1, True,
    )


# SlotCurri (docs/METHODS.md §11.1): the official model.max_steps keys the curriculum.
SLOTCURRI_SCHEDULE_STEPS = {"slotcurri/movi_c": 100000, "slotcurri/movi_e": 300000, "slotcurri/ytvis2021": 100000}


@pytest.mark.parametrize("experiment", sorted(SLOTCURRI_SCHEDULE_STEPS))
def test_slotcurri_losses_and_curriculum(experiment: str) -> None:
    model = resolved_container(compose(experiment))["model"]
    assert (model["recon_weight"], model["ssim_weight"], model["ss_weight"], model["slot_temperature"]) == (
        1.0, 0.05, 0.5, 0.1,
    )
    assert model["batch_contrast"] is True and model["cyclic_inference"] is True
    assert model["schedule_steps"] == SLOTCURRI_SCHEDULE_STEPS[experiment]


@pytest.mark.parametrize("experiment", sorted(SSYNC_SYNERGY))
def test_ssync_synergy_settings(experiment: str) -> None:
    model = resolved_container(compose(experiment))["model"]
    assert (model["merge_iou_threshold"], model["max_steps"]) == SSYNC_SYNERGY[experiment]
    assert (model["grp2dec_weight"], model["dec2grp_weight"], model["cls_temperature"]) == (1.0, 1.0, 1.0)
    assert model["synergy_warmup_ratio"] == 0.3
    assert (model["boundary_min_disagreeing"], model["boundary_min_agreeing"], model["interior_max_disagreeing"]) == (
        1, 1, 1,
    )


@pytest.mark.parametrize("experiment", [name for name in REAL if name.startswith("videosaur")])
def test_videosaur_losses_and_decoder(experiment: str) -> None:
    config = resolved_container(compose(experiment))
    model = config["model"]
    ytvis = experiment.endswith("ytvis2021")
    assert model["backbone"]["return_keys"] is True
    assert model["reconstruct_features"] is ytvis
    assert model["similarity_temperature"] == (0.25 if ytvis else 0.075)
    assert (model["timesim_weight"], model["recon_weight"]) == (0.1, 1.0)
    assert model["allocator_blocks"] == (3 if ytvis else 2)
    assert model["renderer_dims"] == [1024] * (3 if ytvis else 4)
    assert config["evaluation"]["independent_chunks"] == (6 if ytvis else None)


@pytest.mark.parametrize("reconstruct", [False, True])
def test_videosaur_wiring_follows_reconstruct_features(reconstruct: bool) -> None:
    flag = str(reconstruct).lower()
    model = build_model(compose("videosaur/synthetic", f"model.reconstruct_features={flag}"), backbone="none")
    feature_channels = model.feature_dim if reconstruct else 0
    assert model.decoder.out.out_features == feature_channels + model.num_patches
    assert model.losses["loss_timesim"].first_channel == feature_channels
    assert model.losses["loss_recon"].is_active(0) is reconstruct


def test_videosaur_reconstruct_features_must_be_a_boolean() -> None:
    with pytest.raises(Exception, match="srl_if needs a boolean condition"):
        build_model(compose("videosaur/synthetic", "model.reconstruct_features=1"), backbone="none")


def test_overrides_the_hydra_way() -> None:
    config = compose("srl/movi_c", "trainer.max_steps=123", "data.root=/somewhere", "optimizer.lr=1e-3")
    container = resolved_container(config)
    assert container["trainer"]["max_steps"] == 123 and container["scheduler"]["decay_steps"] == 123
    assert container["data"]["root"] == "/somewhere" and container["optimizer"]["lr"] == 1e-3


def test_cache_helper_composes_the_same_config() -> None:
    assert resolved_container(compose_experiment("videosaur/movi_e")) == resolved_container(compose("videosaur/movi_e"))


def test_strategy_uses_find_unused_parameters_only_for_several_processes() -> None:
    srl = compose("srl/movi_c", "trainer.accelerator=cpu", "trainer.devices=2")
    assert world_size(srl.trainer) == 2
    assert build_strategy(srl)._ddp_kwargs["find_unused_parameters"] is True
    assert build_strategy(compose("slotcontrast/movi_c", "trainer.devices=2", "trainer.accelerator=cpu"))._ddp_kwargs[
        "find_unused_parameters"
    ] is False
    assert build_strategy(compose("srl/movi_c", "trainer.accelerator=cpu", "trainer.devices=1")) == "auto"
    assert world_size(compose("srl/movi_c", "trainer.devices=[0,1]", "trainer.num_nodes=2").trainer) == 4


@pytest.mark.parametrize("experiment", [name for name in EXPERIMENTS if name.endswith("synthetic")])
def test_synthetic_experiments_instantiate_and_run(experiment: str) -> None:
    config = compose(experiment, "data.root=/nonexistent")
    model = build_model(config)
    datamodule = instantiate(OmegaConf.to_container(config.data, resolve=True))
    assert type(datamodule).__name__ == "VideoDataModule"
    size = config.model.backbone.input_size
    last_step = int(config.trainer.max_steps) - 1
    with torch.no_grad():
        outputs = model(torch.randn(1, 4, 3, size, size), global_step=last_step)
    assert model.eval_masks(outputs).shape == (1, 4, config.model.num_slots, config.model.num_patches)
    losses = model.compute_losses(outputs, global_step=last_step)
    if experiment.startswith("srl"):
        assert {"loss_recon", "loss_sc", "loss_cl_dec", "loss_cl_enc"} <= set(losses)
        assert "loss_reg" in model.compute_losses(outputs, global_step=0)
    if experiment.startswith("ssync"):
        assert {"loss_grp2deccls", "loss_dec2grpcls"} <= set(losses)
        assert "loss_grp2deccls" not in model.compute_losses(outputs, global_step=0)
    assert torch.isfinite(losses["total"])


@pytest.mark.parametrize("experiment", REAL)
def test_real_experiment_models_build_with_random_backbone(experiment: str) -> None:
    config = compose(experiment)
    with torch.device("meta"):
        model = build_model(config, backbone="random")
    expected = PUBLISHED[experiment]
    assert model.backbone.input_size == expected[1] and model.backbone.num_patches == expected[2]
    assert model.backbone.feature_dim == expected[3] and model.num_slots == expected[4]
    assert model.initializer is not None and model.patch_grid[0] ** 2 == expected[2]
    if experiment.startswith("srl"):
        assert tuple(model.dec_projector.weight.shape) == (expected[5], expected[3])
        assert tuple(model.enc_projector.weight.shape) == (expected[5], expected[5])
