"""Imports point down only: parse/host → measure → decide → act → agent/export → cli (README, Architecture).

Every `import` and `from … import` in irqtune/, lazy ones inside functions included, is read with `ast`; an import
of a package in a higher layer than the importer's fails the test with the file and line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "irqtune"

# Lowest first. A module may import from its own layer and the layers below it.
LAYERS: dict[str, int] = {
    # 0: base: kernel text and files, the plan value, the models, plain text layout
    **dict.fromkeys(
        (
            "irqtune",
            "parse",
            "host",
            "fileio",
            "nl",
            "statedir",
            "tomlfile",
            "jsonfile",
            "bcc",
            "plan",
            "model",
            "table",
        ),
        0,
    ),
    # 1: measure: readings of the host (/proc, /sys, eBPF) and the operator's configuration
    **dict.fromkeys(("measure", "probe", "config"), 1),
    # 2: decide: findings, advice and plans from a reading (no I/O)
    **dict.fromkeys(("decide", "findings"), 2),
    # 3: act: knobs, the journal, the write path
    "act": 3,
    # 4: the agent and what serves people and dashboards, the simulator that runs the agent
    **dict.fromkeys(("agent", "export", "sim", "top", "status", "render", "snapdiff"), 4),
    # 5: the command line
    **dict.fromkeys(("cli", "__main__"), 5),
}


def package_of(module: str) -> str:
    """`irqtune.decide.advice.nvme` -> `decide`, `irqtune.status` -> `status`, `irqtune` -> `irqtune`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "irqtune"


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every irqtune import in the file."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if module.endswith(".__init__"):
        package = module = module[: -len(".__init__")]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, target) for line, target in found if target == "irqtune" or target.startswith("irqtune.")]


def upward(importer: str, target: str) -> str | None:
    """Why this import breaks the layering, or None."""
    src, dst = package_of(importer), package_of(target)
    if src not in LAYERS or dst not in LAYERS:
        return f"{src if src not in LAYERS else dst} has no layer: add it to LAYERS and to the README"
    if LAYERS[dst] > LAYERS[src]:
        return f"{src} (layer {LAYERS[src]}) imports {dst} (layer {LAYERS[dst]})"
    return None


@pytest.mark.slow
def test_imports_point_down_only():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        for line, target in imports(path):
            why = upward(importer, target)
            if why:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {target}: {why}")
    assert not problems, "\n".join(problems)


def test_every_package_has_a_layer_and_a_readme_line():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages |= {package_of(f"irqtune.{p.stem}") for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert packages <= set(LAYERS), packages - set(LAYERS)
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    architecture = readme[readme.index("## Architecture") :]
    named = set(re.findall(r"`irqtune/(\w+)", architecture)) | set(re.findall(r"`(\w+)\.py", architecture))
    missing = [p for p in sorted(packages) if p not in named and p not in ("__main__", "irqtune")]
    assert not missing, f"README's Architecture section does not list {missing}"


def test_the_check_catches_an_upward_import():
    assert upward("irqtune.decide.placement", "irqtune.act.knobs") == "decide (layer 2) imports act (layer 3)"
    assert upward("irqtune.parse.common", "irqtune.cli") is not None
    assert upward("irqtune.act.engine", "irqtune.measure.inventory") is None
    assert upward("irqtune.cli.run", "irqtune.agent.loop") is None
    assert upward("irqtune.agent.service", "irqtune.cli.common") is not None
    assert "has no layer" in upward("irqtune.newthing", "irqtune.parse")
