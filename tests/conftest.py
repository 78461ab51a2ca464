"""Shared test helpers: the procfs fixtures, fake host roots, and needs-the-real-thing skips.

The /proc fixtures live in tests/fixtures/procfs (their origins in SOURCES.md there); a missing
or empty folder is an error, never an empty set of tests. Tests that need root, bcc or a network
namespace skip with a reason on a laptop and FAIL under CI (CI=true), where the real thing must
be there.

`cli(...)` runs irqtune's click entry point in-process (the one CLI helper every test uses).
Markers (declared in pyproject.toml, applied explicitly in the test files, never by a hook here):
slow, root, netns, bpf, vm.
"""

from __future__ import annotations

import bz2
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from irqtune.cli import main

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "procfs"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip when `condition` is false, except under CI where it is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    assert path.exists(), f"fixture {name} missing from {FIXTURES}"
    return path


def fixture_text(name: str) -> str:
    """A fixture's text; .bz2 files are decompressed."""
    path = fixture_path(name)
    if path.suffix == ".bz2":
        return bz2.decompress(path.read_bytes()).decode("ascii")
    return path.read_text(encoding="ascii")


def fixture_names(prefix: str) -> list[str]:
    """The fixtures whose names start with `prefix`; fails (at collection) when there are none, so a
    missing folder or a mistyped prefix can never turn into an empty parameter set."""
    assert FIXTURES.is_dir(), f"fixture folder {FIXTURES} is missing"
    names = sorted(p.name for p in FIXTURES.iterdir() if p.name.startswith(prefix))
    assert names, f"no fixtures named {prefix}* in {FIXTURES}"
    return names


def make_root(base: Path, files: dict[str, str]) -> Path:
    """A fake host root: {'proc/interrupts': text, 'sys/devices/system/cpu/online': '0-3\\n', ...}."""
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (base / "proc").mkdir(exist_ok=True)
    (base / "sys").mkdir(exist_ok=True)
    return base


def real_linux() -> bool:
    return sys.platform == "linux" and os.path.exists("/proc/interrupts")


@pytest.fixture
def real_host_required() -> None:
    require(real_linux(), "needs a real Linux /proc")


def lifeline_devices() -> list[str]:
    """This machine's lifelines as irqtune's inventory names them (eth0's virtio function and the vsock device):
    found from sysfs, never by IRQ number, so a test's config can tell the agent to leave them alone."""
    names = []
    eth0 = Path("/sys/class/net/eth0/device")
    if eth0.exists():
        names.append(eth0.resolve().name)
    vsock = Path("/sys/bus/virtio/drivers/vmw_vsock_virtio_transport")
    if vsock.is_dir():
        names += sorted(p.name for p in vsock.iterdir() if p.name.startswith("virtio"))
    return names


@dataclass(frozen=True)
class CliResult:
    """What an in-process irqtune command did: its exit status, stdout and stderr apart, and `output`, the two
    interleaved as a terminal would show them. Unpacks as (exit_code, stdout, stderr)."""

    exit_code: int
    stdout: str
    stderr: str
    output: str

    def __iter__(self) -> Iterator[int | str]:
        return iter((self.exit_code, self.stdout, self.stderr))


def cli(
    *args: str,
    root: Path | str | None = None,
    state: Path | str | None = None,
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,
) -> CliResult:
    """`irqtune [--root ROOT] [--state-dir STATE] ARGS...` in this process; an exception escapes to the test."""
    argv = ["--root", str(root)] if root is not None else []
    argv += ["--state-dir", str(state)] if state is not None else []
    result = CliRunner().invoke(main, [*argv, *args], input=input, env=env, catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr, result.output)
