"""Webdataset tar shards of videos: writing, reading, validation, and the errors for bad input.

Layout (docs/METHODS.md §1.1, the VideoSAUR/SlotContrast MOVi shards): one tar per shard; each sample is a group
of consecutive members `<key>.video.npy` (uint8 (T, H, W, 3)) and, in validation shards,
`<key>.segmentations.npy` (MOVi: uint8 (T, H, W, 1) instance ids, 0 = background; YT-VIS: uint8
(T, H, W, I), one channel per instance holding its category id). OCL-style `.npy.gz` members are read too.
Other members (e.g. MOVi's `forward_flow.npy`) are ignored.

Every problem raises a `DataError` naming the shard and the sample: `MissingShardsError`,
`CorruptShardError` (unreadable or truncated tar), `BadSampleError` (missing key, wrong dtype or shape),
`NoSamplesError` (no shard of a split gives a usable sample).
"""
from __future__ import annotations

import glob
import gzip
import io
import os
import tarfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import braceexpand
import numpy as np

from srl_plugin.atomic import atomic_path

DATA_ROOT_ENV = "SRL_DATA_ROOT"
ARRAY_KEYS = ("video", "segmentations")
END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE

HOW_TO_GET_DATA = (
    "To get data: generate the synthetic MOVi-like set with `srl-make-synthetic --out DIR` (or give the data "
    "module `synthetic={...}` so that it generates it), or convert MOVi-C/E from TFDS (movi_c/128x128:1.0.0) "
    "with VideoSAUR's data/save_movi.py (YT-VIS 2021: data/save_ytvis2021.py), then point the data root at "
    f"the folder (data module `root`, or ${DATA_ROOT_ENV})."
)


class DataError(RuntimeError):
    """Base class of the data errors; the message names the shard (and the sample) and how to fix it."""


class MissingShardsError(DataError, FileNotFoundError):
    """Shards named by a pattern do not exist."""


class CorruptShardError(DataError):
    """A tar shard cannot be read to its end (corrupted or truncated)."""


class BadSampleError(DataError, ValueError):
    """A sample lacks a key or holds an array of the wrong dtype or shape."""


class NoSamplesError(DataError):
    """Every shard of a split is empty (or all its samples were skipped as bad): an epoch would never end."""


