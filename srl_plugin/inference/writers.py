"""Streaming output writers: an ``.npz`` whose arrays grow window by window, and the overlay video / GIF."""
from __future__ import annotations

import shutil
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from srl_plugin.data.video_io import require_av

_COPY_CHUNK = 1 << 22


class StreamingNpzWriter:
    """Builds an ``.npz`` from arrays appended along axis 0, holding only one chunk in memory at a time.

    Each array's chunks go to a temporary raw file; :meth:`close` writes the ``.npy`` headers (now that the
    lengths are known) and copies the data into the zip. ``np.load`` reads the result as usual.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._dir = Path(tempfile.mkdtemp(prefix="srl_npz_", dir=self.path.parent))
        self._arrays: dict[str, tuple[np.dtype, tuple[int, ...], int]] = {}

    def append(self, name: str, chunk: np.ndarray) -> None:
        """Appends ``chunk`` ``(n, ...)`` to array ``name`` (same dtype and trailing shape every time)."""
        chunk = np.ascontiguousarray(chunk)
        if name in self._arrays:
            dtype, tail, length = self._arrays[name]
            if chunk.dtype != dtype or chunk.shape[1:] != tail:
                raise ValueError(f"chunk {chunk.dtype} {chunk.shape} does not extend '{name}' ({dtype}, (n, *{tail}))")
        else:
            dtype, tail, length = chunk.dtype, chunk.shape[1:], 0
        with open(self._dir / name, "ab") as raw:
            raw.write(chunk.tobytes())
        self._arrays[name] = (dtype, tail, length + chunk.shape[0])

    def discard(self) -> None:
        """Drops everything appended so far (after a failed run); no ``.npz`` is written."""
        shutil.rmtree(self._dir, ignore_errors=True)
        self._arrays.clear()

    def close(self) -> Path:
        """Writes the ``.npz`` and removes the temporary files; returns its path."""
        try:
            with zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
                for name, (dtype, tail, length) in self._arrays.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                        descr = np.lib.format.dtype_to_descr(dtype)
                        header = {"descr": descr, "fortran_order": False, "shape": (length, *tail)}
                        np.lib.format.write_array_header_2_0(entry, header)
                        with open(self._dir / name, "rb") as raw:
                            shutil.copyfileobj(raw, entry, _COPY_CHUNK)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
        return self.path


class OverlayWriter:
    """Writes overlay frames to an H.264 ``.mp4`` as they come, and keeps a small GIF preview.

    Args:
        mp4_path: video output (needs PyAV); ``None`` writes none.
        gif_path: GIF of the first ``gif_frames`` frames, longer side at most ``gif_size`` pixels.
        fps: frame rate of both outputs.
    """

    def __init__(
        self, mp4_path: Path | None, gif_path: Path | None, fps: float, gif_frames: int = 48, gif_size: int = 256
    ) -> None:
        self.mp4_path, self.gif_path = mp4_path, gif_path
        self.fps = fps
        self.gif_frames, self.gif_size = gif_frames, gif_size
        self._gif: list[Image.Image] = []
        self._container = None
        self._stream = None

    def _open_mp4(self, height: int, width: int) -> None:
        av = require_av()
        self._container = av.open(str(self.mp4_path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1000))
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": "18"}

    def write(self, frame: np.ndarray) -> None:
        """Adds one ``(H, W, 3)`` uint8 overlay frame."""
        if self.mp4_path is not None:
            if self._container is None:
                self._open_mp4(*frame.shape[:2])
            av = require_av()
            padded = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
            for packet in self._stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
                self._container.mux(packet)
        if self.gif_path is not None and len(self._gif) < self.gif_frames:
            image = Image.fromarray(frame)
            image.thumbnail((self.gif_size, self.gif_size), Image.Resampling.NEAREST)
            self._gif.append(image)

    def discard(self) -> None:
        """Closes and deletes a partly written ``.mp4`` and drops the GIF frames (after a failed run)."""
        if self._container is not None:
            self._container.close()
            self._container = None
            self.mp4_path.unlink(missing_ok=True)
        self._gif.clear()

    def close(self) -> list[Path]:
        """Finishes the files; returns those written."""
        written = []
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            written.append(self.mp4_path)
        if self._gif:
            duration = max(20, round(1000 / self.fps))
            self._gif[0].save(self.gif_path, save_all=True, append_images=self._gif[1:], duration=duration, loop=0)
            written.append(self.gif_path)
        return written
