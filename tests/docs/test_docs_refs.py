"""The repository is self-contained: every `docs/physics.md §N` it cites exists, and nothing points outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

PHYSICS = REPO / "docs" / "physics.md"
SCANNED = ("irqtune", "tests", "bench", "docs", "scripts", "systemd", "deploy")
SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".service", ".sh", ".txt", ".j2", ".json"}
REF = re.compile(r"§(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?")
# Paths of the workspace the project grew up in; spelled in pieces so this file does not match itself.
OUTSIDE = ("../" + "shared", "shared" + "/docs", "shared" + "/fixtures", "measurement-" + "anchors",
           "tuning-" + "anchors", "anchors_" + "measure", "IRQTUNE_" + "FIXTURES")  # fmt: skip


def text_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "pyproject.toml"]
    for top in SCANNED:
        files += [p for p in sorted((REPO / top).rglob("*")) if p.is_file() and p.suffix in SUFFIXES]
    return [p for p in files if "__pycache__" not in p.parts]


def sections() -> dict[str, str]:
    """'2.7' -> that section's text (up to the next heading), from the `## N.` and `### N.M` headings."""
    text = PHYSICS.read_text(encoding="utf-8")
    found = re.finditer(r"^#{2,3} (\d+(?:\.\d+)?)\.? [^\n]*\n(.*?)(?=^#{2,3} |\Z)", text, re.M | re.S)
    return {m.group(1): m.group(2) for m in found}


def citing_files() -> list[Path]:
    return [p for p in text_files() if p != PHYSICS and "docs/physics.md" in p.read_text(encoding="utf-8")]


def test_physics_has_numbered_sections() -> None:
    have = sections()
    assert {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"} <= set(have)
    assert {"1.8", "2.7", "3.3", "4.3", "9.3", "9.4", "10.4"} <= set(have)


@pytest.mark.parametrize("path", citing_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_section_cited_exists(path: Path) -> None:
    """In a file that cites docs/physics.md, every §N, §N.M, range §A-B and list item §N.M-k is there."""
    have = sections()
    for m in REF.finditer(path.read_text(encoding="utf-8")):
        first, second = m.groups()
        assert first in have, f"{path.relative_to(REPO)}: §{first} is not a section of docs/physics.md"
        if second is None:
            continue
        if "." in second or "." not in first:  # a range: §2.1-2.7, §9-10
            assert second in have, f"{path.relative_to(REPO)}: §{second} is not a section of docs/physics.md"
        else:  # an item of the section's numbered list: §1.8-2
            assert re.search(rf"^{second}\. ", have[first], re.M), f"§{first} has no item {second}"


def test_some_files_cite_it() -> None:
    assert len(citing_files()) >= 20


@pytest.mark.parametrize("path", text_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_points_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    assert [s for s in OUTSIDE if s in text] == []
