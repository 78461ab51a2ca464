"""Issue 16.1: a knob file swapped for a symlink mid-write never sends a write outside the root.

A thread exchanges the knob file with a symlink to a file outside the fake root (renameat2
RENAME_EXCHANGE) as fast as it can while the main thread writes the knob, through Host.write and
through `irqtune set`, for 20 s. Checking the path and then opening it by name lost that race
(28 of 329 `set` runs overwrote the outside file); resolving and opening in one step cannot.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

import pytest
from conftest import cli, require

from irqtune import fileio
from irqtune.host import Host, PathEscape

pytestmark = pytest.mark.slow

RENAME_EXCHANGE = 2
AT_FDCWD = -100
SECONDS = {"openat2": 20.0, "walk": 10.0}  # the walk is the fallback where openat2 is missing


def _renameat2():
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        fn = libc.renameat2
    except AttributeError:
        require(False, "renameat2 in libc (glibc 2.28+): the race swaps the knob and a link with it")
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


def _swapper(a: bytes, b: bytes, stop: threading.Event) -> threading.Thread:
    exchange = _renameat2()

    def loop() -> None:
        while not stop.is_set():
            exchange(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)

    return threading.Thread(target=loop, daemon=True)


def _overwritten(victim) -> int:
    """1 (and the file put back) when a write landed on the file outside the root."""
    if victim.read_text() == "precious\n":
        return 0
    victim.write_text("precious\n")
    return 1


@pytest.mark.parametrize("impl", ["openat2", "walk"])
def test_symlink_swap_race_never_writes_outside_the_root(tmp_path, monkeypatch, impl):
    if impl == "walk":
        monkeypatch.setattr(fileio, "_openat2", False)
    else:
        require(bool(fileio._syscall()), "openat2 (Linux 5.6+): the race is tested on the kernel's own resolution")
    root = tmp_path / "root"
    core = root / "proc" / "sys" / "net" / "core"
    core.mkdir(parents=True)
    (root / "sys").mkdir()
    (root / "proc" / "sys" / "kernel" / "random").mkdir(parents=True)
    (root / "proc" / "sys" / "kernel" / "random" / "boot_id").write_text("b00t\n")
    knob = core / "netdev_budget"
    knob.write_text("300\n")
    victim = tmp_path / "outside" / "victim"
    victim.parent.mkdir()
    victim.write_text("precious\n")
    os.symlink(victim, core / "swap")
    exchange = _renameat2()
    assert exchange(AT_FDCWD, bytes(knob), AT_FDCWD, bytes(core / "swap"), RENAME_EXCHANGE) == 0, "no RENAME_EXCHANGE"
    exchange(AT_FDCWD, bytes(knob), AT_FDCWD, bytes(core / "swap"), RENAME_EXCHANGE)
    stop = threading.Event()
    thread = _swapper(bytes(knob), bytes(core / "swap"), stop)
    host, outside, writes, runs = Host(str(root)), 0, 0, 0
    thread.start()
    try:
        end = time.monotonic() + SECONDS[impl]
        while time.monotonic() < end:
            for _ in range(50):
                try:
                    host.write(host.proc("sys", "net", "core", "netdev_budget"), "301\n")
                    writes += 1
                except (PathEscape, OSError):
                    pass
                outside += _overwritten(victim)
            cli("--root", str(root), "--state-dir", str(tmp_path / "state"), "set", "sysctl/net.core.netdev_budget",
                "302")  # fmt: skip
            runs += 1
            outside += _overwritten(victim)
    finally:
        stop.set()
        thread.join()
    assert writes > 100 and runs > 10, f"the race was not exercised ({writes} writes, {runs} set runs)"
    assert outside == 0, f"{outside} writes landed outside the root ({writes} writes, {runs} runs)"
