"""Every `docs/METHODS.md §...` reference in code, configs and docs names a section that exists, every section
reference says `docs/METHODS.md`, and nothing points at the method notes outside the repository."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = REPO / "docs" / "METHODS.md"
# the shared notes folder, their SSync/SlotCurri file, or a section reference without the docs/ path
STRAY_REFERENCE = re.compile(r"shared/" + r"docs/|NEW_" + r"METHODS\.md|(?<!docs/)METHODS\.md §")
REFERENCE = re.compile(r"docs/METHODS\.md((?:[ ,/\-]*(?:§|items? )[\d.\-]+)+)")


def section_numbers() -> set[str]:
    """Numbers of the `## N.` and `### N.M` headings of docs/METHODS.md."""
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", METHODS.read_text(), flags=re.MULTILINE))


def referenced_sections() -> dict[str, set[str]]:
    """Section numbers cited after `docs/METHODS.md`, per tracked text file."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    cited: dict[str, set[str]] = {}
    for name in files:
        path = REPO / name
        if name.startswith("tests/reference/") or path.suffix not in (".py", ".md", ".yaml", ".yml", ".sh", ""):
            continue
        if not path.is_file():
            continue
        for match in REFERENCE.finditer(path.read_text(errors="ignore")):
            cited.setdefault(name, set()).update(re.findall(r"§(\d+(?:\.\d+)?)", match.group(1)))
    return cited


def test_cited_sections_exist() -> None:
    sections = section_numbers()
    cited = referenced_sections()
    assert len(cited) > 40  # the code base cites the method notes widely
    missing = {name: sorted(numbers - sections) for name, numbers in cited.items() if numbers - sections}
    assert missing == {}


def test_no_reference_leaves_the_repository() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    outside = [
        name for name in files
        if not name.startswith("tests/reference/") and (REPO / name).suffix in (".py", ".md", ".yaml")
        and STRAY_REFERENCE.search((REPO / name).read_text(errors="ignore"))
    ]
    assert outside == []
