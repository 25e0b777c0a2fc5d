"""Images of predicted masks over video frames for TensorBoard and PNG files."""
from __future__ import annotations

import colorsys

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def denormalize(frames: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised frames (..., 3, H, W) -> RGB in [0, 1]."""
    mean = frames.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = frames.new_tensor(IMAGENET_STD).view(3, 1, 1)
    return (frames * std + mean).clamp(0.0, 1.0)


def slot_palette(num_slots: int) -> torch.Tensor:
    """(K, 3) distinct colours in [0, 1] (evenly spaced hues, full saturation)."""
    return torch.tensor([colorsys.hsv_to_rgb(index / num_slots, 1.0, 1.0) for index in range(num_slots)])


def mask_overlay_grid(frames: torch.Tensor | None, masks: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """A (3, H', W') image: row 1 the frames, row 2 the coloured masks blended over them.

    Args:
        frames: (T, 3, H, W) RGB in [0, 1], or ``None`` (then only the coloured masks are drawn).
        masks: (T, K, Hm, Wm) one-hot predicted masks.
        alpha: weight of the mask colour in the blend.
    """
    masks = masks.float().cpu()
    colours = torch.einsum("tkhw,kc->tchw", masks, slot_palette(masks.shape[1]))
    if frames is None:
        return make_grid(colours, nrow=colours.shape[0], padding=2)
    frames = F.interpolate(frames.float().cpu(), size=masks.shape[-2:], mode="bilinear", align_corners=False)
    overlay = (1.0 - alpha) * frames + alpha * colours
    return make_grid(torch.cat([frames, overlay]), nrow=frames.shape[0], padding=2)
