"""The hidden layers, alpha head and slot mixing of the MLP broadcast decoder as one autograd function.

With ``K`` slots, ``N`` patches and hidden widths ``H_1 .. H_L`` the decoder's hidden activations are
``R x H_l`` with ``R = B * T * K * N`` rows (104 MB each at MOVi-C size, batch 1, fp32). Plain autograd keeps
all of them and allocates a fresh tensor of that size for every ReLU gradient, every linear input gradient,
the alpha-head gradient, the mixing gradient and the permuted copies that ``einsum`` makes for the mixing
(on CPU a fresh 104 MB tensor costs about as much again as the pass that fills it: page faults). Here:

- the first hidden activation, ``relu(per_slot_k + per_position_n)``, is not kept: the backward pass
  recomputes it (one addition) from the two small halves of the first linear;
- the backward pass works in place on two gradient buffers: ReLU gradients from the sign of the saved
  outputs, each linear's input gradient written into the buffer freed one layer up;
- the mixing runs slot by slot without copies.

Values are those of the plain formulation up to floating-point reassociation (the recomputed activation is
bitwise the forward one). The saved activations are left untouched, so the graph can be traversed more than
once (``retain_graph``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def hidden_and_mixing(
    per_slot: torch.Tensor,
    per_position: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    alpha_weight: torch.Tensor,
    alpha_bias: torch.Tensor,
    keep_hidden: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The decoder from its first linear's two halves to the mixed last hidden state (no autograd, no autocast:
    the inputs' dtype is the compute dtype).

    Args:
        per_slot: (B, T, K, H_1) first linear applied to the slots, bias included.
        per_position: (N, H_1) first linear's weight applied to the positional embedding.
        weights / biases: the hidden linears after the first, ``(H_l, H_{l-1})`` / ``(H_l,)``.
        alpha_weight / alpha_bias: ``(1, H_L)`` / ``(1,)``, the alpha row of the last linear.
        keep_hidden: return the hidden activations after the first (what the backward pass needs); the
            memory of an activation that is neither kept nor needed any more is reused for the next layer.

    Returns ``alpha_logits`` (B, T, K, N), ``masks`` (B, T, K, N) (softmax over slots), ``mixed``
    (B, T, N, H_L) (``sum_k masks_k * hidden_k``) and the kept activations ``[(R, H_l) for l = 2 .. L]`` (ReLU
    outputs; empty unless ``keep_hidden``).
    """
    batch, frames, slots, _ = per_slot.shape
    with torch.autocast(per_slot.device.type, enabled=False):
        hidden = torch.relu_(first_preactivation(per_slot, per_position))
        kept: list[torch.Tensor] = []
        spare: torch.Tensor | None = None
        for weight, bias in zip(weights, biases):
            reusable = spare is not None and spare.shape == (hidden.shape[0], weight.shape[0])
            following = torch.relu_(torch.addmm(bias, hidden, weight.t(), out=spare if reusable else None))
            spare = None if kept and kept[-1] is hidden else hidden
            if keep_hidden:
                kept.append(following)
            hidden = following
        alpha_logits = torch.addmm(alpha_bias, hidden, alpha_weight.t()).view(batch, frames, slots, -1)
        masks = alpha_logits.softmax(dim=2)
        top = hidden.view(*masks.shape, -1)
        mixed = top[:, :, 0] * masks[:, :, 0, :, None]
        for slot in range(1, slots):
            mixed.addcmul_(top[:, :, slot], masks[:, :, slot, :, None])
    return alpha_logits, masks, mixed, kept


