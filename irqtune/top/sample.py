"""The I/O of `irqtune top`: readings one delay apart, the inventory, and the hardirq probe's maps.

Each `sample()` reads /proc once, turns the difference to the previous reading into
rates, and reads then zeroes the probe's maps, so latency and rates cover the same
window. The session itself (loading, detaching) belongs to the caller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..host import Host
from ..measure.inventory import Inventory, build_inventory
from ..measure.rates import Rates, compute_rates
from ..measure.reading import refused_problems
from ..measure.snapshot import take_snapshot
from ..parse.common import Problem
from ..parse.interrupts import InterruptTable
from ..probe.base import Histogram
from ..probe.runner import ProbeSession

PROBES = ["hardirq"]


@dataclass(frozen=True, slots=True)
class Banner:
    """The header's fixed part: which host, and whether handler latency is measured (and why not)."""

    hostname: str
    kernel: str
    latency: str  # "hardirq probe (eBPF)" or "not measured: why"


@dataclass(slots=True)
class Sample:
    taken_at: float  # wall clock of the later reading
    rates: Rates
    inventory: Inventory
    latency: dict[int, Histogram] | None  # None: the probe is not running
    problems: list[Problem] = field(default_factory=list)


class Sampler:
    """Readings of one host, each compared with the one before; the first is taken on creation."""

    def __init__(self, host: Host, session: ProbeSession | None, not_measured: str = "") -> None:
        self.host = host
        self.session = session
        hardirq = session.results.get("hardirq") if session else None
        if hardirq is not None and hardirq.status == "ok":
            latency = "hardirq probe (eBPF)"
        elif hardirq is not None:
            latency = f"not measured: hardirq probe {hardirq.status}: {hardirq.reason}"
            self.session = None
        else:
            latency = f"not measured: {not_measured or 'probe off'}"
        self.banner = Banner(
            host.text("proc", "sys", "kernel", "hostname") or "-",
            host.text("proc", "sys", "kernel", "osrelease") or "-",
            latency,
        )
        self.before = take_snapshot(host, with_affinity=False)
        self.last: Sample | None = None
        if self.session:
            self.session.reset()

    def due(self, delay: float) -> float:
        """When the next reading is due (time.monotonic), `delay` after the last one: no drift."""
        return self.before.monotonic + delay

    def sample(self) -> Sample:
        after = take_snapshot(self.host)
        latency = None
        if self.session:
            result = self.session.read().get("hardirq")
            self.session.reset()
            latency = dict(result.data.get("irqs", {})) if result and result.status == "ok" else {}
        rates = compute_rates(self.before, after)
        self.before = after
        table = after.interrupts or InterruptTable(cpus=[])
        inventory = build_inventory(self.host, table, after.affinity)
        refused = refused_problems(self.host)
        self.last = Sample(time.time(), rates, inventory, latency, after.problems + refused)
        return self.last
