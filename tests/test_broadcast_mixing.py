"""The MLP broadcast decoder's fused, frame-chunked formulation equals the plain one, values and gradients."""
from __future__ import annotations

import pytest
import torch

from srl_plugin.models import MLPBroadcastDecoder
from srl_plugin.models import broadcast_mixing
from srl_plugin.models.broadcast_mixing import BroadcastMixing

OUTPUT_SETS = (("reconstruction",), ("masks",), ("alpha_logits",), ("reconstruction", "masks", "alpha_logits"))


def plain_decoder(decoder: MLPBroadcastDecoder, slots: torch.Tensor) -> dict[str, torch.Tensor]:
    """The official order: every slot plus every position through the whole MLP, softmax over slots, mix."""
    decoded = decoder.mlp(slots.unsqueeze(-2) + decoder.pos_emb)  # (B, T, K, N, D_f + 1)
    logits = decoded[..., -1]
    masks = logits.softmax(dim=2)
    reconstruction = (masks.unsqueeze(-1) * decoded[..., :-1]).sum(dim=2)
    return {"reconstruction": reconstruction, "masks": masks, "alpha_logits": logits}


def _gradients(outputs: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], names, inputs) -> list[torch.Tensor]:
    objective = sum((outputs[name] * weights[name]).sum() for name in names)
    return list(torch.autograd.grad(objective, inputs, retain_graph=True))


@pytest.mark.parametrize("hidden_dims", [(7,), (7, 5), (6, 7, 7, 3)])
@pytest.mark.parametrize("chunk_elements", [1, 300, 2**23])  # one frame, two frames and all six per chunk
def test_values_and_gradients_equal_the_plain_formulation(monkeypatch, hidden_dims, chunk_elements) -> None:
    monkeypatch.setitem(broadcast_mixing.CHUNK_ELEMENTS, "cpu", chunk_elements)
    torch.manual_seed(0)
    decoder = MLPBroadcastDecoder(4, output_dim=6, num_patches=5, hidden_dims=hidden_dims).double()
    slots = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    fused, plain = decoder(slots), plain_decoder(decoder, slots)
    for name, value in plain.items():
        torch.testing.assert_close(fused[name], value, rtol=0, atol=1e-13)
    weights = {name: torch.randn_like(value) for name, value in plain.items()}
    inputs = [slots, *decoder.parameters()]
    for names in OUTPUT_SETS:
        expected = _gradients(plain, weights, names, inputs)
        for _ in range(2):  # a retained graph gives the same gradients again
            for got, want in zip(_gradients(fused, weights, names, inputs), expected):
                torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    with torch.no_grad():
        evaluated = decoder(slots)
    for name, value in plain.items():
        torch.testing.assert_close(evaluated[name], value, rtol=0, atol=1e-13)


def test_function_passes_gradcheck(monkeypatch) -> None:
    monkeypatch.setitem(broadcast_mixing.CHUNK_ELEMENTS, "cpu", 1)
    torch.manual_seed(1)
    inputs = [
        torch.randn(1, 2, 3, 5, dtype=torch.float64),  # per_slot (B, T, K, H_1)
        torch.randn(4, 5, dtype=torch.float64),  # per_position (N, H_1)
        torch.randn(1, 6, dtype=torch.float64),  # alpha weight
        torch.randn(1, dtype=torch.float64),  # alpha bias
        torch.randn(6, 5, dtype=torch.float64),  # W_2
        torch.randn(6, dtype=torch.float64),  # b_2
    ]
    assert torch.autograd.gradcheck(BroadcastMixing.apply, [tensor.requires_grad_() for tensor in inputs])


def test_autocast_runs_hidden_layers_in_bf16_and_trains_fp32_parameters() -> None:
    torch.manual_seed(0)
    decoder = MLPBroadcastDecoder(8, output_dim=6, num_patches=9, hidden_dims=(16, 16))
    slots = torch.randn(2, 2, 3, 8)
    reference = decoder(slots)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = decoder(slots)
    assert outputs["masks"].dtype == torch.bfloat16
    torch.testing.assert_close(outputs["reconstruction"].float(), reference["reconstruction"], rtol=0.05, atol=0.05)
    outputs["reconstruction"].float().square().sum().backward()
    assert all(parameter.grad is not None and parameter.grad.dtype == torch.float32 for parameter in decoder.parameters())


def test_needs_a_hidden_layer() -> None:
    with pytest.raises(ValueError, match="at least one hidden layer"):
        MLPBroadcastDecoder(4, output_dim=6, num_patches=5, hidden_dims=())
