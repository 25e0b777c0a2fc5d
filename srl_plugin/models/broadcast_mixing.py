"""The hidden layers, alpha head and slot mixing of the MLP broadcast decoder, frame by frame, as one autograd
function.

With ``K`` slots, ``N`` patches and hidden widths ``H_1 .. H_L`` the decoder's hidden activations are
``R x H_l`` with ``R = B * T * K * N`` rows (104 MB each at MOVi-C size, batch 1, fp32). Plain autograd keeps
all of them and allocates a fresh tensor of that size for every ReLU gradient, every linear input gradient,
the alpha-head gradient, the mixing gradient and the permuted copies that ``einsum`` makes for the mixing
(on CPU a fresh 104 MB tensor costs about as much again as the pass that fills it: page faults). The softmax
over slots and the mixing only combine rows of one frame, so everything here runs on chunks of whole frames
(``K * N`` rows each) in a few reused buffers of chunk size:

- forward: the first hidden activation ``relu(per_slot_k + per_position_n)`` exists one chunk at a time
  and is recomputed in the backward pass (one addition); only ``H_2 .. H_L`` are kept for the backward pass,
  and without gradients none is (evaluation needs chunk-sized memory only);
- backward: the gradients run down the layers chunk by chunk, in place (ReLU gradients from the sign of the
  kept outputs), accumulating the weight gradients; no ``R x H`` gradient tensor exists.

Values are those of the plain formulation up to floating-point reassociation (the recomputed activation is
bitwise the forward one). The kept activations are left untouched, so the graph can be traversed more than
once (``retain_graph``).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

CHUNK_ELEMENTS = {"cpu": 2**23}
"""Elements of one chunk-sized buffer per device type (at least one frame per chunk); others use
``DEFAULT_CHUNK_ELEMENTS``. On CPU small chunks stay in memory already mapped between uses."""
DEFAULT_CHUNK_ELEMENTS = 2**28


def frame_chunks(frames: int, rows_per_frame: int, width: int, device: torch.device) -> Iterator[slice]:
    """Consecutive slices of ``frames`` frames, each of at least one frame and, where possible, at most
    ``CHUNK_ELEMENTS`` values of ``rows_per_frame x width``."""
    budget = CHUNK_ELEMENTS.get(device.type, DEFAULT_CHUNK_ELEMENTS)
    step = max(1, budget // (rows_per_frame * width))
    return (slice(start, min(start + step, frames)) for start in range(0, frames, step))


class _Scratch:
    """Reusable chunk-sized buffers, one per name and width, grown to the largest row count asked for."""

    def __init__(self, like: torch.Tensor) -> None:
        self.like = like
        self.buffers: dict[tuple[str, int], torch.Tensor] = {}

    def get(self, name: str, rows: int, width: int) -> torch.Tensor:
        """An uninitialised (rows, width) tensor (same dtype and device as ``like``) that stays valid until the
        next ``get`` of ``name`` and ``width``."""
        buffer = self.buffers.get((name, width))
        if buffer is None or buffer.shape[0] < rows:
            buffer = self.buffers[name, width] = self.like.new_empty(rows, width)
        return buffer[:rows]


def first_activation(per_slot: torch.Tensor, per_position: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``relu(per_slot_k + per_position_n)`` for every slot of ``per_slot`` (F, K, H_1) and patch of
    ``per_position`` (N, H_1), flattened to (F * K * N, H_1) in ``out`` (a tensor of that shape)."""
    frames, slots, width = per_slot.shape
    target = out.view(frames, slots, per_position.shape[0], width)
    return torch.relu_(torch.add(per_slot.unsqueeze(2), per_position, out=target)).view(-1, width)


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
        keep_hidden: return the hidden activations after the first (what the backward pass needs).

    Returns ``alpha_logits`` (B, T, K, N), ``masks`` (B, T, K, N) (softmax over slots), ``mixed``
    (B, T, N, H_L) (``sum_k masks_k * hidden_k``) and the kept activations ``[(R, H_l) for l = 2 .. L]`` (ReLU
    outputs, rows in (B, T, K, N) order; empty unless ``keep_hidden``).
    """
    batch, time, slots, first_width = per_slot.shape
    patches = per_position.shape[0]
    frames, rows_per_frame = batch * time, slots * patches
    widest = max([first_width, *(weight.shape[0] for weight in weights)])
    top_width = weights[-1].shape[0] if weights else first_width
    per_frame = per_slot.reshape(frames, slots, first_width)
    alpha_logits = per_slot.new_empty(frames, slots, patches)
    masks = torch.empty_like(alpha_logits)
    mixed = per_slot.new_empty(frames, patches, top_width)
    kept = [per_slot.new_empty(frames * rows_per_frame, weight.shape[0]) for weight in weights] if keep_hidden else []
    scratch = _Scratch(per_slot)
    with torch.autocast(per_slot.device.type, enabled=False):
        for chunk in frame_chunks(frames, rows_per_frame, widest, per_slot.device):
            rows = slice(chunk.start * rows_per_frame, chunk.stop * rows_per_frame)
            count = rows.stop - rows.start
            hidden = first_activation(per_frame[chunk], per_position, scratch.get("hidden0", count, first_width))
            for layer, (weight, bias) in enumerate(zip(weights, biases)):
                target = kept[layer][rows] if keep_hidden else scratch.get(f"hidden{(layer + 1) % 2}", count, weight.shape[0])
                hidden = torch.relu_(torch.addmm(bias, hidden, weight.t(), out=target))
            torch.addmm(alpha_bias, hidden, alpha_weight.t(), out=alpha_logits[chunk].view(-1, 1))
            masks[chunk] = alpha_logits[chunk].softmax(dim=1)
            top = hidden.view(-1, slots, patches, top_width)
            mixing = masks[chunk].unsqueeze(-1)
            torch.mul(top[:, 0], mixing[:, 0], out=mixed[chunk])
            for slot in range(1, slots):
                mixed[chunk].addcmul_(top[:, slot], mixing[:, slot])
    shape = (batch, time, slots, patches)
    return alpha_logits.view(shape), masks.view(shape), mixed.view(batch, time, patches, top_width), kept


def _masks_gradient_through_mixing(top: torch.Tensor, grad_mixed: torch.Tensor) -> torch.Tensor:
    """``<grad_mixed[f, n], top[f, k, n]>`` over the hidden width: (F, K, N) from ``top`` (F, K, N, H) and
    ``grad_mixed`` (F, N, H), one batched matrix-vector product per frame (no copy of ``top``)."""
    frames, slots, patches, _ = top.shape
    result = top.new_empty(frames, patches, slots)
    for frame in range(frames):
        torch.bmm(top[frame].transpose(0, 1), grad_mixed[frame].unsqueeze(-1), out=result[frame].unsqueeze(-1))
    return result.transpose(1, 2)


def _mask_relu_gradient_(gradient: torch.Tensor, relu_output: torch.Tensor) -> torch.Tensor:
    """``gradient * (relu_output > 0)`` written into ``gradient``: the ReLU backward without a new tensor."""
    return torch.ops.aten.threshold_backward.grad_input(gradient, relu_output, 0, grad_input=gradient)


class BroadcastMixing(torch.autograd.Function):
    """:func:`hidden_and_mixing` as an autograd function with a chunked, in-place backward pass.

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
            return _backward(per_slot, per_position, masks, alpha_weight, kept, weights, grad_logits, grad_masks, grad_mixed)