def resolve_root(root: str | os.PathLike[str] | None) -> Path | None:
    """`root`, else $SRL_DATA_ROOT, else None (patterns must then be absolute or relative to the cwd)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env).expanduser() if env else None


def _is_glob(name: str) -> bool:
    return any(char in name for char in "*?[")


def expand_shards(pattern: str, root: str | os.PathLike[str] | None = None) -> list[str]:
    """Expand `pattern` relative to `root` / $SRL_DATA_ROOT into shard paths, and check that they exist.

    A pattern is brace-expanded (`movi_c-train-{000000..000304}.tar`); a name with a wildcard
    (`ytvis-train-*.tar`) then matches every such shard, sorted by name, whatever their number. Several
    patterns may be joined by `::`. Raises `MissingShardsError` with the pattern searched and how to get the
    data (also when a wildcard matches nothing).
    """
    base = resolve_root(root)
    paths, missing = [], []
    for part in pattern.split("::"):
        for name in braceexpand.braceexpand(part):
            path = Path(name).expanduser()
            path = str(path if path.is_absolute() or base is None else base / path)
            if _is_glob(path):
                matches = sorted(match for match in glob.glob(path) if os.path.isfile(match))
                paths += matches
                missing += [] if matches else [path]
            else:
                paths.append(path)
                missing += [] if os.path.isfile(path) else [path]
    if missing:
        searched = str(Path(base) / pattern) if base is not None and not Path(pattern).is_absolute() else pattern
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise MissingShardsError(
            f"{len(missing)} of {len(paths)} shard(s) missing for pattern {searched!r} "
            f"(data root: {base if base is not None else f'none; set root or ${DATA_ROOT_ENV}'}): {shown}. "
            + HOW_TO_GET_DATA
        )
    return paths


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_shard(path: str | os.PathLike[str], samples: Iterable[tuple[str, Mapping[str, np.ndarray]]]) -> int:
    """Write `(key, {name: array})` samples as `<key>.<name>.npy` members; atomic (temporary file + rename).

    Returns the number of samples written.
    """
    count = 0
    with atomic_path(path) as temporary, tarfile.open(temporary, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, arrays in samples:
            if "." in key or "/" in key:
                raise ValueError(f"sample key {key!r} must not contain '.' or '/'")
            for name, array in arrays.items():
                data = _npy_bytes(array)
                info = tarfile.TarInfo(f"{key}.{name}.npy")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
            count += 1
    return count


def shard_frame_counts(path: str) -> list[tuple[str, int]]:
    """`(key, number of frames)` of every sample of a shard in order, read from the `video` array headers
    only (no frame is decoded). Raises `CorruptShardError` / `BadSampleError` naming the shard."""
    counts = []
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                key, extension = _split_member_name(member.name)
                if not member.isfile() or extension not in ("video.npy", "video.npy.gz"):
                    continue
                handle = tar.extractfile(member)
                stream = gzip.GzipFile(fileobj=handle) if extension.endswith(".gz") else handle
                try:
                    version = np.lib.format.read_magic(stream)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, _ = read_header(stream)
                except ValueError as error:
                    raise BadSampleError(
                        f"shard {path}, sample {key!r}: unreadable video.npy header ({error}); regenerate the shard"
                    ) from error
                counts.append((key, int(shape[0]) if shape else 0))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise CorruptShardError(f"shard {path} is corrupted or truncated ({error}); regenerate or re-download it") \
            from error
    return counts


def _split_member_name(name: str) -> tuple[str, str]:
    """Webdataset convention: key = path up to the first '.' of the file name, extension = the rest."""
    directory, _, filename = name.rpartition("/")
    stem, dot, extension = filename.partition(".")
    if not dot:
        return name, ""
    return (f"{directory}/{stem}" if directory else stem), extension


def _decode_array(data: bytes, extension: str) -> np.ndarray:
    if extension.endswith(".gz"):
        data = gzip.decompress(data)
    return np.load(io.BytesIO(data), allow_pickle=False)


def iter_raw_samples(path: str) -> Iterator[dict[str, object]]:
    """Group the members of one tar into samples `{"__key__", "__url__", "<name>": array}`.

    Only `video` and `segmentations` (`.npy` or `.npy.gz`) are decoded. Raises `CorruptShardError` when the
    tar cannot be read to its end-of-archive marker; a member that cannot be decoded is reported in the
    sample's `__error__` entry (raised by `validate_sample`), so that the rest of the shard stays readable.
    """
    current: dict[str, object] | None = None
    last_key = None
    try:
        with open(path, "rb") as handle, tarfile.open(fileobj=handle, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, extension = _split_member_name(member.name)
                if current is not None and key != current["__key__"]:
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key, "__url__": path}
                last_key = key
                data = tar.extractfile(member).read()
                name = extension.split(".", 1)[0]
                if name in ARRAY_KEYS and extension in (f"{name}.npy", f"{name}.npy.gz"):
                    try:
                        current[name] = _decode_array(data, extension)
                    except (ValueError, OSError, EOFError) as error:
                        current["__error__"] = f"cannot decode {member.name} ({error}); the shard is corrupted"
            _check_end_of_archive(handle, tar.offset, path, last_key)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise CorruptShardError(
            f"shard {path} is corrupted or truncated ({type(error).__name__}: {error}; {_reached(last_key)}); "
            "regenerate or re-download it"
        ) from error
    if current is not None:
        yield current


def _check_end_of_archive(handle: io.BufferedReader, offset: int, path: str, last_key: str | None) -> None:
    """A complete tar ends with two zero blocks; without them the file was cut at a member boundary."""
    handle.seek(offset)
    marker = handle.read(END_OF_ARCHIVE)
    if len(marker) < END_OF_ARCHIVE or marker.count(0) != END_OF_ARCHIVE:
        raise CorruptShardError(
            f"shard {path} is corrupted or truncated (neither a valid member header nor the end-of-archive "
            f"marker at byte {offset}; {_reached(last_key)}); regenerate or re-download it"
        )


def _reached(last_key: str | None) -> str:
    return f"last sample reached: {last_key!r}" if last_key is not None else "no sample could be read"


def validate_sample(sample: Mapping[str, object], mask_channels: int | None = 1,
                    require_segmentations: bool = False) -> None:
    """Check keys, dtypes and shapes (module docstring); raise `BadSampleError` naming shard and sample.

    `mask_channels`: the channel count of `segmentations` (1: MOVi instance ids), or None for one channel per
    instance (YT-VIS); the dataset family's `mask_channels` (`srl_plugin.data.families`)."""
    where = f"shard {sample.get('__url__')}, sample {sample.get('__key__')!r}"
    if "__error__" in sample:
        raise BadSampleError(f"{where}: {sample['__error__']}; regenerate or re-download the shard")
    if "video" not in sample:
        present = sorted(k for k in sample if not k.startswith("__"))
        raise BadSampleError(
            f"{where}: missing key 'video' (decoded keys: {present}); expected video.npy uint8 (T, H, W, 3)"
        )
    video = sample["video"]
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] < 1:
        raise BadSampleError(f"{where}: 'video' must be uint8 (T, H, W, 3), got {video.dtype} {tuple(video.shape)}")
    if "segmentations" not in sample:
        if require_segmentations:
            raise BadSampleError(
                f"{where}: missing key 'segmentations' (validation shards need instance masks, "
                "segmentations.npy uint8 (T, H, W, 1) for MOVi or (T, H, W, I) for YT-VIS)"
            )
        return
    masks = sample["segmentations"]
    channels = "I" if mask_channels is None else str(mask_channels)
    if (masks.dtype != np.uint8 or masks.ndim != 4 or masks.shape[:3] != video.shape[:3]
            or (mask_channels is not None and masks.shape[3] != mask_channels)):
        raise BadSampleError(
            f"{where}: 'segmentations' must be uint8 (T, H, W, {channels}) matching video {tuple(video.shape)}, "
            f"got {masks.dtype} {tuple(masks.shape)}"
        )


def iter_shard_samples(path: str, mask_channels: int | None = 1,
                       require_segmentations: bool = False) -> Iterator[dict[str, object]]:
    """Validated decoded samples of one shard: `{"__key__", "__url__", "video" uint8 (T, H, W, 3),
    "segmentations" uint8 (T, H, W, 1 | I) if stored}` (`mask_channels`: see `validate_sample`); raises
    `DataError` on bad input."""
    for sample in iter_raw_samples(path):
        validate_sample(sample, mask_channels, require_segmentations)
        yield sample
