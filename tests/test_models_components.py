"""Component tests: shapes, iteration counts, quirks, frozen timm backbone."""
from __future__ import annotations

import pytest
import timm
import torch

from srl_plugin.models import (
    FixedLearnedInit,
    FrozenViTBackbone,
    MLPBroadcastDecoder,
    RandomInit,
    RecurrentProcessor,
    SlotAttention,
    SlotMixerDecoder,
    TransformerPredictor,
)

TINY_VIT = {"img_size": 42, "depth": 2, "embed_dim": 32, "num_heads": 2}


def test_backbone_returns_prenorm_tokens_without_cls_and_keys(tiny_vit) -> None:
    torch.manual_seed(0)
    backbone = tiny_vit(depth=2, return_keys=True)
    reference = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=False, dynamic_img_size=True, num_classes=0, **TINY_VIT)
    missing, unexpected = reference.load_state_dict(backbone.model.state_dict(), strict=False)
    assert missing == ["norm.weight", "norm.bias"] and not unexpected
    with torch.no_grad():
        reference.norm.weight.fill_(1.7)
        reference.norm.bias.fill_(0.3)
    reference.eval()
    video = torch.randn(2, 3, 3, 28, 28)
    out = backbone(video)
    assert out["backbone_features"].shape == (2, 3, 4, 32)
    assert out["backbone_keys"].shape == (2, 3, 4, 32)
    frames = video.flatten(0, 1)
    with torch.no_grad():
        normed = reference.forward_features(frames)  # final norm applied, CLS first
        tokens = reference.patch_embed(frames)
        tokens = reference.norm_pre(reference._pos_embed(tokens))
        for block in reference.blocks[:-1]:
            tokens = block(tokens)
        qkv = reference.blocks[-1].attn.qkv(reference.blocks[-1].norm1(tokens))
    prenorm = out["backbone_features"].flatten(0, 1)
    torch.testing.assert_close(reference.norm(prenorm), normed[:, 1:])
    torch.testing.assert_close(out["backbone_keys"].flatten(0, 1), qkv[:, 1:, 32:64])


def test_backbone_resamples_pos_embed_bicubic_antialias(tiny_vit) -> None:
    backbone = tiny_vit(depth=2)
    side = 2
    with torch.no_grad():
        tokens = backbone.model.patch_embed(torch.randn(1, 3, 28, 28))
        embedded = backbone.model._pos_embed(tokens)
    grid = backbone.model.pos_embed[:, 1:].reshape(1, 3, 3, -1).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(side, side), mode="bicubic", antialias=True)
    expected = expected.permute(0, 2, 3, 1).reshape(1, side * side, -1)
    torch.testing.assert_close(embedded[:, 1:] - tokens.reshape(1, side * side, -1), expected)


def test_backbone_is_frozen_and_stays_in_eval(tiny_vit) -> None:
    backbone = tiny_vit(depth=2)
    parent = torch.nn.Sequential(backbone)
    parent.train()
    assert not backbone.model.training
    assert all(not p.requires_grad for p in backbone.parameters())
    out = backbone(torch.randn(1, 2, 3, 28, 28, requires_grad=True))
    assert not out["backbone_features"].requires_grad


def test_backbone_errors(tiny_vit) -> None:
    with pytest.raises(ValueError, match="allow_random_init"):
        FrozenViTBackbone("vit_small_patch14_dinov2.lvd142m", 28, pretrained=False, model_kwargs=TINY_VIT)
    with pytest.raises(FileNotFoundError, match="weights_path"):
        FrozenViTBackbone("vit_small_patch14_dinov2.lvd142m", 28, pretrained=True, model_kwargs=TINY_VIT)
    with pytest.raises(ValueError, match="resize the frames"):
        tiny_vit(depth=2)(torch.randn(1, 1, 3, 42, 42))


def test_backbone_loads_weights_path(tmp_path, tiny_vit) -> None:
    source = tiny_vit(depth=2)
    full = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=False, dynamic_img_size=True, num_classes=0, **TINY_VIT)
    torch.save(full.state_dict(), tmp_path / "vit.pth")
    loaded = FrozenViTBackbone(
        "vit_small_patch14_dinov2.lvd142m", 28, pretrained=False, weights_path=str(tmp_path / "vit.pth"), model_kwargs=TINY_VIT
    )
    torch.testing.assert_close(loaded.model.pos_embed, full.pos_embed)
    assert not torch.equal(source.model.pos_embed, full.pos_embed)


