"""Cache manifest (`cache_meta.json`): what produced a feature cache, and the check that a cache fits a run.

A cache is identified by a *fingerprint*: the backbone (timm name, a SHA-256 of its weights, input size,
patch size, token count, feature width, whether keys are stored) and the deterministic part of the
transform (resize mode, normalisation, chunk size, flip probability, ...). Reading a cache whose
fingerprint differs from the one the current config would produce raises `CacheMismatchError`, which
names the differing fields and the command that rebuilds the cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from srl_plugin.atomic import write_json_atomic

FORMAT_VERSION = 1
META_FILE = "cache_meta.json"


class CacheMismatchError(RuntimeError):
    """The cache on disk was produced by a different backbone, input size or transform."""


class CacheMissingError(FileNotFoundError):
    """The cache folder (or its manifest) does not exist, or a split was never written."""


def rebuild_hint(experiment: str | None, cache_dir: str | os.PathLike[str]) -> str:
    """The command line that (re)builds the cache for `experiment` in `cache_dir`."""
    name = experiment or "<method>/<dataset>"
    return f"srl-cache-features {name} cache.dir={cache_dir} --overwrite"


def fingerprint_diff(stored: Mapping[str, Any], expected: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable list of fields that differ between two (nested) fingerprints."""
    differences = []
    for key in sorted(set(stored) | set(expected)):
        path = f"{prefix}{key}"
        have, want = stored.get(key, "<absent>"), expected.get(key, "<absent>")
        if isinstance(have, Mapping) and isinstance(want, Mapping):
            differences.extend(fingerprint_diff(have, want, prefix=f"{path}."))
        elif _normalise(have) != _normalise(want):
            differences.append(f"{path}: cache has {have!r}, this run needs {want!r}")
    return differences


def _normalise(value: Any) -> Any:
    """Make JSON round-trips comparable (tuples become lists)."""
    return json.loads(json.dumps(value))


def write_meta(cache_dir: Path, meta: Mapping[str, Any]) -> None:
    """Write `cache_meta.json` atomically (temporary file, then rename)."""
    write_json_atomic(cache_dir / META_FILE, dict(meta), sort_keys=True)


def read_meta(cache_dir: Path, experiment: str | None = None) -> dict[str, Any]:
    """Load `cache_meta.json`, or raise `CacheMissingError` that says how to build the cache."""
    path = Path(cache_dir) / META_FILE
    if not path.is_file():
        raise CacheMissingError(
            f"no feature cache at {cache_dir} ({META_FILE} missing); build it with: "
            f"{rebuild_hint(experiment, cache_dir)}"
        )
    meta = json.loads(path.read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise CacheMismatchError(
            f"cache at {cache_dir} has format version {meta.get('format_version')}, this code reads "
            f"version {FORMAT_VERSION}; rebuild it with: {rebuild_hint(experiment, cache_dir)}"
        )
    return meta


def check_fingerprint(
    meta: Mapping[str, Any],
    expected: Mapping[str, Any],
    cache_dir: Path,
    experiment: str | None = None,
) -> None:
    """Raise `CacheMismatchError` unless the stored fingerprint equals the expected one."""
    differences = fingerprint_diff(meta["fingerprint"], expected)
    if differences:
        raise CacheMismatchError(
            f"feature cache at {cache_dir} does not match this configuration:\n  "
            + "\n  ".join(differences)
            + f"\nRebuild it with: {rebuild_hint(experiment or meta.get('experiment'), cache_dir)}"
            + " (or point cache.dir at a new folder)"
        )


def split_info(meta: Mapping[str, Any], split: str, cache_dir: Path) -> dict[str, Any]:
    """The manifest entry for one split, or `CacheMissingError` if it was never completed."""
    info = meta.get("splits", {}).get(split)
    if info is None or not info.get("complete", False):
        raise CacheMissingError(
            f"split '{split}' of the feature cache at {cache_dir} is missing or incomplete; finish it with: "
            f"{rebuild_hint(meta.get('experiment'), cache_dir).replace(' --overwrite', '')}"
        )
    return dict(info)


def fingerprint_sha256(fingerprint: Mapping[str, Any]) -> str:
    """Stable hash of a fingerprint (stored in every cached sample to detect mixed caches)."""
    return hashlib.sha256(json.dumps(_normalise(fingerprint), sort_keys=True).encode()).hexdigest()
