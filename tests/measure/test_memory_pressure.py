"""The reserve under real memory pressure: a child confined to a memory cgroup (v2 memory.max, else v1
memory.limit_in_bytes) fills at most a quarter of MemAvailable (2 GiB at most: the machine is shared), and the
zone figures and the advice's headroom follow. The cgroup and the child go away even when the test fails."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import real_linux, require

from irqtune.decide.memory import advise_memory
from irqtune.host import Host
from irqtune.measure.memory import read_memory

pytestmark = pytest.mark.slow

FILL = """
import sys, time
size = int(sys.argv[1])
block = bytearray(size)
for at in range(0, size, 4096):
    block[at] = 1  # touch every page: resident, not just reserved
print("filled", flush=True)
time.sleep(60)
"""


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable")


def _memory_cgroup() -> tuple[Path, str] | None:
    """(a directory to make the child cgroup in, its limit file): v2 where it has the memory controller."""
    for v2 in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        controllers = v2 / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            return v2, "memory.max"
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if "memory" in names.split(",") and Path("/sys/fs/cgroup/memory").is_dir():
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/"), "memory.limit_in_bytes"
    return None


@contextmanager
def bounded_cgroup(limit: int):
    found = _memory_cgroup()
    require(found is not None, "no memory cgroup controller")
    parent, limit_file = found  # type: ignore[misc]
    group = parent / f"irqtune-mem-{os.getpid()}"
    group.mkdir()
    try:
        (group / limit_file).write_text(str(limit))
        yield group
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def _free_pages(host: Host) -> int:
    return sum(z.free for z in read_memory(host).zones if z.managed)


def test_filling_memory_moves_free_pages_toward_min_and_the_headroom_follows():
    require(real_linux() and os.geteuid() == 0, "needs root on a real Linux host")
    host = Host("/")
    size = min(_mem_available() // 4, 2 << 30)
    before = read_memory(host)
    with bounded_cgroup(size + (64 << 20)) as group:
        child = subprocess.Popen([sys.executable, "-c", FILL, str(size)], stdout=subprocess.PIPE, text=True,
                                 preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())))  # fmt: skip
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "filled"
            during = read_memory(host)
        finally:
            child.kill()
            child.wait()
    dropped = sum(z.free for z in before.zones if z.managed) - sum(z.free for z in during.zones if z.managed)
    assert dropped >= size // 4096 // 2, f"free pages fell by {dropped}, expected about {size // 4096}"
    headroom = sum(z.headroom for z in during.zones if z.managed)
    assert headroom < sum(z.headroom for z in before.zones if z.managed)
    advice = advise_memory(before, during, seconds=1.0, rx_drops_per_s=0)
    near = [f for f in advice.findings if f.code == "free-pages-near-min"]
    low = [z for z in during.zones if z.managed and z.free < z.low]
    assert len(near) == len(low)  # the advice names exactly the zones under their low watermark
    after = _free_pages(host)
    assert after > sum(z.free for z in during.zones if z.managed)  # given back
