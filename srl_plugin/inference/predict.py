"""Streaming inference of a trained model over a whole video, and the outputs of ``srl-infer``.

The video is read and cut into windows of ``window`` frames, which go through the runtime's streaming runner
(:func:`srl_plugin.runtime.stream`: each window starts from the previous window's slots, so slot ``k`` keeps its
identity over the whole video and the result equals one pass over all frames), while memory stays bounded by
the window.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from srl_plugin.data.families import DatasetFamily, config_family, dataset_family
from srl_plugin.inference.overlay import mask_grid, overlay_masks, slot_palette
from srl_plugin.data.video_io import VideoSource, is_shard, open_videos
from srl_plugin.inference.writers import OverlayWriter, StreamingNpzWriter
from srl_plugin.metrics import slot_ids_from_soft
from srl_plugin.models import RandomInit
from srl_plugin.runtime import load_model, stream


def windows_of(frames: Iterable[np.ndarray], window: int) -> Iterator[np.ndarray]:
    """Groups single ``(H, W, 3)`` frames into ``(<= window, H, W, 3)`` arrays."""
    if window < 1:
        raise ValueError(f"window must be at least 1 frame, got {window}")
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == window:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given (checked)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available; use --device cpu")
    return resolved


@dataclass
class InferenceResult:
    """What :func:`infer_video` wrote: the folder, the files, the frame count and the run time (s)."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    num_frames: int = 0
    seconds: float = 0.0


def _grid_indices(num_frames: int | None, count: int, window: int) -> set[int]:
    """Frames shown in the mask grid: evenly spaced when the length is known, else one per window."""
    if num_frames:
        return {int(round(i)) for i in np.linspace(0, num_frames - 1, min(count, num_frames))}
    return {i * window for i in range(count)}


@torch.no_grad()
def infer_video(
    model: nn.Module,
    source: VideoSource,
    out_dir: str | Path,
    window: int = 8,
    device: str | torch.device = "cpu",
    dataset_type: str | DatasetFamily = "movi",
    alpha: float = 0.5,
    grid_frames: int = 4,
    gif_frames: int = 48,
    write_mp4: bool = True,
    progress: bool = True,
) -> InferenceResult:
    """Runs ``model`` over ``source`` in windows and writes the outputs to ``out_dir``.

    Frames are prepared as the validation transform of the dataset family ``dataset_type`` does
    (:mod:`srl_plugin.data.families`; ``movi``: bicubic resize of the whole frame to the model's input size;
    ``ytvis``: central square crop first), and every output covers the part of the frame the model sees
    (:meth:`~srl_plugin.data.families.DatasetFamily.model_view`).

    Files: ``masks.npz`` (``slot_ids`` uint8 ``(T, H, W)`` at the input resolution, ``soft_masks`` float32
    ``(T, K, h, w)`` at patch resolution, ``fps``), ``slots.npy`` float32 ``(T, K, D)``, ``overlay.mp4``
    (unless ``write_mp4`` is false) and ``overlay.gif`` (first ``gif_frames`` frames) with one colour per slot,
    and ``mask_grid.png`` (frame, overlay and per-slot masks for ``grid_frames`` frames).
    """
    started = time.perf_counter()
    family = dataset_family(dataset_type)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    model = model.to(device).eval()
    if model.num_slots > 255:
        raise ValueError(f"{model.num_slots} slots do not fit the uint8 slot-id map")
    palette = slot_palette(model.num_slots)
    npz = StreamingNpzWriter(out_dir / "masks.npz")
    mp4_path = out_dir / "overlay.mp4" if write_mp4 else None
    overlay = OverlayWriter(mp4_path, out_dir / "overlay.gif", source.fps, gif_frames)
    chosen = _grid_indices(source.num_frames, grid_frames, window)
    grid_rows: tuple[list, list, list] = ([], [], [])
    slots: list[np.ndarray] = []
    frame_windows: list[np.ndarray] = []

    def video_windows() -> Iterator[dict[str, torch.Tensor]]:
        for frames in windows_of(source.frames(), window):
            frames = family.model_view(frames)
            frame_windows.append(frames)
            yield {"video": family.prepare_video(frames, model.input_size).unsqueeze(0).to(device)}

    bar = tqdm(total=source.num_frames, unit="frame", desc=source.name, disable=not progress)
    start = 0
    try:
        for outputs in stream(model, video_windows()):
            frames = frame_windows.pop()
            soft = model.eval_masks(outputs)[0].float()
            ids = slot_ids_from_soft(soft[None], tuple(frames.shape[1:3]))[0].to(torch.uint8).cpu().numpy()
            soft_np = soft.reshape(*soft.shape[:2], *model.patch_grid).cpu().numpy()
            npz.append("slot_ids", ids)
            npz.append("soft_masks", soft_np)
            slots.append(outputs["slots"][0].float().cpu().numpy())
            blended = overlay_masks(frames, ids, palette, alpha)
            for offset, frame in enumerate(blended):
                overlay.write(frame)
                if start + offset in chosen:
                    upsampled = F.interpolate(soft[offset : offset + 1].reshape(1, -1, *model.patch_grid),
                                              size=frames.shape[1:3], mode="bilinear", align_corners=False)
                    grid_rows[0].append(frames[offset])
                    grid_rows[1].append(upsampled[0].clamp(0, 1).cpu().numpy())
                    grid_rows[2].append(ids[offset])
            start += len(frames)
            bar.update(len(frames))
        if start == 0:
            raise ValueError(f"{source.name}: the input holds no frames")
    except BaseException:
        npz.discard()
        overlay.discard()
        raise
    finally:
        bar.close()
    npz.append("fps", np.asarray([source.fps], dtype=np.float32))
    files = [npz.close()]
    np.save(out_dir / "slots.npy", np.concatenate(slots))
    files.append(out_dir / "slots.npy")
    files += overlay.close()
    Image.fromarray(mask_grid(*grid_rows, palette)).save(out_dir / "mask_grid.png")
    files.append(out_dir / "mask_grid.png")
    return InferenceResult(out_dir, files, start, time.perf_counter() - started)


def run_inference(
    input_path: str | Path,
    checkpoint: str | Path,
    out_dir: str | Path,
    window: int = 8,
    device: str = "auto",
    seed: int = 0,
    key: str | None = None,
    **options,
) -> list[InferenceResult]:
    """Loads ``checkpoint``, reads ``input_path`` (video file, frame folder or shard) and runs :func:`infer_video`.

    A shard gets one sub-folder per sample key. ``seed`` fixes VideoSAUR's random
    slot initialisation (the ``eval_seed`` of its ``RandomInit``, 0 as in ``srl-eval``). ``options`` go to
    :func:`infer_video`.
    """
    resolved = resolve_device(device)
    model, config = load_model(checkpoint)
    for module in model.modules():
        if isinstance(module, RandomInit):
            module.eval_seed = seed
    family = config_family(config)
    sources = open_videos(input_path, key=key, mask_channels=family.mask_channels)
    out_dir = Path(out_dir)
    results = []
    for source in sources:
        target = out_dir / source.name if is_shard(input_path) else out_dir
        results.append(
            infer_video(model, source, target, window=window, device=resolved, dataset_type=family, **options)
        )
    return results
