"""Images of predicted masks over video frames for TensorBoard and PNG files."""
from __future__ import annotations

import colorsys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

LABEL_WIDTH = 44
LEGEND_HEIGHT = 14
LEGEND_ENTRY_WIDTH = 50

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
    """A labelled (3, H', W') image: row "input" the frames, row "slots" the coloured masks blended over them,
    and a legend naming the colour of each slot ("slot 0", "slot 1", ...) below.

    Args:
        frames: (T, 3, H, W) RGB in [0, 1], or ``None`` (then only the coloured masks are drawn).
        masks: (T, K, Hm, Wm) one-hot predicted masks.
        alpha: weight of the mask colour in the blend.
    """
    masks = masks.float().cpu()
    palette = slot_palette(masks.shape[1])
    colours = torch.einsum("tkhw,kc->tchw", masks, palette)
    if frames is None:
        return label_grid(make_grid(colours, nrow=colours.shape[0], padding=2), ["slots"], palette)
    frames = F.interpolate(frames.float().cpu(), size=masks.shape[-2:], mode="bilinear", align_corners=False)
    overlay = (1.0 - alpha) * frames + alpha * colours
    grid = make_grid(torch.cat([frames, overlay]), nrow=frames.shape[0], padding=2)
    return label_grid(grid, ["input", "slots"], palette)


def label_grid(grid: torch.Tensor, row_names: list[str], palette: torch.Tensor) -> torch.Tensor:
    """``grid`` (3, H, W) in [0, 1] of ``len(row_names)`` equal rows, with the row names written in a left
    margin and a legend of the ``palette`` (K, 3) colours ("slot k") below; returns (3, H', W')."""
    height, width = grid.shape[-2:]
    pixels = (grid.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    canvas_width = LABEL_WIDTH + max(width, LEGEND_ENTRY_WIDTH * palette.shape[0])
    canvas = Image.new("RGB", (canvas_width, height + LEGEND_HEIGHT), "white")
    canvas.paste(Image.fromarray(pixels), (LABEL_WIDTH, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    row_height = height / len(row_names)
    for index, name in enumerate(row_names):
        draw.text((2, int(row_height * (index + 0.5)) - 5), name, fill="black", font=font)
    x = LABEL_WIDTH
    for slot, colour in enumerate(palette.tolist()):
        draw.rectangle((x, height + 3, x + 8, height + 11), fill=tuple(int(255 * value) for value in colour))
        draw.text((x + 10, height + 1), f"slot {slot}", fill="black", font=font)
        x += LEGEND_ENTRY_WIDTH
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255.0