def _backward(
    per_slot: torch.Tensor,
    per_position: torch.Tensor,
    masks: torch.Tensor,
    alpha_weight: torch.Tensor,
    kept: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor],
    grad_logits: torch.Tensor | None,
    grad_masks: torch.Tensor | None,
    grad_mixed: torch.Tensor | None,
) -> tuple[torch.Tensor, ...]:
    """Gradients of :class:`BroadcastMixing`'s inputs, in its argument order, chunk by chunk of frames."""
    batch, time, slots, patches = masks.shape
    frames, rows_per_frame, first_width = batch * time, slots * patches, per_slot.shape[-1]
    widths = [first_width, *(weight.shape[0] for weight in weights)]
    per_frame = per_slot.reshape(frames, slots, first_width)
    masks = masks.reshape(frames, slots, patches)
    grad_of_masks = None if grad_masks is None else grad_masks.reshape(frames, slots, patches)
    grad_of_logits = None if grad_logits is None else grad_logits.reshape(frames, slots, patches)
    grad_mixed = None if grad_mixed is None else grad_mixed.reshape(frames, patches, widths[-1])
    grad_per_slot = torch.empty_like(per_frame)
    grad_per_position = torch.zeros_like(per_position)
    grad_alpha_weight, grad_alpha_bias = torch.zeros_like(alpha_weight), alpha_weight.new_zeros(1)
    grad_weights = [torch.zeros_like(weight) for weight in weights]
    grad_biases = [weight.new_zeros(weight.shape[0]) for weight in weights]
    scratch = _Scratch(per_slot)
    for chunk in frame_chunks(frames, rows_per_frame, max(widths), per_slot.device):
        rows = slice(chunk.start * rows_per_frame, chunk.stop * rows_per_frame)
        count = rows.stop - rows.start
        hidden = [first_activation(per_frame[chunk], per_position, scratch.get("hidden0", count, first_width))]
        hidden += [activation[rows] for activation in kept]
        top = hidden[-1].view(-1, slots, patches, widths[-1])
        chunk_masks = masks[chunk]
        logits_gradient = None if grad_of_logits is None else grad_of_logits[chunk]
        masks_gradient = None if grad_of_masks is None else grad_of_masks[chunk]
        if grad_mixed is not None:
            through_mixing = _masks_gradient_through_mixing(top, grad_mixed[chunk])
            masks_gradient = through_mixing if masks_gradient is None else masks_gradient + through_mixing
        if masks_gradient is not None:
            through_softmax = chunk_masks * (masks_gradient - (masks_gradient * chunk_masks).sum(dim=1, keepdim=True))
            logits_gradient = through_softmax if logits_gradient is None else logits_gradient + through_softmax
        # some output has a gradient, and those of the masks and of mixed both reach the logits
        gradient = scratch.get("gradient0", count, widths[-1])
        torch.mul(logits_gradient.unsqueeze(-1), alpha_weight.view(-1), out=gradient.view(top.shape))
        if grad_mixed is not None:
            gradient.view(top.shape).addcmul_(chunk_masks.unsqueeze(-1), grad_mixed[chunk].unsqueeze(1))
        grad_alpha_weight.addmm_(logits_gradient.reshape(1, count), hidden[-1])
        grad_alpha_bias += logits_gradient.sum()
        for layer in range(len(weights) - 1, -1, -1):
            _mask_relu_gradient_(gradient, hidden[layer + 1])
            grad_weights[layer].addmm_(gradient.t(), hidden[layer])
            grad_biases[layer] += gradient.sum(dim=0)
            target = scratch.get(f"gradient{(len(weights) - layer) % 2}", count, widths[layer])
            gradient = torch.mm(gradient, weights[layer], out=target)
        _mask_relu_gradient_(gradient, hidden[0])
        gradient = gradient.view(-1, slots, patches, first_width)
        torch.sum(gradient, dim=2, out=grad_per_slot[chunk])
        grad_per_position += gradient.flatten(0, 1).sum(dim=0)
    layer_grads = [grad for pair in zip(grad_weights, grad_biases) for grad in pair]
    return grad_per_slot.view_as(per_slot), grad_per_position, grad_alpha_weight, grad_alpha_bias, *layer_grads
