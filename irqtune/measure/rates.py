"""Rates from two snapshots.

Kernel interrupt counters are 32-bit and wrap: a decrease whose wrapped delta is
plausible (under 2^31 and under `MAX_RATE` per second) is a wrap and adds 2^32; any
other decrease is a reset (the IRQ was freed and its descriptor reused) and counts
from zero. Rows hidden by the kernel are all-zero, so an IRQ that appears counts from
zero too. An IRQ whose actions changed (a driver re-requested its vector on link
down/up, or the number went to another device) is listed as appeared and keeps
counting with the same wrap/reset rule. CPUs online in only one snapshot get no rate.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import compress
from types import MappingProxyType

from ..parse.common import U32
from ..parse.diskstats import completed
from .snapshot import Snapshot

MAX_RATE = 1e8  # events/s; no interrupt source sustains more, so a bigger "wrap" is a reset


def counter_delta(old: int, new: int, interval: float | None = None) -> int:
    """Delta of a 32-bit kernel counter between two reads `interval` seconds apart."""
    if new >= old:
        return new - old
    wrapped = new + U32 - old
    plausible = 0 <= wrapped < U32 // 2 and (interval is None or wrapped <= MAX_RATE * interval)
    return wrapped if plausible else new


def reset_delta(old: int, new: int) -> int:
    """Delta of a 64-bit counter: it does not wrap, so a decrease is a reset (counting from zero again)."""
    return new - old if new >= old else new


@dataclass(slots=True)
class RowRate:
    key: str
    per_cpu: Mapping[int, float]  # events per second, by CPU id (read-only: rows that did not move share one)
    total: float
    _busy: tuple[int, ...] | None = field(default=None, repr=False, compare=False)

    def busiest(self) -> int | None:
        """The CPU that took most of these events in the window (the first in CPU order among equals); None when
        the row has no per-CPU rates."""
        if isinstance(self.per_cpu, CpuRates):
            return self.per_cpu.busiest()
        return max(self.per_cpu, key=self.per_cpu.__getitem__) if self.per_cpu else None

    @property
    def busy(self) -> tuple[int, ...]:
        """The CPUs that took any of these events in the window, in CPU order (found once: on a 1152-CPU host a
        queue IRQ's row has 1,152 entries and one or two that moved, and placement and findings ask per queue)."""
        if self._busy is None:
            if not self.total:
                self._busy = ()
            elif isinstance(self.per_cpu, CpuRates):
                self._busy = self.per_cpu.busy()
            else:
                self._busy = tuple(cpu for cpu, rate in self.per_cpu.items() if rate > 0)
        return self._busy


@dataclass(slots=True)
class Rates:
    interval: float
    cpus: list[int]  # CPUs online in both snapshots
    interrupts: dict[str, RowRate] = field(default_factory=dict)
    softirqs: dict[str, Mapping[int, float]] = field(default_factory=dict)  # read-only maps (CpuRates, zeros)
    softnet: dict[int, dict[str, float]] = field(default_factory=dict)
    irq_time: dict[int, float] = field(default_factory=dict)  # fraction of a CPU in hard-IRQ context
    softirq_time: dict[int, float] = field(default_factory=dict)
    idle_time: dict[int, float] = field(default_factory=dict)  # fraction of a CPU idle (incl. iowait)
    netdev: dict[str, dict[str, float]] = field(default_factory=dict)  # interface -> /proc/net/dev field -> per s
    busy_poll_rx: float | None = None  # packets/s taken by busy-polling sockets (TcpExt BusyPollRxPackets)
    block: dict[str, float] = field(default_factory=dict)  # block device -> requests completed per s (diskstats)
    appeared: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    cpus_added: list[int] = field(default_factory=list)
    cpus_removed: list[int] = field(default_factory=list)


def _per_cpu_rates(old: dict[int, int], new: dict[int, int], interval: float) -> dict[int, float]:
    return {cpu: counter_delta(old[cpu], n, interval) / interval for cpu, n in new.items() if cpu in old}


def _rising_rates(cpus: list[int], old: list[int], new: list[int], interval: float,
                  zeros: Mapping[int, float]) -> Mapping[int, float] | None:  # fmt: skip
    """The same per-CPU rates as `_per_cpu_rates`, cheaply, for a row read over the same CPUs both times: a row
    that did not move (most of them on a big host) costs one list comparison and shares `zeros` (every CPU at
    0.0, read-only: a consumer copies before changing it), one that only rose a subtraction per CPU. None when a
    counter fell (a wrap or a reset: `counter_delta` decides)."""
    if old == new:
        return zeros
    deltas = list(map(operator.sub, new, old))
    if min(deltas) < 0:
        return None
    return CpuRates(cpus, deltas, interval)


class CpuRates(Mapping[int, float]):
    """One row's per-CPU rates, CPU -> events/s, worked out when first asked for: on a 1152-CPU host a pass sees
    hundreds of rows move and reads the per-CPU rates of a few (its devices' queues); the busy CPUs and the total
    come from the deltas without building the map. Read-only, as `zeros` is."""

    __slots__ = ("_cpus", "_deltas", "_interval", "_rates")

    def __init__(self, cpus: list[int], deltas: list[int], interval: float) -> None:
        self._cpus, self._deltas, self._interval = cpus, deltas, interval
        self._rates: dict[int, float] | None = None

    def _built(self) -> dict[int, float]:
        if self._rates is None:
            interval = self._interval
            self._rates = {cpu: delta / interval for cpu, delta in zip(self._cpus, self._deltas)}
        return self._rates

    def __getitem__(self, cpu: int) -> float:
        return self._built()[cpu]

    def get(self, cpu: int, default: float | None = None) -> float | None:  # the map's own, not the mixin's
        return self._built().get(cpu, default)

    def items(self):
        return self._built().items()

    def values(self):
        return self._built().values()

    def __iter__(self):
        return iter(self._cpus)

    def __len__(self) -> int:
        return len(self._cpus)

    def __repr__(self) -> str:
        return f"CpuRates({self._built()!r})"

    def busy(self) -> tuple[int, ...]:
        """The CPUs whose counters moved, in CPU order."""
        return tuple(compress(self._cpus, self._deltas))

    def busiest(self) -> int:
        """The CPU that took the most (the first in CPU order among equals)."""
        return self._cpus[self._deltas.index(max(self._deltas))]


def compute_rates(before: Snapshot, after: Snapshot) -> Rates:
    interval = after.monotonic - before.monotonic
    if interval <= 0:
        raise ValueError("snapshots must be taken in order, some time apart")
    old_cpus, new_cpus = set(before.cpus), set(after.cpus)
    rates = Rates(
        interval=interval,
        cpus=sorted(old_cpus & new_cpus),
        cpus_added=sorted(new_cpus - old_cpus),
        cpus_removed=sorted(old_cpus - new_cpus),
    )
    _interrupt_rates(before, after, rates)
    if before.softirqs and after.softirqs:
        cpus, zeros = after.softirqs.cpus, MappingProxyType(dict.fromkeys(after.softirqs.cpus, 0.0))
        for vector, counts in after.softirqs.vectors.items():
            prev = before.softirqs.vectors.get(vector) if before.softirqs.cpus == cpus else None
            fast = None
            if prev is not None and len(prev) == len(counts) == len(cpus):
                fast = _rising_rates(cpus, prev, counts, interval, zeros)
            if fast is None:
                fast = _per_cpu_rates(before.softirqs.per_cpu(vector), dict(zip(cpus, counts)), interval)
            rates.softirqs[vector] = fast
    if before.softnet and after.softnet:
        old_rows = {row.cpu: row for row in before.softnet.rows}
        for row in after.softnet.rows:
            prev = old_rows.get(row.cpu)
            if prev is None:
                continue
            rates.softnet[row.cpu] = {
                name: counter_delta(getattr(prev, name), getattr(row, name), interval) / interval
                for name in row.COUNTERS
                if getattr(row, name) is not None and getattr(prev, name) is not None
            }
    if before.stat and after.stat:
        for mine, theirs_old, theirs_new in (
            (rates.irq_time, before.stat.irq_seconds, after.stat.irq_seconds),
            (rates.softirq_time, before.stat.softirq_seconds, after.stat.softirq_seconds),
            (rates.idle_time, before.stat.idle_seconds, after.stat.idle_seconds),
        ):
            for cpu, seconds in theirs_new.items():
                if cpu in theirs_old:
                    mine[cpu] = max(0.0, seconds - theirs_old[cpu]) / interval
    if before.netdev and after.netdev:
        for name, counts in after.netdev.devices.items():
            old = before.netdev.devices.get(name)
            if old is not None:  # the interface may have been recreated meanwhile
                rates.netdev[name] = {k: reset_delta(old[k], v) / interval for k, v in counts.items()}
    if before.busy_poll_rx_packets is not None and after.busy_poll_rx_packets is not None:
        rates.busy_poll_rx = reset_delta(before.busy_poll_rx_packets, after.busy_poll_rx_packets) / interval
    if before.diskstats and after.diskstats:
        for name, counts in after.diskstats.disks.items():
            old = before.diskstats.disks.get(name)
            if old is not None:  # a disk that appeared meanwhile has no rate yet
                rates.block[name] = reset_delta(completed(old), completed(counts)) / interval
    return rates


def _interrupt_rates(before: Snapshot, after: Snapshot, rates: Rates) -> None:
    if not before.interrupts or not after.interrupts:
        return
    old_table, new_table = before.interrupts, after.interrupts
    interval = rates.interval
    same_cpus = old_table.cpus == new_table.cpus
    zeros = MappingProxyType(dict.fromkeys(new_table.cpus, 0.0))  # one for every row that did not move
    for key, row in new_table.rows.items():
        prev = old_table.rows.get(key)
        if prev is not None and row.irq is not None and prev.actions != row.actions:
            rates.appeared.append(key)
        if (
            same_cpus
            and prev is not None
            and row.counts is not None
            and prev.counts is not None
            and len(row.counts) == len(prev.counts) == len(new_table.cpus)
        ):
            # the same row object (its line did not change: parse_interrupts(previous=)) or all zeros both times
            quiet = row is prev or row.total == 0 == prev.total  # counts are never negative
            per_cpu = zeros if quiet else _rising_rates(new_table.cpus, prev.counts, row.counts, interval, zeros)
            if per_cpu is not None:
                total = 0.0 if per_cpu is zeros else (row.total - prev.total) / interval  # each count rose
                rates.interrupts[key] = RowRate(key, per_cpu, total)
                continue
        new = dict(zip(new_table.cpus, row.counts)) if row.counts is not None else None
        if prev is None:
            rates.appeared.append(key)
            old = dict.fromkeys(new_table.cpus, 0) if new is not None else None
            old_total = 0
        else:
            old = dict(zip(old_table.cpus, prev.counts)) if prev.counts is not None else None
            old_total = prev.total
        if new is not None and old is not None:
            per_cpu = _per_cpu_rates(old, new, interval)
            rates.interrupts[key] = RowRate(key, per_cpu, sum(per_cpu.values()))
        elif row.total is not None and old_total is not None:  # single-value rows: ERR, MIS
            rates.interrupts[key] = RowRate(key, {}, counter_delta(old_total, row.total, interval) / interval)
    rates.vanished = [key for key in old_table.rows if key not in new_table.rows]
