"""Frozen timm ViT backbone returning last-block patch tokens (and keys), docs/METHODS.md §1.4."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import timm
import torch
from einops import rearrange
from torch import nn

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _cached_pretrained_file(model: nn.Module, model_name: str) -> Path:
    """Path of the timm weights for ``model`` in the local Hugging Face cache; never downloads."""
    from huggingface_hub import try_to_load_from_cache

    hub_id = getattr(model, "pretrained_cfg", {}).get("hf_hub_id")
    if hub_id:
        for filename in _WEIGHT_FILES:
            found = try_to_load_from_cache(repo_id=hub_id, filename=filename)
            if isinstance(found, str):
                return Path(found)
    raise FileNotFoundError(
        f"pretrained weights for timm model '{model_name}' (hub id '{hub_id}') are not in the local "
        "Hugging Face cache and are never downloaded during training. Fix: on a machine with internet run "
        f"`python -c \"import timm; timm.create_model('{model_name}', pretrained=True)\"` and copy the "
        "Hugging Face cache (~/.cache/huggingface or $HF_HOME) here, or pass `weights_path` pointing to a "
        "timm state dict (.safetensors/.pth). Tests may set `allow_random_init: true`."
    )


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 over the module's state dict (names, dtypes, shapes and raw bytes, in key order).

    Identifies the exact weights, so that e.g. a feature cache or a checkpoint never meets other backbone weights
    than those it was made with (DINOv2 vs random init, or another random seed).
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(data.dtype).encode())
        digest.update(str(tuple(data.shape)).encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def check_video(video: torch.Tensor, input_size: int) -> None:
    """Raises ``ValueError`` unless ``video`` is (B, T, 3, input_size, input_size)."""
    if video.dim() != 5 or video.shape[2] != 3:
        raise ValueError(f"video must be (B, T, 3, H, W), got shape {tuple(video.shape)}")
    if tuple(video.shape[-2:]) != (input_size, input_size):
        raise ValueError(
            f"frames are {tuple(video.shape[-2:])} but the backbone was built for "
            f"{input_size}x{input_size}; resize the frames or change input_size"
        )


class FrozenViTBackbone(nn.Module):
    """A frozen timm ViT applied frame by frame.

    Returns the last transformer block's tokens BEFORE the final norm with the CLS (prefix) tokens
    dropped, and optionally that block's attention keys (middle third of ``qkv``, all heads, prefix
    dropped). The final norm and the head are removed, so the state dict matches the official
    feature-extractor layout. Parameters never require grad, the module stays in eval mode even when
    its parent calls ``.train()``, and the forward runs under ``torch.no_grad()``.

    Args:
        model_name: timm name, e.g. ``vit_small_patch14_dinov2.lvd142m`` (336 or 518 input),
            ``vit_base_patch14_dinov2.lvd142m``, ``vit_base_patch8_224.dino``, ``vit_base_patch16_224.dino``.
        input_size: square input side in pixels; must be a multiple of the patch size.
        pretrained: load timm's pretrained weights from the local Hugging Face cache (never downloads).
        weights_path: a local timm-format state dict; takes precedence over ``pretrained``.
        allow_random_init: accept random weights when neither source is used (tests only).
        return_keys: also return the last block's keys.
        model_kwargs: extra ``timm.create_model`` kwargs (e.g. ``depth``/``embed_dim`` for tiny test models).
    """

    def __init__(
        self,
        model_name: str,
        input_size: int,
        pretrained: bool = True,
        weights_path: str | None = None,
        allow_random_init: bool = False,
        return_keys: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not (pretrained or weights_path or allow_random_init):
            raise ValueError(
                f"FrozenViTBackbone('{model_name}') has no weights: set pretrained: true (weights from the "
                "local timm/Hugging Face cache), weights_path: <timm state dict>, or allow_random_init: true "
                "(tests only)."
            )
        kwargs = {"dynamic_img_size": True, "num_classes": 0, **(model_kwargs or {})}
        model = timm.create_model(model_name, pretrained=False, **kwargs)
        if weights_path is not None:
            timm.models.load_checkpoint(model, str(weights_path), strict=True)
        elif pretrained:
            timm.models.load_checkpoint(model, str(_cached_pretrained_file(model, model_name)), strict=True)
        model.norm = nn.Identity()
        self.model = model.eval()
        self.model.requires_grad_(False)
        self.model_name = model_name
        self.return_keys = return_keys
        self.patch_size = int(model.patch_embed.patch_size[0])
        if input_size % self.patch_size != 0:
            raise ValueError(f"input_size {input_size} is not a multiple of the patch size {self.patch_size}")
        self.input_size = input_size
        self.patch_grid = (input_size // self.patch_size, input_size // self.patch_size)
        self.num_patches = self.patch_grid[0] * self.patch_grid[1]
        self.feature_dim = int(model.embed_dim)
        self.num_prefix_tokens = int(model.num_prefix_tokens)

    def train(self, mode: bool = True) -> FrozenViTBackbone:
        """Keeps the ViT in eval mode whatever ``mode`` is (the backbone is frozen)."""
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """``video`` (B, T, 3, H, W) normalised frames with ``H = W = input_size``.

        Returns ``backbone_features`` (B, T, N, D_f) and, with ``return_keys``, ``backbone_keys`` (B, T, N, D_f).
        """
        check_video(video, self.input_size)
        batch_size = video.shape[0]
        frames = rearrange(video, "b t c h w -> (b t) c h w")
        captured: list[torch.Tensor] = []
        handle = None
        if self.return_keys:
            handle = self.model.blocks[-1].attn.qkv.register_forward_hook(
                lambda _module, _inputs, output: captured.append(output)
            )
        try:
            tokens = self.model.forward_features(frames)
        finally:
            if handle is not None:
                handle.remove()
        outputs = {
            "backbone_features": rearrange(
                tokens[:, self.num_prefix_tokens :], "(b t) n d -> b t n d", b=batch_size
            )
        }
        if self.return_keys:
            keys = captured[0][:, self.num_prefix_tokens :, self.feature_dim : 2 * self.feature_dim]
            outputs["backbone_keys"] = rearrange(keys, "(b t) n d -> b t n d", b=batch_size)
        return outputs
