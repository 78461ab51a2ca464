"""Workloads that make the kernel generate the events the probes measure.

Each runs until `stop` is set. Pure Python: the busy work that must run on another
CPU at the same time (so that munmap has a remote CPU to shoot down) is hashing,
which releases the GIL.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import threading

PAGE = mmap.PAGESIZE


def _pin(cpu: int) -> None:
    os.sched_setaffinity(threading.get_native_id(), {cpu})


def disk_io(directory: str, stop: threading.Event) -> int:
    """Synchronous writes that reach the disk: O_DIRECT where the filesystem allows it, fsync always."""
    path = os.path.join(directory, f".irqtune-io-{os.getpid()}")
    buf = mmap.mmap(-1, 16 * PAGE)  # page-aligned, as O_DIRECT wants
    buf.write(os.urandom(16 * PAGE))
    flags = os.O_RDWR | os.O_CREAT
    try:
        fd = os.open(path, flags | getattr(os, "O_DIRECT", 0), 0o600)
    except OSError:
        fd = os.open(path, flags, 0o600)
    writes = 0
    try:
        while not stop.is_set():
            os.pwrite(fd, buf, (writes % 64) * len(buf))
            os.fsync(fd)
            writes += 1
    finally:
        os.close(fd)
        os.unlink(path)
    return writes


def tlb_shootdowns(stop: threading.Event, cpus: tuple[int, int] = (0, 1)) -> int:
    """One thread maps, touches and unmaps memory on cpus[0] while a sibling thread of the same
    process runs on cpus[1]: every munmap must flush the sibling's TLB with an IPI."""
    data = os.urandom(1 << 20)

    def busy() -> None:
        _pin(cpus[1])
        while not stop.is_set():
            hashlib.sha256(data).digest()

    sibling = threading.Thread(target=busy, daemon=True)
    sibling.start()
    _pin(cpus[0])
    rounds = 0
    try:
        while not stop.is_set():
            area = mmap.mmap(-1, 32 * PAGE)
            for offset in range(0, len(area), PAGE):
                area[offset] = 1
            area.close()
            rounds += 1
    finally:
        os.sched_setaffinity(threading.get_native_id(), set(range(os.cpu_count() or 1)))
        sibling.join()
    return rounds


def cross_cpu_wakeups(stop: threading.Event, cpus: tuple[int, int] = (0, 1)) -> int:
    """Two threads on different CPUs wake each other through pipes: remote wakeups."""
    ping_r, ping_w = os.pipe()
    pong_r, pong_w = os.pipe()

    def echo() -> None:
        _pin(cpus[1])
        while os.read(ping_r, 1) == b"x":
            os.write(pong_w, b"x")

    peer = threading.Thread(target=echo, daemon=True)
    peer.start()
    _pin(cpus[0])
    rounds = 0
    try:
        while not stop.is_set():
            os.write(ping_w, b"x")
            os.read(pong_r, 1)
            rounds += 1
    finally:
        os.write(ping_w, b"q")
        peer.join()
        for fd in (ping_r, ping_w, pong_r, pong_w):
            os.close(fd)
        os.sched_setaffinity(threading.get_native_id(), set(range(os.cpu_count() or 1)))
    return rounds
