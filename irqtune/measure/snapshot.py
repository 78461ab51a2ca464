"""One raw snapshot of every interrupt counter of a host, read through `Host`.

A snapshot is plain data: the parsed /proc files, each IRQ's affinity files, which
files were unavailable, and the problems found in malformed input. `to_json()` is
the documented `irqtune snapshot --json` format (see docs/snapshot-schema.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..host import Host, PathEscape
from ..parse.common import CpuListError, Problem, describe, parse_cpulist, parse_cpumask, parse_signed
from ..parse.diskstats import DiskstatsTable, parse_diskstats
from ..parse.interrupts import InterruptTable, parse_interrupts
from ..parse.netdev import NetdevTable, parse_netdev, parse_netstat
from ..parse.softirqs import SoftirqTable, parse_softirqs
from ..parse.softnet import SoftnetRow, SoftnetTable, parse_softnet
from ..parse.stat import ProcStat, parse_stat
from .memory import KernelLog, MemoryState, memory_json, read_memory

SCHEMA = 1


@dataclass(slots=True)
class IrqAffinity:
    """/proc/irq/N: what was asked for, what the kernel really uses, the driver's hint."""

    requested: list[int] | None = None  # smp_affinity_list
    effective: list[int] | None = None  # effective_affinity_list
    hint: list[int] | None = None  # affinity_hint (hex mask); empty = no hint
    node: int | None = None  # NUMA node of the IRQ descriptor, -1 = none


@dataclass(slots=True)
class Snapshot:
    taken_at: float  # wall clock, seconds since the epoch
    monotonic: float  # for rates
    root: str
    interrupts: InterruptTable | None = None
    softirqs: SoftirqTable | None = None
    softnet: SoftnetTable | None = None
    stat: ProcStat | None = None
    netdev: NetdevTable | None = None  # this network namespace's interfaces
    busy_poll_rx_packets: int | None = None  # TcpExt BusyPollRxPackets: packets taken by busy-polling sockets
    diskstats: DiskstatsTable | None = None  # requests each block device completed (what its interrupts bring)
    memory: MemoryState | None = None  # the free-page reserve atomic allocations use (with_memory)
    affinity: dict[int, IrqAffinity] = field(default_factory=dict)
    online: list[int] | None = None  # from /sys, when present
    unavailable: dict[str, str] = field(default_factory=dict)  # file -> why
    problems: list[Problem] = field(default_factory=list)
    hostname: str | None = None  # so `irqtune diff` can refuse two hosts' snapshots (read_identity)
    boot_id: str | None = None  # ... or two boots' (counters restart, monotonic clocks differ)

    @classmethod
    def from_json(cls, path: str, text: str) -> Snapshot:
        """A snapshot saved by `irqtune snapshot --json`; see measure/snapshot_load.py (SnapshotFileError, problems)."""
        from .snapshot_load import load_snapshot

        return load_snapshot(path, text)

    @property
    def cpus(self) -> list[int]:
        """Online CPU ids: /sys first, else the /proc/interrupts header."""
        if self.online is not None:
            return self.online
        return self.interrupts.cpus if self.interrupts else []


def _read(host: Host, snap: Snapshot, tree: str, *parts: str, binary: bool = False) -> str | bytes | None:
    shown = "/" + "/".join((tree, *parts))
    try:
        raw = host.read_at(tree, *parts)
        return raw if binary else raw.decode("utf-8", "replace")
    except FileNotFoundError:
        snap.unavailable[shown] = "missing"
    except PathEscape as err:
        snap.problems.append(Problem(shown, 0, str(err)))
    except OSError as err:
        snap.unavailable[shown] = err.strerror or str(err)
    return None


