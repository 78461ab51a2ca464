"""The irqtune Prometheus collector: one fresh snapshot per scrape, const metric families out.

Each scrape takes a snapshot through irqtune's measure code (the same one `status`
uses), extends the 32-bit counters to 64 bits against the previous scrape, applies
the include/exclude filters and the series budget (see select.py), and yields new
families; nothing is cached between scrapes except the previous raw counter values
and the device inventory (rebuilt when the IRQs or their actions change, or after
`INVENTORY_TTL` seconds). Scrapes are serialised. A scrape that fails still answers,
with irqtune_up 0, and logs why.

Health: irqtune_up, irqtune_scrape_duration_seconds, irqtune_scrape_problems,
irqtune_exporter_series, irqtune_exporter_series_dropped{family},
irqtune_exporter_cpu_detail{family}, irqtune_build_info{version}.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from .. import __version__
from ..host import Host
from ..measure.inventory import Inventory, build_inventory
from ..measure.kubelet import Held, saved_held
from ..measure.memory import KernelLog
from ..measure.snapshot import IrqStatics, Snapshot, take_snapshot
from ..measure.topology import Topology, read_topology
from ..probe.base import Histogram
from ..probe.runner import ProbeResult
from .agent_stats import AgentStats, agent_families
from .histograms import SERIES_PER_HISTOGRAM, prometheus_histogram
from .kube import kube_families
from .memory import memory_families
from .probes import ProbeReader, hardirq_data, probe_families
from .proc import (
    IRQ_LABELS,
    ExportedCounters,
    Extenders,
    arch_families,
    extend,
    interrupt_families,
    irq_series,
    netdev_families,
    per_cpu_sizes,
    softirq_families,
)
from .select import DROP_FAMILIES, PER_CPU_FAMILIES, ExportOptions, IrqItem, SeriesPlan, plan_budget

log = logging.getLogger(__name__)

INVENTORY_TTL = 60.0


class IrqtuneCollector:
    """A prometheus_client collector (`collect()` yields fresh families; `describe()` is empty)."""

    def __init__(
        self,
        host: Host,
        options: ExportOptions | None = None,
        agent: AgentStats | None = None,
        probes: ProbeReader | None = None,
        state_dir: str | None = None,
    ) -> None:
        self.host = host
        self.state_dir = state_dir  # the agent's: the pods' held CPUs (statedir KUBE_FILE); None: not exported
        self.options = options or ExportOptions()
        self.agent = agent
        self.probes = probes
        self._lock = threading.Lock()
        self._extenders = Extenders()
        self._last_scrape: float | None = None
        self._inventory: Inventory | None = None
        self._inventory_key: tuple | None = None
        self._inventory_at = 0.0
        self._topo: tuple[tuple[int, ...], float, Topology] | None = None  # online CPUs, when read, topology
        self._last_drop_shape: tuple = ()
        self._last_up = 1
        self._last_error = ""
        self.last_series = 0  # series in the last exposition (for tests and logs)
        self.last_problems = 0  # malformed input lines in the last scrape
        self._kernel_log = KernelLog(host)  # allocation failures counted since the exporter started
        self._statics = IrqStatics()  # each IRQ's node and hint, read again when its actions change
        self._previous: Snapshot | None = None  # the last scrape's: its unchanged /proc/interrupts rows are taken
        self._kube_error = ""  # the last unreadable held-CPUs file, logged once

    def describe(self) -> list[Metric]:
        """Nothing: registering must not take a snapshot (or touch BPF maps)."""
        return []

    def collect(self) -> list[Metric]:
        with self._lock:
            start = time.perf_counter()
            try:
                families, plan, up, problems = self._scrape()
            except Exception as err:  # answer the scrape anyway, with irqtune_up 0
                message = f"scrape failed: {err!r}"
                if message != self._last_error:
                    log.exception("%s", message)
                self._last_error = message
                families, plan, up, problems = [], None, 0, 0
            health = _health(up, time.perf_counter() - start, problems, plan, 0)
            total = _series(families) + _series(health)
            self.last_series, self.last_problems = total, problems
            health = _health(up, time.perf_counter() - start, problems, plan, total)
            return families + health

    # -- one scrape ------------------------------------------------------------
    def _scrape(self) -> tuple[list[Metric], SeriesPlan, int, int]:
        snap = take_snapshot(self.host, with_affinity=True, with_memory=True, kernel_log=self._kernel_log,
                             statics=self._statics, previous=self._previous)  # fmt: skip
        self._previous = snap
        interval = snap.monotonic - self._last_scrape if self._last_scrape is not None else None
        self._last_scrape = snap.monotonic
        self._extenders.begin(interval)
        counters = extend(snap, self._extenders, self._inventory_for(snap), self.options.filters)

        results: dict[str, ProbeResult] = self.probes.read() if self.probes else {}
        hists, unhandled = hardirq_data(results)
        held, kube_problems = self._kube_held()
        fixed: list[Metric] = [
            *netdev_families(snap, self.options.filters),
            isolation_family(self._topology(snap)),
            *kube_families(held),
            *memory_families(snap.memory, self.options.filters),
        ]
        if self.probes:
            fixed += probe_families(self.probes, results)
        if self.agent:
            fixed += agent_families(self.agent)
        fixed.append(_build_info())
        health_size = _series(_health(1, 0.0, 0, None, 0))
        items = []
        for c in counters.irqs:
            series, cpu_series = irq_series(c)
            extra = _hist_series(c.irq, hists, unhandled)
            items.append(IrqItem(c.irq, c.ext.total, series + extra, cpu_series if self.options.per_cpu else 0))
        bounded = _series(fixed) + health_size + len(counters.errors)
        plan = plan_budget(self.options.max_series, bounded, per_cpu_sizes(counters), items)
        self._log_drops(plan, counters)
        families = [
            *interrupt_families(counters, plan.kept, plan.kept_cpu if self.options.per_cpu else None),
            *_hardirq_families(counters, plan.kept, hists, unhandled),
            *arch_families(counters, plan.cpu_detail),
            *softirq_families(counters, plan.cpu_detail),
            *fixed,
        ]
        up = 1 if snap.interrupts is not None else 0
        if not up and self._last_up:
            log.warning("nothing to measure: %s", ", ".join(f"{p} {w}" for p, w in snap.unavailable.items()))
        self._last_up = up
        return families, plan, up, len(snap.problems) + kube_problems

    def _kube_held(self) -> tuple[list[Held] | None, int]:
        """The pods' held CPUs the agent saved, and 1 where its file cannot be read (logged once, until it can)."""
        try:
            held = saved_held(self.state_dir) if self.state_dir else None
        except ValueError as err:
            if str(err) != self._kube_error:
                log.warning("the pods' held CPUs not exported: %s", err)
            self._kube_error = str(err)
            return None, 1
        self._kube_error = ""
        return held, 0

    def _topology(self, snap: Snapshot) -> Topology:
        """The CPU topology, read again only when the online CPUs change or INVENTORY_TTL passed (reading it
        touches a few files per CPU)."""
        now, online = time.monotonic(), tuple(snap.cpus)
        if self._topo is None or self._topo[0] != online or now - self._topo[1] > INVENTORY_TTL:
            self._topo = (online, now, read_topology(self.host, fallback_online=snap.cpus))
        return self._topo[2]

    def _inventory_for(self, snap: Snapshot) -> Inventory | None:
        table = snap.interrupts
        if table is None:
            return None
        key = tuple((row.key, row.actions) for row in table.rows.values() if row.irq is not None)
        now = time.monotonic()
        if self._inventory is None or key != self._inventory_key or now - self._inventory_at > INVENTORY_TTL:
            self._inventory = build_inventory(self.host, table, snap.affinity)
            self._inventory_key, self._inventory_at = key, now
        return self._inventory

    def _log_drops(self, plan: SeriesPlan, counters: ExportedCounters) -> None:
        """Log when what the budget leaves out changes (which families, how many IRQs), not every scrape."""
        summed = [f for f in PER_CPU_FAMILIES if not plan.cpu_detail.get(f, True)]
        irqs = len(counters.irqs) - len(plan.kept)
        shape = (tuple(summed), irqs, len(plan.kept_cpu) if plan.dropped["per_irq_cpu"] else -1)
        if shape == self._last_drop_shape or (not self._last_drop_shape and not any(plan.dropped.values())):
            return
        self._last_drop_shape = shape
        if not any(plan.dropped.values()):
            log.info("series budget %d: nothing dropped any more", self.options.max_series)
            return
        parts = []
        if summed:
            parts.append(f"summed over CPUs: {', '.join(summed)}")
        if irqs:
            parts.append(f"{irqs} least busy IRQs left out ({plan.dropped['per_irq']} series)")
        if plan.dropped["per_irq_cpu"]:
            parts.append(f"per-CPU breakdown of some IRQs left out ({plan.dropped['per_irq_cpu']} series)")
        log.warning(
            "series budget %d: %s; raise --max-series or narrow with --include/--exclude",
            self.options.max_series, "; ".join(parts),
        )  # fmt: skip


