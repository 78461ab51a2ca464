"""Interrupt-context memory: the free-page reserve atomic allocations draw on, and the signs that it ran dry.

Read each pass: /proc/zoneinfo (free pages and the min/low/high watermarks per zone), /proc/vmstat
(allocstall_*, pgalloc_*, compact_*), vm.min_free_kbytes and vm.watermark_scale_factor; on the running kernel
(root /) the page_pools of this network namespace and each RX queue's rx-alloc-fail over netlink, and each NIC
driver's own RX allocation failure counters (`ethtool -S` by ioctl, measure/nic_stats.py). The kernel
log (/dev/kmsg) is read by `KernelLog`, which keeps its place (the last sequence number) between passes and
counts warn_alloc reports without keeping their text. GFP_ATOMIC allocations fail below the min watermark
(less a part of it for __GFP_HIGH, mm/page_alloc.c __zone_watermark_ok): RX refill in NAPI is one of them.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import asdict, dataclass, field

from ..host import Host, PathEscape
from ..nl.errors import NetlinkRequestError
from ..nl.pagepool import PagePools, RxQueueStats, read_page_pools, read_rx_queue_stats
from ..nl.raw import GenericGet
from ..parse.common import Problem, parse_count
from ..parse.kmsg import parse_kmsg
from ..parse.vmstat import parse_vmstat
from ..parse.zoneinfo import Zone, parse_zoneinfo
from .nic_stats import read_rx_alloc_failures

KMSG_CHUNK = 8192  # one /dev/kmsg record per read(); the kernel caps a record below this (PRINTKRB_RECORD_MAX)


@dataclass(slots=True)
class AllocFailures:
    """warn_alloc reports seen in the kernel log since the agent started: counts only."""

    total: int = 0
    atomic: int = 0
    by_order: Counter = field(default_factory=Counter)
    by_task: Counter = field(default_factory=Counter)  # which context asked (swapper/N = softirq on CPU N)
    by_cpu: Counter = field(default_factory=Counter)


@dataclass(slots=True)
class MemoryState:
    zones: list[Zone] = field(default_factory=list)
    vmstat: dict[str, int] = field(default_factory=dict)
    min_free_kbytes: int | None = None
    watermark_scale_factor: int | None = None
    pools: PagePools | None = None  # None for a fake root
    rx_queues: list[RxQueueStats] = field(default_factory=list)
    nic_rx_alloc_failures: dict[str, int] = field(default_factory=dict)  # NIC -> its driver's count (ethtool -S)
    alloc_failures: AllocFailures | None = None  # None until a KernelLog has been read
    ifnames: dict[int, str] = field(default_factory=dict)  # ifindex -> device, for the pools and queues
    unavailable: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def min_headroom(self) -> Zone | None:
        """The zone (with pages) closest to its min watermark, relative to its size."""
        zones = [z for z in self.zones if z.managed and z.high]
        return min(zones, key=lambda z: z.headroom / max(z.high, 1), default=None)


def _read_text(host: Host, state: MemoryState, *parts: str) -> str | None:
    shown = "/proc/" + "/".join(parts)
    text = host.text("proc", *parts)
    if text is None:
        state.unavailable[shown] = "missing or unreadable"
    return text


def _sysctl(host: Host, state: MemoryState, name: str) -> int | None:
    text = _read_text(host, state, "sys", "vm", name)
    value = parse_count(text) if text is not None else None
    if text is not None and value is None:
        state.problems.append(Problem(f"/proc/sys/vm/{name}", 1, f"expected a count, got {text[:40]!r}"))
    return value


def read_memory(host: Host, log: KernelLog | None = None) -> MemoryState:
    """One look at the reserve; never raises for a missing file or an old kernel."""
    state = MemoryState()
    text = _read_text(host, state, "zoneinfo")
    if text is not None:
        parsed = parse_zoneinfo(text)
        state.zones, state.problems = parsed.zones, [*state.problems, *parsed.problems]
    text = _read_text(host, state, "vmstat")
    if text is not None:
        counters = parse_vmstat(text)
        state.vmstat = counters.counters
        state.problems.extend(counters.problems)
    state.min_free_kbytes = _sysctl(host, state, "min_free_kbytes")
    state.watermark_scale_factor = _sysctl(host, state, "watermark_scale_factor")
    if host.root == "/":
        _read_netlink(state)
        state.nic_rx_alloc_failures = read_rx_alloc_failures(host)
    if state.rx_queues or (state.pools and state.pools.pools):
        state.ifnames = _ifnames(host)
    if log is not None:
        state.alloc_failures = log.read(state)
    return state


def _read_netlink(state: MemoryState) -> None:
    try:
        get = GenericGet()
    except OSError as err:
        state.unavailable["netlink netdev"] = err.strerror or str(err)
        return
    try:
        state.pools = read_page_pools(get)
        state.rx_queues, why = read_rx_queue_stats(get)
        if why:
            state.unavailable["netlink qstats-get"] = why
    except (OSError, NetlinkRequestError) as err:
        state.unavailable["netlink netdev"] = str(err)
    finally:
        get.close()


def _ifnames(host: Host) -> dict[int, str]:
    out = {}
    for name in host.entries(host.sys("class", "net")):
        index = parse_count(host.text("sys", "class", "net", name, "ifindex") or "")
        if index is not None:
            out[index] = name
    return out


class KernelLog:
    """The kernel log read from where the last read stopped, without blocking; counts kept, text dropped.

    /dev/kmsg gives one record per read() and EAGAIN when no more are waiting; EPIPE when the ring overwrote
    records since the last read (those are lost, reading goes on). A fake root's dev/kmsg is a plain file of
    records. Reading /dev/kmsg needs root (CAP_SYSLOG with dmesg_restrict).
    """

    def __init__(self, host: Host) -> None:
        self.host = host
        self.last_seq: int | None = None
        self.failures = AllocFailures()
        self._fd: int | None = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _records(self) -> str:
        if self._fd is None:
            self._fd = self.host.open_beneath_root("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)  # a link out: refused
        if stat.S_ISREG(os.fstat(self._fd).st_mode):
            os.lseek(self._fd, 0, os.SEEK_SET)
            return os.read(self._fd, 1 << 22).decode("utf-8", "replace")
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(self._fd, KMSG_CHUNK)
            except BrokenPipeError:
                continue  # records overwritten before we read them
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk if chunk.endswith(b"\n") else chunk + b"\n")
        return b"".join(chunks).decode("utf-8", "replace")

    def read(self, state: MemoryState | None = None) -> AllocFailures:
        """Count the failures logged since the last read; the log's text is parsed and dropped."""
        try:
            text = self._records()
        except (OSError, PathEscape) as err:  # not root, no such device, a link out of the root: nothing counted
            if state is not None:
                state.unavailable["/dev/kmsg"] = getattr(err, "strerror", None) or str(err)
            return self.copy()
        scan = parse_kmsg(text, after=self.last_seq)
        self.last_seq = scan.last_seq
        if state is not None:
            state.problems.extend(scan.problems[:5])
        for failure in scan.failures:
            self.failures.total += 1
            self.failures.atomic += bool(failure.atomic)
            self.failures.by_order[failure.order] += 1
            self.failures.by_task[failure.task] += 1
            if failure.cpu is not None:
                self.failures.by_cpu[failure.cpu] += 1
        return self.copy()

    def copy(self) -> AllocFailures:
        """The counts so far, apart from the ones that keep growing (a reading is a moment)."""
        f = self.failures
        return AllocFailures(f.total, f.atomic, Counter(f.by_order), Counter(f.by_task), Counter(f.by_cpu))


def memory_json(state: MemoryState) -> dict:
    """The `memory` object of `irqtune snapshot --json` (docs/snapshot-schema.md)."""
    failures = state.alloc_failures
    return {
        "zones": [asdict(z) for z in state.zones],
        "vmstat": state.vmstat,
        "min_free_kbytes": state.min_free_kbytes,
        "watermark_scale_factor": state.watermark_scale_factor,
        "page_pools": None if state.pools is None else [
            {**asdict(p), "device": state.ifnames.get(p.ifindex or -1)} for p in state.pools.pools],
        "page_pools_unavailable": state.pools.unavailable if state.pools else None,
        "rx_queues": [{**asdict(q), "device": state.ifnames.get(q.ifindex)} for q in state.rx_queues],
        "nic_rx_alloc_failures": state.nic_rx_alloc_failures,
        "alloc_failures": None if failures is None else {
            "total": failures.total, "atomic": failures.atomic,
            "by_order": {str(k): v for k, v in failures.by_order.items()},
            "by_cpu": {str(k): v for k, v in failures.by_cpu.items()},
        },
    }  # fmt: skip
