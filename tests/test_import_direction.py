"""The floors of docs/ARCHITECTURE.md: every import inside ``srl_plugin`` (function-local ones included) goes to
its own package or to a lower floor, so there is no loop between packages."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "srl_plugin"

# Floor of each top-level part of srl_plugin (docs/ARCHITECTURE.md "Floors"); a part imports only its own
# package and lower floors.
FLOORS = {
    "__init__": 0,
    "atomic": 0,
    "console": 0,
    "lazy": 0,
    "losses": 0,
    "metrics": 0,
    "models": 1,
    "data": 1,
    "runtime": 2,
    "cache": 3,
    "interop": 3,
    "training": 4,
    "inference": 4,
    "convert": 4,
    "ocl": 5,
}
OUTSIDE_PACKAGE = ("benchmarks", "hydra_plugins", "tests")


def part_of(path: Path) -> str:
    """``srl_plugin/<part>/...`` or ``srl_plugin/<part>.py`` -> ``<part>``."""
    relative = path.relative_to(PACKAGE_ROOT)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imported_parts(path: Path, text: str | None = None) -> list[tuple[int, str]]:
    """``(line, part)`` of every ``srl_plugin`` part (or outside folder) that the file ``path`` (or ``text`` read
    as that file) imports, at any nesting level."""
    module = ".".join(("srl_plugin", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text() if text is None else text, str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names] if target == "srl_plugin" else [target]
        else:
            continue
        for name in names:
            head, _, rest = name.partition(".")
            if head == "srl_plugin" and rest:
                found.append((node.lineno, rest.split(".")[0]))
            elif head in OUTSIDE_PACKAGE:
                found.append((node.lineno, head))
    return found


SOURCES = sorted(PACKAGE_ROOT.rglob("*.py"))


def test_every_part_has_a_floor() -> None:
    parts = {part_of(path) for path in SOURCES}
    assert parts <= set(FLOORS), f"give {sorted(parts - set(FLOORS))} a floor in FLOORS and docs/ARCHITECTURE.md"


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(PACKAGE_ROOT)))
def test_imports_go_only_downward(path: Path) -> None:
    source = part_of(path)
    upward = [
        f"line {line}: {source} (floor {FLOORS[source]}) imports {target} "
        f"(floor {FLOORS.get(target, 'outside the package')})"
        for line, target in imported_parts(path)
        if target != source and (target not in FLOORS or FLOORS[target] >= FLOORS[source])
    ]
    assert not upward, "\n".join(upward)


def test_the_check_sees_function_local_and_relative_imports() -> None:
    text = "def f():\n    from srl_plugin.training import module\n    from ..runtime import build\n"
    assert imported_parts(PACKAGE_ROOT / "metrics" / "masks.py", text) == [(2, "training"), (3, "runtime")]