def take_snapshot(host: Host, with_affinity: bool = True, with_memory: bool = False,
                  kernel_log: KernelLog | None = None, statics: IrqStatics | None = None,
                  previous: Snapshot | None = None) -> Snapshot:  # fmt: skip
    """Read every counter file once. Never raises for missing, refused or malformed files. `with_memory`: the
    reserve too (zones, vm counters, page pools; the kernel log's failures when `kernel_log` is given).
    A reader that comes back (agent, exporter) passes its `statics` (see IrqStatics) and its `previous` snapshot:
    the /proc/interrupts rows whose lines did not change are that snapshot's, not parsed again."""
    snap = Snapshot(taken_at=time.time(), monotonic=time.monotonic(), root=host.root)
    online_text = host.text("sys", "devices", "system", "cpu", "online")
    if online_text is not None:
        try:
            snap.online = parse_cpulist(online_text)
        except CpuListError as err:
            snap.problems.append(Problem("/sys/devices/system/cpu/online", 1, str(err)))

    raw = _read(host, snap, "proc", "interrupts", binary=True)
    if raw is not None:
        snap.interrupts = parse_interrupts(raw, previous=previous.interrupts if previous else None)
        snap.problems.extend(snap.interrupts.problems)
    text = _read(host, snap, "proc", "softirqs")
    if text is not None:
        snap.softirqs = parse_softirqs(text)
        snap.problems.extend(snap.softirqs.problems)
    text = _read(host, snap, "proc", "net", "softnet_stat")
    if text is not None:
        snap.softnet = parse_softnet(text, online=snap.cpus or None)
        snap.problems.extend(snap.softnet.problems)
    text = _read(host, snap, "proc", "stat")
    if text is not None:
        snap.stat = parse_stat(text)
        snap.problems.extend(snap.stat.problems)
    text = _read(host, snap, "proc", "net", "dev")
    if text is not None:
        snap.netdev = parse_netdev(text)
        snap.problems.extend(snap.netdev.problems)
    text = _read(host, snap, "proc", "net", "netstat")
    if text is not None:
        sections, problems = parse_netstat(text)
        snap.busy_poll_rx_packets = sections.get("TcpExt", {}).get("BusyPollRxPackets")
        snap.problems.extend(problems)
    text = _read(host, snap, "proc", "diskstats")
    if text is not None:
        snap.diskstats = parse_diskstats(text)
        snap.problems.extend(snap.diskstats.problems)
    if with_affinity and snap.interrupts is not None:
        read_affinities(host, snap, statics)
    if with_memory:
        snap.memory = read_memory(host, kernel_log)
        snap.problems.extend(snap.memory.problems)
        snap.unavailable.update(snap.memory.unavailable)
    return snap


def read_identity(host: Host, snap: Snapshot) -> None:
    """Hostname and boot id, for a snapshot that is saved: two saved ones are compared only from one boot."""
    snap.hostname = _stripped(host.text("proc", "sys", "kernel", "hostname"))
    snap.boot_id = _stripped(host.text("proc", "sys", "kernel", "random", "boot_id"))


def _stripped(text: str | None) -> str | None:
    if text is None:
        return None
    return text.strip() or None


_AFFINITY_FILES = (
    ("requested", "smp_affinity_list", parse_cpulist),
    ("effective", "effective_affinity_list", parse_cpulist),
)
_HINT = ("hint", "affinity_hint", parse_cpumask)


@dataclass
class IrqStatics:
    """What a reader that comes back every pass (the agent, the exporter) need not read again for an IRQ whose
    actions are the same: its descriptor's NUMA node (fixed while the IRQ is requested) and the driver's affinity
    hint (set when the driver requests its IRQs). Both are read again when the actions change, and for every IRQ
    each `REFRESH` readings (a driver may set a new hint on an IRQ it keeps). Halves the files a pass opens."""

    REFRESH = 64
    known: dict[int, tuple[tuple[str, ...], list[int] | None, int | None]] = field(default_factory=dict)
    readings: int = 0

    def next_reading(self) -> None:
        self.readings += 1
        if self.readings % self.REFRESH == 0:
            self.known.clear()


def read_affinities(host: Host, snap: Snapshot, statics: IrqStatics | None = None) -> None:
    """/proc/irq/N/* for every numbered row; an IRQ that vanished meanwhile just has no entry. `statics`: the
    node and hint an earlier reading found (see IrqStatics), kept up to date."""
    if not host.has(host.proc(), "irq"):
        snap.unavailable["/proc/irq"] = "missing"
        return
    assert snap.interrupts is not None
    if statics is not None:
        statics.next_reading()
    for row in snap.interrupts.rows.values():
        irq = row.irq
        if irq is None:
            continue
        aff = IrqAffinity()
        for attr, name, parse in _AFFINITY_FILES:
            _affinity_file(host, snap, irq, aff, attr, name, parse)
        known = statics.known.get(irq) if statics is not None else None
        if known is not None and known[0] == row.actions:
            aff.hint, aff.node = known[1], known[2]
        else:
            _affinity_file(host, snap, irq, aff, *_HINT)
            aff.node = _irq_node(host, snap, irq)
            if statics is not None:
                statics.known[irq] = (row.actions, aff.hint, aff.node)
        if aff != IrqAffinity():
            snap.affinity[irq] = aff


