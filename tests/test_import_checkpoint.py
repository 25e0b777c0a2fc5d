"""srl-import-checkpoint: official checkpoints -> srl-plugin checkpoints that srl-eval / srl-infer load."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from srl_plugin.inference import import_official_checkpoint
from srl_plugin.inference.cli_import import main
from srl_plugin.interop import model_from_official_state_dict, official_state_dict_from_model
from srl_plugin.interop.videosaur import official_videosaur_state_dict_from_model
from srl_plugin.models import SlotContrastModel, SRLModel, VideoSAURModel
from srl_plugin.runtime import compose_experiment, load_model, read_checkpoint

OUTPUTS = ("features", "slots", "grouping_masks", "redundancy_attn", "decoder_masks", "reconstruction")
RTOL = 1e-5  # as tests/test_interop.py: the reference was stored in float32


@pytest.fixture(scope="module")
def reference(reference_dir):
    return torch.load(reference_dir / "srl_model_reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def official_ckpt(reference, tmp_path_factory):
    path = tmp_path_factory.mktemp("official") / "srl_movi_c.ckpt"
    torch.save({"state_dict": reference["state_dict"], "global_step": 100000, "epoch": 0}, path)
    return path


@pytest.fixture(scope="module")
def converted(official_ckpt, tmp_path_factory):
    return import_official_checkpoint(official_ckpt, tmp_path_factory.mktemp("ours") / "srl.ckpt", preset="movi_c")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_converted_checkpoint_reproduces_reference_outputs(converted, reference, dtype) -> None:
    model, config = load_model(converted, backbone="none")
    assert isinstance(model, SRLModel) and config.method == "srl"
    model = model.to(dtype)
    with torch.no_grad():
        outputs = model.forward_features(reference["backbone_features"].to(dtype))
    for name in OUTPUTS:
        expected = reference[name].to(dtype)
        scale = expected.abs().max().item()
        torch.testing.assert_close(outputs[name], expected, rtol=RTOL, atol=RTOL * scale, msg=lambda m: f"{name}: {m}")


def test_converted_model_is_identical_to_the_direct_official_import(converted, reference) -> None:
    ours, _ = load_model(converted, backbone="none")
    direct = model_from_official_state_dict(reference["state_dict"], preset="movi_c").eval()
    for key, value in direct.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    with torch.no_grad():
        a, b = ours.forward_features(reference["backbone_features"]), direct.forward_features(reference["backbone_features"])
    for name in OUTPUTS:
        assert torch.equal(a[name], b[name]), name


def test_checkpoint_follows_the_training_checkpoint_contract(converted, reference) -> None:
    checkpoint = read_checkpoint(converted)
    assert set(checkpoint) == {"state_dict", "hyper_parameters", "global_step", "pytorch-lightning_version"}
    assert checkpoint["global_step"] == 100000
    keys = set(checkpoint["state_dict"])
    assert all(key.startswith("model.") for key in keys)
    assert not any(key.startswith("model.backbone.") for key in keys)
    assert len(keys) == len(reference["state_dict"])
    config = checkpoint["hyper_parameters"]["config"]
    composed = OmegaConf.to_container(compose_experiment("srl/movi_c"), resolve=True)
    architecture = {"num_patches": 16, "input_size": 56, "mlp_hidden_dim": 768}
    assert {key: config["model"][key] for key in architecture} == architecture
    assert config["model"]["backbone"]["input_size"] == 56 and config["data"]["input_size"] == 56
    for key, value in composed["model"].items():
        if key not in architecture and key != "backbone":
            assert config["model"][key] == value, key
    for section in ("method", "dataset", "optimizer", "trainer"):
        assert config[section] == composed[section]


def test_slotcontrast_is_detected_and_a_wrong_method_lists_missing_keys(reference, tmp_path, capsys) -> None:
    state = {k: v for k, v in reference["state_dict"].items() if not k.startswith(("projector.", "projector2."))}
    source = tmp_path / "slotcontrast.ckpt"
    torch.save({"state_dict": state}, source)
    assert main([str(source), str(tmp_path / "sc.ckpt")]) == 0
    model, config = load_model(tmp_path / "sc.ckpt", backbone="none")
    assert isinstance(model, SlotContrastModel) and config.method == "slotcontrast"
    assert main([str(source), str(tmp_path / "bad.ckpt"), "--method", "srl"]) == 1
    error = capsys.readouterr().err
    assert "projector.projector.weight" in error and "projector2.projector.weight" in error
    assert not (tmp_path / "bad.ckpt").exists()


def test_unknown_and_missing_keys_are_listed(reference, tmp_path, capsys) -> None:
    state = dict(reference["state_dict"])
    state["processor.module.extra.weight"] = torch.zeros(1)
    del state["processor.module.corrector.to_q.weight"]
    torch.save({"state_dict": state}, tmp_path / "broken.ckpt")
    assert main([str(tmp_path / "broken.ckpt"), str(tmp_path / "out.ckpt")]) == 1
    error = capsys.readouterr().err
    assert "processor.module.extra.weight" in error and "processor.module.corrector.to_q.weight" in error


def test_every_missing_architecture_key_and_reshaped_tensor_is_listed(reference, tmp_path, capsys) -> None:
    state = dict(reference["state_dict"])
    del state["initializer.slots"], state["decoder.module.pos_emb"]
    torch.save({"state_dict": state}, tmp_path / "incomplete.ckpt")
    assert main([str(tmp_path / "incomplete.ckpt"), str(tmp_path / "out.ckpt")]) == 1
    assert "['initializer.slots', 'decoder.module.pos_emb'] missing" in capsys.readouterr().err
    state = dict(reference["state_dict"])
    weight = state["processor.module.corrector.to_q.weight"]
    state["processor.module.corrector.to_q.weight"] = weight[:, :-1]
    torch.save({"state_dict": state}, tmp_path / "reshaped.ckpt")
    assert main([str(tmp_path / "reshaped.ckpt"), str(tmp_path / "out.ckpt")]) == 1
    error = capsys.readouterr().err
    assert f"processor.module.corrector.to_q.weight (expected {list(weight.shape)}, found " in error
    assert "Traceback" not in error and not (tmp_path / "out.ckpt").exists()


def test_mismatched_preset_is_refused(official_ckpt, tmp_path, capsys) -> None:
    assert main([str(official_ckpt), str(tmp_path / "out.ckpt"), "--preset", "movi_e"]) == 1
    error = capsys.readouterr().err
    assert "does not match preset 'movi_e'" in error and "num_slots: checkpoint 11, preset 15" in error


def test_bad_sources_give_clear_errors(converted, tmp_path, capsys) -> None:
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    torch.save({"weights": {}}, tmp_path / "nolightning.ckpt")
    assert main([str(tmp_path / "missing.ckpt"), str(tmp_path / "o.ckpt")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main([str(tmp_path / "junk.ckpt"), str(tmp_path / "o.ckpt")]) == 1
    error = capsys.readouterr().err
    assert "could not be read as a PyTorch checkpoint" in error and "weights_only" not in error
    assert main([str(tmp_path / "nolightning.ckpt"), str(tmp_path / "o.ckpt")]) == 1
    assert "no 'state_dict'" in capsys.readouterr().err
    assert main([str(converted), str(tmp_path / "o.ckpt")]) == 1
    assert "already an srl-plugin checkpoint" in capsys.readouterr().err


def test_pickled_objects_need_an_explicit_opt_in(reference, tmp_path, capsys) -> None:
    from collections import OrderedDict
    from fractions import Fraction

    source = tmp_path / "with_objects.ckpt"
    torch.save({"state_dict": OrderedDict(reference["state_dict"]), "hyper_parameters": {"lr": Fraction(1, 3)}}, source)
    assert main([str(source), str(tmp_path / "o.ckpt")]) == 1
    assert "--trust-pickle" in capsys.readouterr().err
    assert main([str(source), str(tmp_path / "o.ckpt"), "--trust-pickle"]) == 0


def test_backbone_weights_travel_into_the_checkpoint(tmp_path, tiny_vit) -> None:
    torch.manual_seed(0)
    vit = tiny_vit(embed_dim=384, num_heads=6, img_size=56)
    original = SRLModel(backbone=vit, feature_dim=384, num_slots=11, slot_dim=64, num_patches=4, decoder_hidden_dims=(32,)).eval()
    torch.save({"state_dict": official_state_dict_from_model(original)}, tmp_path / "official.ckpt")
    import_official_checkpoint(tmp_path / "official.ckpt", tmp_path / "ours.ckpt", preset="movi_c")
    checkpoint = read_checkpoint(tmp_path / "ours.ckpt")
    assert "model.backbone.model.blocks.0.attn.qkv.weight" in checkpoint["state_dict"]
    backbone_config = checkpoint["hyper_parameters"]["config"]["model"]["backbone"]
    assert backbone_config["model_kwargs"] == {"img_size": 56, "depth": 1, "embed_dim": 384, "num_heads": 6}
    model, _ = load_model(tmp_path / "ours.ckpt")
    video = torch.randn(1, 3, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(video)["decoder_masks"], original(video)["decoder_masks"], rtol=0, atol=0)


def test_videosaur_checkpoint_round_trips_through_the_official_layout(tmp_path, tiny_vit) -> None:
    torch.manual_seed(0)
    vit = tiny_vit(input_size=16, embed_dim=768, num_heads=12, img_size=32, return_keys=True, model_name="vit_base_patch8_224.dino")
    original = VideoSAURModel(
        backbone=vit, feature_dim=768, num_slots=11, slot_dim=128, num_patches=4, renderer_dims=(32, 32, 32, 32),
    ).eval()
    official = official_videosaur_state_dict_from_model(original)
    assert official["initializer.mean"].shape == (1, 1, 128) and official["decoder.module.pos_emb"].shape == (1, 4, 128)
    assert official["decoder.module.allocator.blocks.1.self_attn.qkv.weight"].shape == (3 * 128, 128)
    for key in ("decoder.module.norm_q.weight", "decoder.module.norm_k.weight", "decoder.module.norm_memory.weight",
                "decoder.module.renderer.layers.6.weight", "decoder.module.output_transform.bias",
                "processor.module.corrector.norm_features.weight", "processor.module.predictor.blocks.0.linear1.weight"):
        assert key in official, key
    torch.save({"state_dict": official}, tmp_path / "videosaur.ckpt")
    assert main([str(tmp_path / "videosaur.ckpt"), str(tmp_path / "ours.ckpt"), "--preset", "movi_c"]) == 0
    model, config = load_model(tmp_path / "ours.ckpt")
    assert isinstance(model, VideoSAURModel) and config.method == "videosaur"
    assert config.model.similarity_temperature == 0.075 and config.model.backbone.return_keys
    video = torch.randn(1, 3, 3, 16, 16)
    with torch.no_grad():
        torch.manual_seed(1)
        ours = model(video)
        torch.manual_seed(1)
        theirs = original(video)
    for name in ("slots", "decoder_masks", "reconstruction"):
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=0)


def test_destination_may_be_a_run_directory(official_ckpt, reference, tmp_path) -> None:
    run_dir = tmp_path / "runs" / "srl_official"
    written = import_official_checkpoint(official_ckpt, run_dir)
    assert written == run_dir / "checkpoints" / "last.ckpt"
    assert read_checkpoint(run_dir)["hyper_parameters"]["config"]["output_dir"] == str(run_dir)
    model, _ = load_model(run_dir, backbone="none")
    assert model.num_slots == 11


def test_videosaur_ytvis_settings_come_from_shapes_and_preset(tmp_path) -> None:
    torch.manual_seed(0)
    original = VideoSAURModel(
        backbone=None, feature_dim=768, num_slots=7, slot_dim=64, num_patches=4, allocator_blocks=3,
        renderer_dims=(16, 16, 16), reconstruct_features=True,
    )
    torch.save({"state_dict": official_videosaur_state_dict_from_model(original)}, tmp_path / "vs.ckpt")
    import_official_checkpoint(tmp_path / "vs.ckpt", tmp_path / "ours.ckpt", preset="ytvis2021")
    config = read_checkpoint(tmp_path / "ours.ckpt")["hyper_parameters"]["config"]
    model_config = config["model"]
    assert config["method"] == "videosaur" and model_config["reconstruct_features"] is True
    assert model_config["allocator_blocks"] == 3 and model_config["renderer_dims"] == [16, 16, 16]
    assert model_config["similarity_temperature"] == 0.25 and model_config["num_slots"] == 7
    assert model_config["backbone"]["model_name"] == "vit_base_patch16_224.dino"
    assert model_config["backbone"]["input_size"] == 32 and model_config["input_size"] == 32
    model, _ = load_model(tmp_path / "ours.ckpt", backbone="none")
    for key, value in original.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_videosaur_dinov2_variant_is_told_by_its_patch_count(tmp_path) -> None:
    original = VideoSAURModel(
        backbone=None, feature_dim=768, num_slots=7, slot_dim=64, num_patches=37 * 37, allocator_blocks=1,
        renderer_dims=(8,), reconstruct_features=True,
    )
    torch.save({"state_dict": official_videosaur_state_dict_from_model(original)}, tmp_path / "vs.ckpt")
    import_official_checkpoint(tmp_path / "vs.ckpt", tmp_path / "ours.ckpt", preset="ytvis2021")
    config = read_checkpoint(tmp_path / "ours.ckpt")["hyper_parameters"]["config"]
    assert config["model"]["backbone"]["model_name"] == "vit_base_patch14_dinov2.lvd142m"
    assert config["model"]["input_size"] == 518 and config["model"]["similarity_temperature"] == 0.15
    assert config["data"]["mask_size"] == 224


def test_videosaur_backbone_of_no_released_patch_size_is_refused(tmp_path, tiny_vit, capsys) -> None:
    vit = tiny_vit(input_size=24, embed_dim=768, num_heads=12, img_size=24, patch_size=12, return_keys=True)
    original = VideoSAURModel(backbone=vit, num_slots=11, slot_dim=16, renderer_dims=(8,), allocator_blocks=1)
    torch.save({"state_dict": official_videosaur_state_dict_from_model(original)}, tmp_path / "vs.ckpt")
    assert main([str(tmp_path / "vs.ckpt"), str(tmp_path / "ours.ckpt")]) == 1
    assert "patch size 12 is not one of the released ones [8, 14, 16]" in capsys.readouterr().err


def test_a_state_dict_of_no_known_layout_is_refused(tmp_path, capsys) -> None:
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, tmp_path / "other.ckpt")
    assert main([str(tmp_path / "other.ckpt"), str(tmp_path / "ours.ckpt")]) == 1
    assert "matches no official layout" in capsys.readouterr().err


def _state_dict_from_layout(path, skip_prefix=None) -> dict[str, torch.Tensor]:
    """Zero tensors with the keys and shapes of an official checkpoint layout (.tsv: key, shape, dtype)."""
    state = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, _ = line.split("\t")
        if skip_prefix is None or not key.startswith(skip_prefix):
            state[key] = torch.zeros([int(size) for size in shape.split("x")])
    return state


def test_official_movi_c_layout_with_backbone_imports(reference_dir, tmp_path) -> None:
    state = _state_dict_from_layout(reference_dir / "official_srl_movi_c_state_dict.tsv")
    torch.save({"state_dict": state, "global_step": 100000}, tmp_path / "srl_movi_c.ckpt")
    assert main([str(tmp_path / "srl_movi_c.ckpt"), str(tmp_path / "ours.ckpt"), "--preset", "movi_c"]) == 0
    checkpoint = read_checkpoint(tmp_path / "ours.ckpt")
    assert len(checkpoint["state_dict"]) == len(state)
    config = checkpoint["hyper_parameters"]["config"]
    assert config["model"]["num_patches"] == 576 and config["model"]["backbone"]["input_size"] == 336
    assert config["model"]["backbone"]["model_kwargs"] == {"img_size": 518, "depth": 12, "embed_dim": 384, "num_heads": 6}


def test_official_ytvis_layout_imports_and_other_presets_are_refused(reference_dir, tmp_path, capsys) -> None:
    state = _state_dict_from_layout(reference_dir / "official_srl_ytvis2021_state_dict.tsv", "encoder.module.backbone.")
    torch.save({"state_dict": state}, tmp_path / "srl_ytvis.ckpt")
    assert main([str(tmp_path / "srl_ytvis.ckpt"), str(tmp_path / "ours.ckpt"), "--preset", "ytvis2021"]) == 0
    config = read_checkpoint(tmp_path / "ours.ckpt")["hyper_parameters"]["config"]
    assert (config["model"]["num_patches"], config["model"]["backbone"]["input_size"]) == (1369, 518)
    assert main([str(tmp_path / "srl_ytvis.ckpt"), str(tmp_path / "bad.ckpt"), "--preset", "movi_c"]) == 1
    assert "feature_dim: checkpoint 768, preset 384" in capsys.readouterr().err
