"""The installed distribution ships its configs and entry points, and owns no top-level `configs` package."""
from __future__ import annotations

import importlib.metadata
import importlib.resources

import pytest

DIST = "srl-plugin"
METHODS = ("srl", "slotcontrast", "videosaur", "slotcurri", "ssync")
DATASETS = ("movi_c", "movi_e", "ytvis2021", "synthetic")


def test_experiment_configs_are_package_data() -> None:
    experiment_root = importlib.resources.files("srl_plugin") / "configs" / "experiment"
    missing = [
        f"{method}/{dataset}.yaml"
        for method in METHODS
        for dataset in DATASETS
        if not (experiment_root / method / f"{dataset}.yaml").is_file()
    ]
    assert missing == []


def test_no_top_level_configs_package_is_installed() -> None:
    distribution = importlib.metadata.distribution(DIST)
    declared = set((distribution.read_text("top_level.txt") or "").split())
    installed = {file.parts[0] for file in distribution.files or []}
    assert "srl_plugin" in declared
    assert "configs" not in declared | installed


@pytest.mark.parametrize(
    "entry_point",
    [ep for ep in importlib.metadata.distribution(DIST).entry_points if ep.group == "console_scripts"],
    ids=lambda ep: ep.name,
)
def test_console_scripts_resolve(entry_point: importlib.metadata.EntryPoint) -> None:
    assert callable(entry_point.load())