def _affinity_file(host: Host, snap: Snapshot, irq: int, aff: IrqAffinity, attr: str, name: str, parse) -> None:
    value = host.text("proc", "irq", irq, name)
    if value is None:
        return
    try:
        setattr(aff, attr, parse(value))
    except CpuListError as err:
        snap.problems.append(Problem(f"/proc/irq/{irq}/{name}", 1, str(err)))


def _irq_node(host: Host, snap: Snapshot, irq: int) -> int | None:
    """/proc/irq/N/node: the NUMA node of the IRQ's descriptor (-1: none); anything else is a problem."""
    text = host.text("proc", "irq", irq, "node")
    if text is None:
        return None
    node = parse_signed(text)
    if node is None:
        snap.problems.append(Problem(f"/proc/irq/{irq}/node", 1, f"expected a NUMA node number, got {describe(text)}"))
    return node


# -- JSON ------------------------------------------------------------------


def _sparse(cpus: list[int], counts: list[int]) -> dict[str, int]:
    return {str(cpu): n for cpu, n in zip(cpus, counts) if n}


def interrupts_json(table: InterruptTable) -> dict:
    rows = {}
    for key, row in table.rows.items():
        entry: dict = {"line": row.line, "total": row.total}
        if row.counts is not None:
            entry["counts"] = _sparse(table.cpus, row.counts)
        if row.irq is not None:
            entry.update(chip=row.chip, hwirq=row.hwirq, trigger=row.trigger, flow=row.flow, actions=list(row.actions))
        else:
            entry["description"] = row.description
        if row.extra_counts:
            entry["extra_counts"] = list(row.extra_counts)
        rows[key] = entry
    totals = {str(cpu): n for cpu, n in table.cpu_totals().items()}
    return {"cpus": table.cpus, "cpu_totals": totals, "rows": rows}


def softnet_row_json(row: SoftnetRow) -> dict:
    names = (*SoftnetRow.COUNTERS, "backlog_len", "index", "input_qlen", "process_qlen", "width")
    return {"cpu": row.cpu, **{name: getattr(row, name) for name in names}}


def to_json(snap: Snapshot) -> dict:
    """The documented snapshot format; zero per-CPU counts are omitted."""
    out: dict = {
        "schema": SCHEMA,
        "taken_at": snap.taken_at,
        "monotonic": snap.monotonic,
        "hostname": snap.hostname,
        "boot_id": snap.boot_id,
        "root": snap.root,
        "online_cpus": snap.cpus,
        "interrupts": interrupts_json(snap.interrupts) if snap.interrupts else None,
        "softirqs": None,
        "softnet": None,
        "stat": None,
        "affinity": {
            str(irq): {"requested": a.requested, "effective": a.effective, "hint": a.hint, "node": a.node}
            for irq, a in snap.affinity.items()
        },
        "unavailable": snap.unavailable,
        "problems": [p.to_json() for p in snap.problems],
    }
    if snap.softirqs:
        out["softirqs"] = {
            "cpus": snap.softirqs.cpus,
            "vectors": {name: _sparse(snap.softirqs.cpus, counts) for name, counts in snap.softirqs.vectors.items()},
        }
    if snap.softnet:
        out["softnet"] = {
            "cpu_source": snap.softnet.cpu_source,
            "rows": [softnet_row_json(r) for r in snap.softnet.rows],
        }
    if snap.stat:
        out["stat"] = {
            "intr_total": snap.stat.intr_total,
            "softirq_total": snap.stat.softirq_total,
            "irq_seconds": {str(c): v for c, v in snap.stat.irq_seconds.items()},
            "softirq_seconds": {str(c): v for c, v in snap.stat.softirq_seconds.items()},
            "idle_seconds": {str(c): v for c, v in snap.stat.idle_seconds.items()},
        }
    if snap.netdev:
        out["netdev"] = snap.netdev.devices
    if snap.busy_poll_rx_packets is not None:
        out["busy_poll_rx_packets"] = snap.busy_poll_rx_packets
    if snap.diskstats:
        out["diskstats"] = snap.diskstats.disks
    if snap.memory is not None:
        out["memory"] = memory_json(snap.memory)
    return out