def first_preactivation(
    per_slot: torch.Tensor, per_position: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``per_slot_k + per_position_n`` for every slot and patch, flattened: (B * T * K * N, H_1), into ``out``
    (a tensor of that shape) when given."""
    batch, frames, slots, width = per_slot.shape
    shape = (batch, frames, slots, per_position.shape[0], width)
    target = None if out is None else out.view(shape)
    return torch.add(per_slot.unsqueeze(3), per_position, out=target).view(-1, width)


def _mask_relu_gradient_(gradient: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """``gradient * (activation > 0)`` written into ``gradient``: the ReLU backward, from its output or input."""
    return torch.ops.aten.threshold_backward.grad_input(gradient, activation, 0, grad_input=gradient)


def _masks_gradient_through_mixing(top: torch.Tensor, grad_mixed: torch.Tensor) -> torch.Tensor:
    """``<grad_mixed[b, t, n], top[b, t, k, n]>`` over the hidden width: (B, T, K, N) from ``top`` (B, T, K, N, H)
    and ``grad_mixed`` (B, T, N, H), one batched matrix-vector product per frame (no copy of ``top``)."""
    batch, frames, slots, patches, _ = top.shape
    result = top.new_empty(batch, frames, patches, slots)
    for b in range(batch):
        for t in range(frames):
            torch.bmm(top[b, t].transpose(0, 1), grad_mixed[b, t].unsqueeze(-1), out=result[b, t].unsqueeze(-1))
    return result.transpose(2, 3)


class BroadcastMixing(torch.autograd.Function):
    """:func:`hidden_and_mixing` as an autograd function with an in-place backward pass.

    ``apply(per_slot, per_position, alpha_weight, alpha_bias, W_2, b_2, ..., W_L, b_L)`` ->
    ``(alpha_logits, masks, mixed)``, shapes as in :func:`hidden_and_mixing`. All inputs share one dtype
    (the caller casts for autocast); the function itself runs without autocast.
    """

    @staticmethod
    def forward(ctx, per_slot, per_position, alpha_weight, alpha_bias, *weights_and_biases):  # type: ignore[override]
        weights, biases = weights_and_biases[0::2], weights_and_biases[1::2]
        alpha_logits, masks, mixed, kept = hidden_and_mixing(
            per_slot, per_position, weights, biases, alpha_weight, alpha_bias, keep_hidden=True
        )
        ctx.save_for_backward(per_slot, per_position, masks, alpha_weight, *kept, *weights)
        ctx.set_materialize_grads(False)
        return alpha_logits, masks, mixed

    @staticmethod
    def backward(ctx, grad_logits, grad_masks, grad_mixed):  # type: ignore[override]
        per_slot, per_position, masks, alpha_weight, *saved = ctx.saved_tensors
        kept, weights = saved[: len(saved) // 2], saved[len(saved) // 2 :]
        if grad_logits is None and grad_masks is None and grad_mixed is None:
            return (None,) * (4 + 2 * len(weights))
        with torch.autocast(masks.device.type, enabled=False):
            top = kept[-1] if kept else torch.relu_(first_preactivation(per_slot, per_position))
            gradient, grad_alpha_weight, grad_alpha_bias = _head_backward(
                masks, alpha_weight, top.view(*masks.shape, -1), grad_logits, grad_masks, grad_mixed
            )
            grad_per_slot, grad_per_position, layer_grads = _hidden_backward(
                gradient, per_slot, per_position, kept, weights
            )
        return grad_per_slot, grad_per_position, grad_alpha_weight, grad_alpha_bias, *layer_grads


def _head_backward(
    masks: torch.Tensor,
    alpha_weight: torch.Tensor,
    top: torch.Tensor,
    grad_logits: torch.Tensor | None,
    grad_masks: torch.Tensor | None,
    grad_mixed: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Through the mixing, softmax and alpha row: the gradient of the last hidden activation ``top``
    (B, T, K, N, H_L), as (R, H_L), and those of the alpha weight (1, H_L) and bias (1,)."""
    grad_of_masks = grad_masks
    if grad_mixed is not None:
        through_mixing = _masks_gradient_through_mixing(top, grad_mixed)
        grad_of_masks = through_mixing if grad_of_masks is None else grad_of_masks + through_mixing
    grad_of_logits = grad_logits
    if grad_of_masks is not None:
        through_softmax = masks * (grad_of_masks - (grad_of_masks * masks).sum(dim=2, keepdim=True))
        grad_of_logits = through_softmax if grad_of_logits is None else grad_of_logits + through_softmax
    # some output has a gradient, and the masks' and mixed's both reach the logits: grad_of_logits is set
    gradient = torch.mul(grad_of_logits.unsqueeze(-1), alpha_weight.view(-1))
    if grad_mixed is not None:
        gradient.addcmul_(masks.unsqueeze(-1), grad_mixed.unsqueeze(2))
    rows = grad_of_logits.numel()
    grad_alpha_weight = torch.mm(grad_of_logits.reshape(1, rows), top.view(rows, -1))
    return gradient.view(rows, -1), grad_alpha_weight, grad_of_logits.sum().reshape(1)


def _hidden_backward(
    gradient: torch.Tensor,
    per_slot: torch.Tensor,
    per_position: torch.Tensor,
    kept: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """From the gradient of the last hidden activation (R, H_L) down the hidden layers: the gradients of
    ``per_slot`` (B, T, K, H_1), ``per_position`` (N, H_1) and ``[W_2, b_2, ..., W_L, b_L]``.

    ``gradient`` is overwritten; besides it one more (R, H) buffer is allocated, which also takes the
    recomputed first activation.
    """
    rows, width = gradient.shape[0], per_slot.shape[-1]
    layer_grads: list[torch.Tensor] = []
    spare: torch.Tensor | None = None
    for layer in range(len(weights) - 1, -1, -1):
        _mask_relu_gradient_(gradient, kept[layer])
        if layer == 0:
            reusable = spare is not None and spare.shape == (rows, width)
            layer_input = torch.relu_(first_preactivation(per_slot, per_position, out=spare if reusable else None))
        else:
            layer_input = kept[layer - 1]
        layer_grads[:0] = [torch.mm(gradient.t(), layer_input), gradient.sum(dim=0)]
        if layer == 0:  # the recomputed activation is dead now: its memory takes the input gradient
            spare = layer_input
        reusable = spare is not None and spare.shape == (rows, weights[layer].shape[1])
        spare, gradient = gradient, torch.mm(gradient, weights[layer], out=spare if reusable else None)
    reusable = spare is not None and spare.shape == (rows, width)
    _mask_relu_gradient_(gradient, first_preactivation(per_slot, per_position, out=spare if reusable else None))
    gradient = gradient.view(*per_slot.shape[:3], per_position.shape[0], width)
    return gradient.sum(dim=3), gradient.flatten(0, 2).sum(dim=0), layer_grads
