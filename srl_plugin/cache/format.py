"""On-disk layout of one cached video inside a webdataset tar shard.

Training sample (one per source video; every chunk-aligned clip and every orientation):

- `meta.json`: `{"split": "train", "num_chunks": C, "chunk_size": T, "orientations": ["orig", "hflip"],
  "fingerprint_sha256": ...}`
- `feat.c{c:03d}.{orientation}.npy`: float16 `(T, N, D_f)` backbone features of chunk `c`
  (frames `c*T .. c*T+T-1`), computed on the clip as it is (`orig`) or on the horizontally flipped clip
  (`hflip`: `backbone(flip(clip))`, which is *not* `flip(backbone(clip))`).
- `keys.c{c:03d}.{orientation}.npy`: float16 `(T, N, D_f)` last-block keys (only when keys are cached).

Validation sample (one per validation video, or per validation chunk when the pipeline chunks):

- `meta.json`: `{"split": "val", "num_frames": T, "mask_shape": [T, C, Hm, Wm], "fingerprint_sha256": ...}`
- `feat.npy` (and `keys.npy`): float16 `(T, N, D_f)`.
- `masks.npy`: uint8 `np.packbits` of the binary one-hot masks `(T, C, Hm, Wm)` along the last axis.

Arrays are raw `.npy` bytes; readers decode only the entry they need (one clip out of `C * O`).
"""
from __future__ import annotations

import io
import json
from typing import Any, Mapping

import numpy as np
import torch

ORIENTATIONS = ("orig", "hflip")


def feature_entry(kind: str, chunk: int, orientation: str) -> str:
    """Entry (extension) name of one training clip's `kind` ("feat" or "keys") array."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    return f"{kind}.c{chunk:03d}.{orientation}.npy"


def to_npy_bytes(array: np.ndarray) -> bytes:
    """Serialise an array as `.npy` bytes."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def from_npy_bytes(data: bytes) -> np.ndarray:
    """Inverse of `to_npy_bytes`."""
    return np.load(io.BytesIO(data), allow_pickle=False)


def to_float16(tensor: torch.Tensor, what: str) -> np.ndarray:
    """Cast features to float16 numpy, refusing values that float16 cannot represent."""
    array = tensor.detach().to("cpu", torch.float32)
    if array.abs().max().item() > float(np.finfo(np.float16).max) or not torch.isfinite(array).all():
        raise ValueError(f"{what} has values outside the float16 range; the cache cannot store them")
    return array.to(torch.float16).numpy()


def encode_train_video(
    key: str,
    features: torch.Tensor,
    keys: torch.Tensor | None,
    orientations: tuple[str, ...],
    fingerprint_sha256: str,
) -> dict[str, Any]:
    """Build the tar sample of one training video.

    features / keys: `(C, O, T, N, D_f)` for `C` chunks and the `O` orientations named in `orientations`.
    """
    num_chunks, num_orientations, chunk_size = features.shape[:3]
    if num_orientations != len(orientations):
        raise ValueError(f"features have {num_orientations} orientations, names given: {orientations}")
    meta = {
        "split": "train",
        "num_chunks": num_chunks,
        "chunk_size": chunk_size,
        "orientations": list(orientations),
        "fingerprint_sha256": fingerprint_sha256,
    }
    sample: dict[str, Any] = {"__key__": key, "meta.json": json.dumps(meta).encode()}
    for chunk in range(num_chunks):
        for index, orientation in enumerate(orientations):
            sample[feature_entry("feat", chunk, orientation)] = to_npy_bytes(
                to_float16(features[chunk, index], f"features of {key}")
            )
            if keys is not None:
                sample[feature_entry("keys", chunk, orientation)] = to_npy_bytes(
                    to_float16(keys[chunk, index], f"keys of {key}")
                )
    return sample


def encode_val_video(
    key: str,
    features: torch.Tensor,
    keys: torch.Tensor | None,
    masks: torch.Tensor,
    fingerprint_sha256: str,
) -> dict[str, Any]:
    """Build the tar sample of one validation video: features/keys `(T, N, D_f)`, masks `(T, C, Hm, Wm)`."""
    binary = masks.detach().to("cpu")
    if not torch.all((binary == 0) | (binary == 1)):
        raise ValueError(f"masks of {key} are not binary one-hot; the cache stores them as bits")
    meta = {
        "split": "val",
        "num_frames": features.shape[0],
        "mask_shape": list(binary.shape),
        "fingerprint_sha256": fingerprint_sha256,
    }
    sample: dict[str, Any] = {
        "__key__": key,
        "meta.json": json.dumps(meta).encode(),
        "feat.npy": to_npy_bytes(to_float16(features, f"features of {key}")),
        "masks.npy": to_npy_bytes(np.packbits(binary.to(torch.uint8).numpy(), axis=-1)),
    }
    if keys is not None:
        sample["keys.npy"] = to_npy_bytes(to_float16(keys, f"keys of {key}"))
    return sample


def decode_meta(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The per-sample `meta.json` of a raw tar sample."""
    return json.loads(sample["meta.json"])


def decode_masks(sample: Mapping[str, Any], mask_shape: list[int]) -> torch.Tensor:
    """Unpack the validation masks to float32 one-hot `(T, C, Hm, Wm)`."""
    packed = from_npy_bytes(sample["masks.npy"])
    unpacked = np.unpackbits(packed, axis=-1, count=mask_shape[-1])
    return torch.from_numpy(unpacked.astype(np.float32)).reshape(mask_shape)
