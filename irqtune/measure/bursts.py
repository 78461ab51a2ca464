"""Bursts inside the agent's interval: cheap sub-samples of the managed devices' counters between passes.

A pass reads every counter once, so its rates are means over the interval: a load that bursts for 200 ms
every second looks steady at its mean. Between passes the agent reads only what is cheap (`read_sample`:
the /proc/interrupts rows of the managed devices' IRQs and /proc/net/dev), `samples` times per interval;
the pass's own snapshots are the window's first and last sample (`sample_of`). Per device, `bursts` gives
the mean and the peak sub-interval packet and interrupt rates of the window and the rate of each
sub-interval, which the moderation choice weighs when the peak is well above the mean (`Burst.bursty`;
docs/physics.md §9.8).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from itertools import compress, pairwise

from ..host import Host
from ..parse.interrupts import InterruptTable, parse_rows
from ..parse.netdev import NetdevTable, parse_netdev
from .rates import counter_delta, reset_delta
from .snapshot import Snapshot

BURSTY = 1.5  # a window whose peak sub-interval packet rate is this many times its mean is bursty
MAX_LEVELS = 4  # rate levels a window's sub-intervals are merged into for the moderation choice
LEVEL_GAP = 1.1  # sub-interval rates within this ratio of each other are one level


@dataclass(slots=True)
class Sample:
    """The cheap counters at one moment: packets offered per device, interrupts per IRQ and CPU."""

    monotonic: float
    packets: dict[str, int]  # device -> rx_packets + rx_drop + rx_fifo (/proc/net/dev)
    interrupts: dict[int, dict[int, int]]  # IRQ -> CPU -> count (/proc/interrupts); a CPU left out took none


def read_sample(host: Host, irqs: Collection[int], devices: Collection[str], monotonic: float) -> Sample:
    """Read only the rows of these IRQs and /proc/net/dev; a file that cannot be read counts nothing."""
    try:
        raw = host.read_bytes(host.path("proc", "interrupts"))
    except OSError:
        raw = b""
    table = parse_rows(raw, frozenset(str(irq) for irq in irqs)) if irqs else None
    text = host.text("proc", "net", "dev")
    netdev = parse_netdev(text) if text is not None else None
    return _sample(monotonic, table, netdev, irqs, devices)


def sample_of(snapshot: Snapshot, irqs: Collection[int], devices: Collection[str]) -> Sample:
    """The same counters from a pass's full snapshot (no second read)."""
    return _sample(snapshot.monotonic, snapshot.interrupts, snapshot.netdev, irqs, devices)


def _sample(monotonic: float, table: InterruptTable | None, netdev: NetdevTable | None, irqs: Collection[int],
            devices: Collection[str]) -> Sample:  # fmt: skip
    packets = {}
    for name in devices:
        row = netdev.devices.get(name) if netdev else None
        if row is not None:
            packets[name] = row["rx_packets"] + row["rx_drop"] + row["rx_fifo"]
    counts = {}
    rows = table.rows if table else {}
    for irq in irqs:
        row = rows.get(str(irq))
        if row is not None and row.counts is not None:  # the CPUs that took none left out: one of 1152, not all
            counts[irq] = dict(compress(zip(table.cpus, row.counts), row.counts)) if row.total else {}
    return Sample(monotonic, packets, counts)


@dataclass(frozen=True)
class Burst:
    """One device's window as its sub-samples saw it: packets offered and interrupts per second."""

    mean_pps: float
    peak_pps: float
    mean_irqs: float
    peak_irqs: float
    parts: tuple[tuple[float, float], ...]  # (seconds, packets/s) per sub-interval, in order

    @property
    def bursty(self) -> bool:
        """The peak sub-interval is well above the mean: the mean alone would misjudge the bursts."""
        return self.mean_pps > 0 and self.peak_pps >= BURSTY * self.mean_pps

    def levels(self) -> list[tuple[float, float]]:
        """(share of the window, packets/s) at most MAX_LEVELS levels, lowest first: sub-intervals whose rates
        are within LEVEL_GAP of each other merged (time-weighted), then the two closest levels until few enough."""
        total = sum(seconds for seconds, _ in self.parts)
        merged: list[list[float]] = []  # [seconds, packets]
        for seconds, rate in sorted(self.parts, key=lambda p: p[1]):
            if merged and rate <= merged[-1][1] / merged[-1][0] * LEVEL_GAP:
                merged[-1][0] += seconds
                merged[-1][1] += seconds * rate
            else:
                merged.append([seconds, seconds * rate])
        while len(merged) > MAX_LEVELS:
            ratios = [_ratio(merged[i], merged[i + 1]) for i in range(len(merged) - 1)]
            i = ratios.index(min(ratios))
            merged[i : i + 2] = [[merged[i][0] + merged[i + 1][0], merged[i][1] + merged[i + 1][1]]]
        return [(seconds / total, packets / seconds) for seconds, packets in merged if seconds > 0]


def _ratio(low: list[float], high: list[float]) -> float:
    a, b = low[1] / low[0], high[1] / high[0]
    return b / a if a > 0 else math.inf


def bursts(samples: list[Sample], devices: dict[str, list[int]]) -> dict[str, Burst]:
    """Per device (name -> its IRQs) with packet counters in every sample: its window's mean and peak rates and
    each sub-interval's packet rate. Empty with fewer than two sub-intervals (nothing to compare)."""
    if len(samples) < 3:
        return {}
    out = {}
    for name, irqs in devices.items():
        if not all(name in s.packets for s in samples):
            continue
        parts, interrupts = [], []
        for old, new in pairwise(samples):
            seconds = new.monotonic - old.monotonic
            if seconds <= 0:
                continue
            parts.append((seconds, reset_delta(old.packets[name], new.packets[name]) / seconds))
            interrupts.append(_interrupts(old, new, irqs, seconds) / seconds)
        span = sum(seconds for seconds, _ in parts)
        if len(parts) < 2 or span <= 0:
            continue
        mean_pps = sum(seconds * rate for seconds, rate in parts) / span
        mean_irqs = sum(seconds * rate for (seconds, _), rate in zip(parts, interrupts)) / span
        out[name] = Burst(mean_pps, max(rate for _, rate in parts), mean_irqs, max(interrupts), tuple(parts))
    return out


def _interrupts(old: Sample, new: Sample, irqs: list[int], seconds: float) -> int:
    """Interrupts of these IRQs between two samples, each CPU's 32-bit counter unwrapped (measure/rates.py)."""
    total = 0
    for irq in irqs:
        before, after = old.interrupts.get(irq, {}), new.interrupts.get(irq, {})
        total += sum(counter_delta(before.get(cpu, 0), n, seconds) for cpu, n in after.items())
    return total