def make_registry(collector: IrqtuneCollector) -> CollectorRegistry:
    """A registry of its own (auto_describe off: registering never scrapes) holding `collector`, and the exporter
    process's own process_* metrics (CPU seconds, resident memory, open fds, start time: what it costs, as
    node_exporter exports its own)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def _series(families: list[Metric]) -> int:
    return sum(len(f.samples) for f in families)


def _hist_series(irq: int, hists: dict[int, Histogram], unhandled: dict[int, int]) -> int:
    return (SERIES_PER_HISTOGRAM if irq in hists else 0) + (1 if irq in unhandled else 0)


def _hardirq_families(
    counters: ExportedCounters, kept: set[int], hists: dict[int, Histogram], unhandled: dict[int, int]
) -> Iterator[Metric]:
    if not hists and not unhandled:
        return
    duration = HistogramMetricFamily(
        "irqtune_hardirq_handler_duration_seconds",
        "Time in the IRQ's hard-IRQ handlers (eBPF irq_handler_entry/exit; IRQ_NONE returns excluded).",
        labels=IRQ_LABELS,
    )
    none = CounterMetricFamily(
        "irqtune_hardirq_unhandled",
        "Handler runs that returned IRQ_NONE (not this device's interrupt on a shared line, or spurious).",
        labels=IRQ_LABELS,
    )
    for counter in counters.irqs:
        if counter.irq not in kept:
            continue
        hist = hists.get(counter.irq)
        if hist is not None:
            buckets, total = prometheus_histogram(hist)
            duration.add_metric(counter.labels, buckets, total)
        if counter.irq in unhandled:
            none.add_metric(counter.labels, unhandled[counter.irq])
    yield duration
    yield none


def isolation_family(topology: Topology) -> Metric:
    """irqtune_cpu_isolated{cpu,kind}: 1 for each CPU isolated by `kind` (isolated, nohz_full, isolcpus); no
    series for the others, so `... and on (cpu) irqtune_cpu_isolated` keeps only isolated CPUs."""
    family = GaugeMetricFamily("irqtune_cpu_isolated", "1 for a CPU isolated from the scheduler or the tick, "
                               "by kind: isolated (sysfs), nohz_full, isolcpus.", labels=["cpu", "kind"])  # fmt: skip
    for kind, cpus in (("isolated", topology.isolated), ("nohz_full", topology.nohz_full),
                       ("isolcpus", topology.isolcpus)):  # fmt: skip
        for cpu in sorted(set(cpus)):
            family.add_metric([str(cpu), kind], 1)
    return family


def _build_info() -> Metric:
    info = GaugeMetricFamily("irqtune_build_info", "Always 1; the irqtune version as a label.", labels=["version"])
    info.add_metric([__version__], 1)
    return info


def _health(up: int, duration: float, problems: int, plan: SeriesPlan | None, series: int) -> list[Metric]:
    out: list[Metric] = [
        GaugeMetricFamily("irqtune_up", "1 when /proc/interrupts could be read in this scrape, else 0.", value=up),
        GaugeMetricFamily("irqtune_scrape_duration_seconds", "How long this scrape took.", value=duration),
        GaugeMetricFamily(
            "irqtune_scrape_problems", "Malformed input lines skipped in this scrape (see the log with -v).", problems
        ),
        GaugeMetricFamily("irqtune_exporter_series", "Series in this exposition.", value=series),
    ]
    dropped = GaugeMetricFamily(
        "irqtune_exporter_series_dropped",
        "Series left out of this scrape by the series budget (--max-series): per-CPU series summed over CPUs, "
        "the least busy IRQs' series (family per_irq) and per-CPU breakdowns of IRQs (per_irq_cpu).",
        labels=["family"],
    )
    detail = GaugeMetricFamily("irqtune_exporter_cpu_detail", "1 when the family has its cpu label in this "
                               "scrape, 0 when the budget summed it over CPUs.", labels=["family"])  # fmt: skip
    for family in DROP_FAMILIES:
        dropped.add_metric([family], plan.dropped.get(family, 0) if plan else 0)
    for family in PER_CPU_FAMILIES:
        detail.add_metric([family], int(plan.cpu_detail.get(family, True)) if plan else 1)
    return [*out, dropped, detail]
