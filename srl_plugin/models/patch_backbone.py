"""A parameter-free frozen feature extractor: each patch's own pixels, for CPU demos without pretrained weights.

A random ViT mixes a patch's appearance into features that carry little object information; the pixels of a
small patch keep local colour and texture exactly, which is what separates the objects of the synthetic scenes.
Optionally each pixel's colour is first embedded by fixed random Fourier features and averaged per patch (a soft
colour histogram; the synthetic presets' ``patch_colours``, docs/SYNTHETIC.md).
It has the interface of :class:`srl_plugin.models.FrozenViTBackbone` (same constructor keywords, so it fills
the same ``model.backbone`` config node; ``feature_dim``, ``num_patches``, ``input_size``, ``patch_size``), so the
methods run on it unchanged.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from einops import rearrange
from torch import nn

from srl_plugin.models.backbone import check_video


COLOUR_FEATURE_SEED = 0


class PatchPixels(nn.Module):
    """Describes each non-overlapping ``patch_size`` square of a frame by its pixels, then appends a fixed Fourier
    encoding of the patch centre. Three optional steps shape the pixel part, in this order:

    - **colour features**: each pixel's colour ``c`` becomes ``cos(W c + b)`` with fixed random ``W`` (3, D_c) of
      entries ``N(0, 1 / bandwidth^2)`` and ``b`` uniform in ``[0, 2 pi)``, drawn from a generator seeded with
      ``COLOUR_FEATURE_SEED`` (the same features in every run, like a backbone with fixed weights). Averaged over
      a patch these random Fourier features estimate the patch's colour distribution embedded by a Gaussian
      kernel of width ``bandwidth``: a soft colour histogram where clearly different colours are near-orthogonal
      and a patch on a boundary is the area-weighted mix of the colours it holds;
    - **cells**: average pooling to ``cells x cells`` values per patch (``cells = patch_size`` keeps every pixel);
    - **projection**: a fixed random linear map (a buffer drawn from the global torch generator, so a seed fixes it).

    The position channels matter: the MLP broadcast decoder can only place a slot's mask where the slot says its
    object is, and slot attention only learns that from the features (a ViT's features carry its position
    embedding; bare pixels carry none).

    Args:
        patch_size: side of a patch in pixels (``P``).
        grid: patches per side (``G``; the frames are ``G P`` pixels square).
        cells: values per patch side after average pooling (``C``, a divisor of ``P``); ``None`` means ``P``.
        colour_features: number of colour features per pixel (``D_c``); ``None`` keeps the 3 colour values.
        colour_bandwidth: width of the Gaussian colour kernel, in the units of the (normalised) frames.
        projection_dim: width of the fixed projection; ``None`` keeps the ``D_c C^2`` values.
        position_frequencies: ``f`` of the channels ``sin(pi f x), cos(pi f x), sin(pi f y), cos(pi f y)`` with the
            patch centre ``(x, y)`` in ``[-1, 1]``; empty for none.
        position_scale: factor on the position channels.
    """

    def __init__(
        self,
        patch_size: int,
        grid: int,
        cells: int | None = None,
        colour_features: int | None = None,
        colour_bandwidth: float = 1.0,
        projection_dim: int | None = None,
        position_frequencies: Sequence[float] = (),
        position_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if patch_size < 1 or grid < 1:
            raise ValueError(f"patch_size and grid must be >= 1, got {patch_size} and {grid}")
        self.patch_size = patch_size
        self.cells = patch_size if cells is None else cells
        if self.cells < 1 or patch_size % self.cells != 0:
            raise ValueError(f"cells must be a positive divisor of the patch size {patch_size}, got {cells}")
        if colour_features is None:
            self.register_buffer("colour_weight", None)
            self.register_buffer("colour_phase", None)
            channels = 3
        else:
            if colour_features < 1 or colour_bandwidth <= 0:
                raise ValueError(
                    f"need colour_features >= 1 and colour_bandwidth > 0, got {colour_features} and {colour_bandwidth}"
                )
            generator = torch.Generator().manual_seed(COLOUR_FEATURE_SEED)
            self.register_buffer("colour_weight", torch.randn(3, colour_features, generator=generator) / colour_bandwidth)
            self.register_buffer("colour_phase", 2 * math.pi * torch.rand(colour_features, generator=generator))
            channels = colour_features
        pixel_dim = channels * self.cells * self.cells
        if projection_dim is None:
            self.register_buffer("projection", None)
        else:
            if projection_dim < 1:
                raise ValueError(f"projection_dim must be >= 1 or null, got {projection_dim}")
            self.register_buffer("projection", torch.randn(pixel_dim, projection_dim) / pixel_dim**0.5)
        self.register_buffer(
            "position", position_scale * fourier_positions(grid, position_frequencies), persistent=False
        )
        self.embed_dim = (projection_dim or pixel_dim) + self.position.shape[1]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` (F, 3, G P, G P) -> patch descriptors (F, G^2, D) in row-major patch order."""
        if self.colour_weight is not None:
            frames = torch.cos(
                torch.einsum("fchw,cd->fdhw", frames, self.colour_weight) + self.colour_phase[:, None, None]
            )
        if self.cells != self.patch_size:
            frames = nn.functional.avg_pool2d(frames, self.patch_size // self.cells)
        patches = rearrange(frames, "f c (h p) (w q) -> f (h w) (p q c)", p=self.cells, q=self.cells)
        if self.projection is not None:
            patches = patches @ self.projection
        return torch.cat([patches, self.position.expand(len(frames), -1, -1)], dim=-1)


def fourier_positions(grid: int, frequencies: Sequence[float]) -> torch.Tensor:
    """(G^2, 4 len(frequencies)): ``sin(pi f x), cos(pi f x), sin(pi f y), cos(pi f y)`` per frequency, for the
    patch centres ``(x, y)`` of a ``G x G`` grid in ``[-1, 1]``, row-major."""
    centres = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2.0 - 1.0
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    channels = [
        wave(math.pi * frequency * axis.flatten())
        for frequency in frequencies
        for axis in (x, y)
        for wave in (torch.sin, torch.cos)
    ]
    return torch.stack(channels, dim=-1) if channels else torch.zeros(grid * grid, 0)


class PatchPixelBackbone(nn.Module):
    """Frozen per-patch pixel features with the interface of :class:`srl_plugin.models.FrozenViTBackbone`.

    Args:
        model_name: a name for logs, checkpoints and the feature-cache fingerprint (e.g. ``patch_pixels``).
        input_size: square input side in pixels; must be a multiple of ``model_kwargs["patch_size"]``.
        pretrained, weights_path: must stay ``False`` / ``None``: there are no weights to load.
        allow_random_init: must be ``True`` when ``projection_dim`` is set (the projection is random, fixed by the
            seed, like a randomly initialised ViT); unused without a projection.
        return_keys: also return ``backbone_keys``, here the features themselves (VideoSAUR's similarity target).
        model_kwargs: ``patch_size`` and the other arguments of :class:`PatchPixels` but ``grid``.
    """

    def __init__(
        self,
        model_name: str,
        input_size: int,
        pretrained: bool = False,
        weights_path: str | None = None,
        allow_random_init: bool = False,
        return_keys: bool = False,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if pretrained or weights_path is not None:
            raise ValueError(
                f"backbone '{model_name}' (PatchPixelBackbone) has no pretrained weights to load: set "
                "model.backbone.pretrained=false and model.backbone.weights_path=null"
            )
        kwargs = dict(model_kwargs or {})
        if "patch_size" not in kwargs:
            raise ValueError(f"backbone '{model_name}' needs model.backbone.model_kwargs.patch_size")
        if kwargs.get("projection_dim") is not None and not allow_random_init:
            raise ValueError(
                f"backbone '{model_name}' projects its patches with a fixed random matrix: set "
                "model.backbone.allow_random_init=true, or model_kwargs.projection_dim=null for the raw pixels"
            )
        self.patch_size = int(kwargs["patch_size"])
        if self.patch_size < 1 or input_size % self.patch_size != 0:
            raise ValueError(
                f"input_size {input_size} is not a positive multiple of the patch size {self.patch_size}"
            )
        self.model = PatchPixels(grid=input_size // self.patch_size, **kwargs)
        self.model_name = model_name
        self.return_keys = return_keys
        self.input_size = input_size
        self.patch_grid = (input_size // self.patch_size, input_size // self.patch_size)
        self.num_patches = self.patch_grid[0] * self.patch_grid[1]
        self.feature_dim = self.model.embed_dim

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """``video`` (B, T, 3, H, W) normalised frames with ``H = W = input_size``.

        Returns ``backbone_features`` (B, T, N, D_f) and, with ``return_keys``, the same tensor as ``backbone_keys``.
        """
        check_video(video, self.input_size)
        features = rearrange(
            self.model(rearrange(video, "b t c h w -> (b t) c h w")), "(b t) n d -> b t n d", b=video.shape[0]
        )
        outputs = {"backbone_features": features}
        if self.return_keys:
            outputs["backbone_keys"] = features
        return outputs
