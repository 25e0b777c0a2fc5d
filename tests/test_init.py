"""Every trainable parameter starts from the distribution the official code gives it (docs/METHODS.md §1.5-§1.9).

The official init helper zeroes biases only for modules passed to it one by one (attention projections,
SlotMixer output); the MLPs (encoder head, slot-attention residual MLP, decoders) keep PyTorch's defaults.
Each parameter must match exactly one rule below, so a new parameter fails until its init is stated here.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest
import torch

from srl_plugin.runtime import build_model, compose_experiment

Check = Callable[[str, torch.Tensor, int], None]  # name, initial value, fan-in of its layer


def _uniform(bound: float, name: str, value: torch.Tensor) -> None:
    """Values drawn from U(-bound, bound): inside the bound, spread to it, with the uniform's std."""
    value = value.detach().double().flatten()
    assert value.abs().max() <= bound * (1 + 1e-6), f"{name}: |max| {value.abs().max():.4g} > bound {bound:.4g}"
    assert value.abs().max() >= 0.8 * bound, f"{name}: |max| {value.abs().max():.4g} far below bound {bound:.4g}"
    assert value.std() == pytest.approx(bound / math.sqrt(3), rel=0.25), f"{name}: std {value.std():.4g}"


def pytorch_default_linear(name: str, value: torch.Tensor, fan_in: int) -> None:
    """nn.Linear default: weight and bias both U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    _uniform(1 / math.sqrt(fan_in), name, value)


def gru_default(name: str, value: torch.Tensor, fan_in: int) -> None:
    """nn.GRUCell default: every tensor U(-1/sqrt(hidden), 1/sqrt(hidden)), hidden = rows / 3."""
    _uniform(1 / math.sqrt(value.shape[0] // 3), name, value)


def xavier_square_blocks(name: str, value: torch.Tensor, fan_in: int) -> None:
    """Xavier-uniform on each (D, D) row block of a fused q / kv / qkv / output projection."""
    width = value.shape[1]
    _uniform(math.sqrt(6 / (2 * width)), name, value)


def xavier_whole(name: str, value: torch.Tensor, fan_in: int) -> None:
    """Xavier-uniform over the whole (out, in) weight."""
    _uniform(math.sqrt(6 / sum(value.shape)), name, value)


def normal_inverse_sqrt_width(name: str, value: torch.Tensor, fan_in: int) -> None:
    """N(0, 1) * D**-0.5 with D the last axis (positional embeddings, learned slot queries)."""
    std = value.shape[-1] ** -0.5
    assert value.detach().double().std() == pytest.approx(std, rel=0.2), f"{name}: std {value.std():.4g} vs {std:.4g}"
    assert value.abs().max() > 2 * std, f"{name}: no tail, not a normal draw"


def zeros(name: str, value: torch.Tensor, fan_in: int) -> None:
    assert torch.count_nonzero(value) == 0, f"{name} should start at zero"


def ones(name: str, value: torch.Tensor, fan_in: int) -> None:
    assert torch.all(value == 1), f"{name} should start at one"


def log_inverse_sqrt_width(name: str, value: torch.Tensor, fan_in: int) -> None:
    """RandomInit's log sigma: log(D**-0.5) everywhere."""
    torch.testing.assert_close(value, torch.full_like(value, math.log(value.shape[-1] ** -0.5)), msg=name)


_ATTENTION = r"(attn\.(qkv|q|kv|out_proj))"
RULES: list[tuple[str, Check]] = [
    (r".*(norm\w*)\.weight", ones),
    (r".*(norm\w*)\.bias", zeros),
    (rf".*{_ATTENTION}\.weight", xavier_square_blocks),
    (rf".*{_ATTENTION}\.bias", zeros),
    (r"processor\.corrector\.gru\.(weight|bias)_(ih|hh)", gru_default),
    (r"decoder\.(to_q|to_k|out)\.weight", xavier_whole),
    (r"decoder\.out\.bias", zeros),
    (r"decoder\.pos_emb|initializer\.slots", normal_inverse_sqrt_width),
    (r"initializer\.mean", zeros),
    (r"initializer\.log_std", log_inverse_sqrt_width),
    (
        r"(encoder_mlp|processor\.corrector\.mlp|processor\.predictor\.blocks\.\d+|decoder\.allocator\.\d+)"
        r"\.fc[12]\.(weight|bias)",
        pytorch_default_linear,
    ),
    (r"decoder\.(mlp|renderer)\.\d+\.(weight|bias)", pytorch_default_linear),
    (r"processor\.corrector\.to_[qkv]\.weight|(dec|enc)_projector\.weight", pytorch_default_linear),
]


@pytest.mark.parametrize(
    "experiment",
    ["srl/synthetic", "slotcontrast/synthetic", "videosaur/synthetic", "slotcurri/synthetic", "ssync/synthetic"],
)
def test_every_parameter_starts_as_in_the_official_code(experiment: str) -> None:
    torch.manual_seed(0)
    model = build_model(compose_experiment(experiment), backbone="random")
    parameters = {name: value for name, value in model.named_parameters() if not name.startswith("backbone.")}
    unmatched = []
    for name, value in parameters.items():
        rules = [check for pattern, check in RULES if re.fullmatch(pattern, name)]
        if len(rules) != 1:
            unmatched.append(f"{name} ({len(rules)} rules)")
            continue
        layer_weight = parameters.get(re.sub(r"bias$", "weight", name), value)
        rules[0](name, value, layer_weight.shape[-1])
    assert unmatched == [], f"parameters without exactly one init rule: {unmatched}"