def test_initializers() -> None:
    fixed = FixedLearnedInit(5, 8)
    slots = fixed(3)
    assert slots.shape == (3, 5, 8) and torch.equal(slots[0], slots[2])
    random = RandomInit(5, 8)
    sampled = random.eval()(3)
    assert sampled.shape == (3, 5, 8) and torch.equal(sampled, random(3))  # seeded in eval: repeatable
    assert not torch.equal(sampled, RandomInit(5, 8, eval_seed=1).eval()(3))
    trained = random.train()(3)
    assert not torch.equal(trained, random(3)) and not torch.equal(trained, sampled)
    unseeded = RandomInit(5, 8, eval_seed=None).eval()
    assert not torch.equal(unseeded(3), unseeded(3))


def test_slot_attention_outputs() -> None:
    torch.manual_seed(0)
    attention = SlotAttention(8, use_mlp=True)
    out = attention(torch.randn(2, 4, 8), torch.randn(2, 6, 8), num_iterations=3)
    assert out["slots"].shape == (2, 4, 8)
    torch.testing.assert_close(out["masks"].sum(dim=1), torch.ones(2, 6))
    torch.testing.assert_close(out["redundancy_attn"].sum(dim=2), torch.ones(2, 4))
    assert SlotAttention(8, use_mlp=False).mlp is None


def test_slot_attention_gru_hidden_is_normalised_slots() -> None:
    torch.manual_seed(0)
    attention = SlotAttention(8, use_mlp=False)
    slots, features = torch.randn(2, 4, 8) * 3 + 1, torch.randn(2, 6, 8)
    captured = {}
    attention.gru.register_forward_hook(lambda _m, inputs, _o: captured.setdefault("hidden", inputs[1]))
    attention(slots, features, num_iterations=1)
    torch.testing.assert_close(captured["hidden"], attention.norm_slots(slots).reshape(-1, 8))


def test_processor_iteration_counts_and_continuation() -> None:
    torch.manual_seed(0)
    corrector = SlotAttention(8)
    processor = RecurrentProcessor(corrector, TransformerPredictor(8, num_heads=2), 3, 2)
    calls: list[int] = []
    original = corrector.forward
    corrector.forward = lambda slots, features, num_iterations: (calls.append(num_iterations), original(slots, features, num_iterations))[1]
    out = processor(torch.randn(2, 4, 8), torch.randn(2, 3, 6, 8))
    assert calls == [3, 2, 2]
    assert out["slots"].shape == out["predicted_slots"].shape == (2, 3, 4, 8)
    assert out["grouping_masks"].shape == out["redundancy_attn"].shape == (2, 3, 4, 6)
    calls.clear()
    processor(torch.randn(2, 4, 8), torch.randn(2, 2, 6, 8), continuation=True)
    assert calls == [2, 2]


def test_predictor_attention_scale_quirk() -> None:
    torch.manual_seed(0)
    quirky = TransformerPredictor(16, num_heads=4)
    correct = TransformerPredictor(16, num_heads=4, attention_scale_quirk=False)
    correct.load_state_dict(quirky.state_dict())
    slots = torch.randn(2, 5, 16)
    assert not torch.allclose(quirky(slots), correct(slots), atol=1e-3)
    block = quirky.blocks[0]
    normed = block.norm1(slots)
    expected = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    expected.in_proj_weight.data = block.attn.qkv.weight.data.clone()
    expected.in_proj_bias.data = block.attn.qkv.bias.data.clone()
    expected.out_proj.load_state_dict(block.attn.out_proj.state_dict())
    head_dim = 4
    # logits * sqrt(d) == standard attention on queries scaled by d
    expected.in_proj_weight.data[:16] *= head_dim
    expected.in_proj_bias.data[:16] *= head_dim
    torch.testing.assert_close(block.attn(normed), expected(normed, normed, normed, need_weights=False)[0])


def test_decoders_shapes() -> None:
    torch.manual_seed(0)
    slots = torch.randn(2, 3, 4, 8)
    mlp = MLPBroadcastDecoder(8, output_dim=10, num_patches=9, hidden_dims=(16, 16))
    out = mlp(slots)
    assert out["reconstruction"].shape == (2, 3, 9, 10) and out["masks"].shape == (2, 3, 4, 9)
    torch.testing.assert_close(out["masks"].sum(dim=2), torch.ones(2, 3, 9))
    mixer = SlotMixerDecoder(8, output_dim=9 + 10, num_patches=9, allocator_blocks=2, renderer_dims=(16, 16), num_heads=2)
    out = mixer(slots)
    assert out["reconstruction"].shape == (2, 3, 9, 19) and out["masks"].shape == (2, 3, 4, 9)
    torch.testing.assert_close(out["masks"].sum(dim=2), torch.ones(2, 3, 9))
