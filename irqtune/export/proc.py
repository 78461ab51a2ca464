"""Metric families from one snapshot (irqtune's own /proc parsers, see measure/snapshot.py).

Every 32-bit kernel counter goes through `counters.Extender` first, so the values are
64-bit and never decrease. Families and their labels (docs/metrics.md has the full list):

    irqtune_interrupts_total{irq,device,queue,role,chip,action}   numbered rows, summed over CPUs
    irqtune_irq_cpu_interrupts_total{irq,...,cpu}      --per-cpu: the same per CPU that served it
    irqtune_arch_interrupts_total{kind[,cpu]}          LOC, RES, CAL, TLB, IPI0, NMI, ... rows
    irqtune_interrupt_errors_total{kind}               ERR, MIS (one global count each)
    irqtune_cpu_interrupts_total{cpu}                  every row summed per CPU
    irqtune_softirqs_total{vector[,cpu]}               /proc/softirqs, vector in lower case
    irqtune_softnet_{processed,dropped,time_squeezed,cpu_collision,received_rps,flow_limit}_total{[cpu]}
    irqtune_softnet_backlog_packets{[cpu]}             every softnet_stat column the kernel prints
    irqtune_network_receive_{packets,dropped}_total{device}   /proc/net/dev
    irqtune_busy_poll_receive_packets_total            TcpExt BusyPollRxPackets
    irqtune_irq_{requested,effective}_cpus{irq,...}    affinity as a number of CPUs

`device`, `queue` and `role` come from the inventory (sysfs, else the action names);
an IRQ with no known device has them empty. `action` joins a shared line's actions
with ", ".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..measure.inventory import Inventory
from ..measure.snapshot import Snapshot
from ..parse.interrupts import InterruptRow
from .counters import Extended, Extender
from .labels import label
from .select import Filters

IRQ_LABELS = ["irq", "device", "queue", "role", "chip", "action"]
SOFTNET_FIELDS = (
    ("processed", "irqtune_softnet_processed", "Packets processed by the CPU's NET_RX softirq (softnet_stat col 1)."),
    ("dropped", "irqtune_softnet_dropped", "Packets dropped because the CPU's input backlog was full "
     "(net.core.netdev_max_backlog; softnet_stat col 2)."),
    ("time_squeeze", "irqtune_softnet_time_squeezed", "Times NET_RX stopped with work left: budget or time "
     "(net.core.netdev_budget, netdev_budget_usecs) ran out (softnet_stat col 3)."),
    ("cpu_collision", "irqtune_softnet_cpu_collision", "Times a transmit found the device's lock taken by another "
     "CPU (softnet_stat col 9; 0 since the kernel stopped counting it)."),
    ("received_rps", "irqtune_softnet_received_rps", "Times this CPU was woken by an inter-processor interrupt to "
     "process packets other CPUs steered to it (RPS/RFS; softnet_stat col 10)."),
    ("flow_limit_count", "irqtune_softnet_flow_limit", "Packets dropped by the per-flow backlog limit "
     "(net.core.flow_limit_cpu_bitmap; softnet_stat col 11)."),
)  # fmt: skip
# softnet_stat col 12 (5.10+): packets waiting in the CPU's input and process queues when it was read
SOFTNET_BACKLOG = ("irqtune_softnet_backlog_packets", "Packets in the CPU's backlog (input and process queues) when "
                   "/proc/net/softnet_stat was read (col 12, 5.10+).")  # fmt: skip


@dataclass(slots=True)
class Extenders:
    """One per source; kept by the collector across scrapes."""

    interrupts: Extender = field(default_factory=Extender)
    softirqs: Extender = field(default_factory=Extender)
    softnet: Extender = field(default_factory=Extender)

    def begin(self, interval: float | None) -> None:
        for ext in (self.interrupts, self.softirqs, self.softnet):
            ext.begin(interval)


@dataclass(slots=True)
class IrqCounter:
    row: InterruptRow
    ext: Extended
    labels: list[str]
    requested: int | None = None  # CPUs in smp_affinity_list
    effective: int | None = None  # CPUs in effective_affinity_list

    @property
    def irq(self) -> int:
        return int(self.row.key)

    def nonzero_cells(self) -> list[tuple[int, int]]:
        """(cpu, value) of the CPUs that served this IRQ."""
        cells = range(len(self.ext.raw)) if self.ext.offsets else (i for i, n in enumerate(self.ext.raw) if n)
        return [(self.ext.cpus[i], v) for i in cells if (v := self.ext.value(i))]


@dataclass(slots=True)
class ExportedCounters:
    """The snapshot's counters, extended to 64 bits."""

    cpus: list[int] = field(default_factory=list)
    irqs: list[IrqCounter] = field(default_factory=list)
    arch: dict[str, Extended] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    cpu_totals: dict[int, int] = field(default_factory=dict)
    softirqs: dict[str, Extended] = field(default_factory=dict)
    softnet: dict[str, Extended] = field(default_factory=dict)
    backlog: dict[int, int] = field(default_factory=dict)  # CPU -> packets in its backlog (a gauge)


def extend(snap: Snapshot, ext: Extenders, inventory: Inventory | None, filters: Filters) -> ExportedCounters:
    """Read every counter of `snap` through the extenders (all rows, filtered or not, keep their state).

    A source that could not be read in this scrape keeps its state (nothing is retired).
    """
    out = ExportedCounters()
    table = snap.interrupts
    if table is not None:
        out.cpus = list(table.cpus)
        cpus = tuple(table.cpus)  # one tuple for every row: the extender compares it by identity
        for key, row in table.rows.items():
            if row.counts is not None:
                extended = ext.interrupts.row(key, cpus, row.counts)
                if row.irq is None:
                    out.arch[key] = extended
                else:
                    counter = _irq_counter(row, extended, snap, inventory)
                    if filters.irq(row.irq, counter.labels[1], row.actions):
                        out.irqs.append(counter)
            elif row.total is not None:
                out.errors[key] = ext.interrupts.scalar(key, row.total)
        ext.interrupts.end()  # retire freed IRQs before summing per CPU
        totals = table.cpu_totals()
        offsets = ext.interrupts.cpu_offsets()
        out.cpu_totals = {cpu: n + offsets.get(cpu, 0) for cpu, n in totals.items()}
    if snap.softirqs is not None:
        cpus = tuple(snap.softirqs.cpus)
        for vector, counts in snap.softirqs.vectors.items():
            out.softirqs[vector.lower()] = ext.softirqs.row(vector, cpus, counts)
        ext.softirqs.end()
    if snap.softnet is not None and snap.softnet.rows:
        cpus = [row.cpu for row in snap.softnet.rows]
        for name, _, _ in SOFTNET_FIELDS:
            values = [getattr(row, name) for row in snap.softnet.rows]
            if None not in values:  # a column this kernel prints (col 10 and later came with 2.6.36 .. 5.10)
                out.softnet[name] = ext.softnet.row(name, cpus, values)
        ext.softnet.end()
        backlog = [row.backlog_len for row in snap.softnet.rows]
        if None not in backlog:
            out.backlog = dict(zip(cpus, backlog))
    return out


def _irq_counter(row: InterruptRow, extended: Extended, snap: Snapshot, inventory: Inventory | None) -> IrqCounter:
    info = inventory.irqs.get(row.irq) if inventory and row.irq is not None else None
    device = info.device if info else None
    queue = info.queue if info else None
    role = info.role if info else None
    labels = [row.key, label(device), label(queue), label(role), label(row.chip), label(", ".join(row.actions))]
    counter = IrqCounter(row, extended, labels)
    affinity = snap.affinity.get(row.irq) if row.irq is not None else None
    if affinity is not None:
        counter.requested = len(affinity.requested) if affinity.requested is not None else None
        counter.effective = len(affinity.effective) if affinity.effective is not None else None
    return counter


def per_cpu_sizes(counters: ExportedCounters) -> dict[str, tuple[int, int]]:
    """Family -> (series with a cpu label, series summed over CPUs), for the budget."""
    sizes = {}
    if counters.cpu_totals:
        sizes["cpu_interrupts"] = (len(counters.cpu_totals), 1)
    if counters.arch:
        sizes["arch_interrupts"] = (sum(len(e.cpus) for e in counters.arch.values()), len(counters.arch))
    if counters.softnet:
        sizes["softnet"] = (sum(len(e.cpus) for e in counters.softnet.values()), len(counters.softnet))
    if counters.softirqs:
        sizes["softirqs"] = (sum(len(e.cpus) for e in counters.softirqs.values()), len(counters.softirqs))
    return sizes


def irq_series(counter: IrqCounter) -> tuple[int, int]:
    """Series of the IRQ's counter and affinity gauges, and of its per-CPU breakdown (histograms: the caller)."""
    raw = counter.ext.raw
    cells = len(raw) - raw.count(0) + len(counter.ext.offsets)  # an upper bound when a wrapped cell reads 0
    return 1 + (counter.requested is not None) + (counter.effective is not None), cells


def arch_families(counters: ExportedCounters, detail: dict[str, bool]) -> Iterator[Metric]:
    cpu_detail = detail.get("cpu_interrupts", True)
    per_cpu = CounterMetricFamily(
        "irqtune_cpu_interrupts",
        "Interrupts a CPU served: every /proc/interrupts row summed (a freed IRQ's counts stay in)."
        + ("" if cpu_detail else " Summed over CPUs: the series budget left no room for the cpu label."),
        labels=["cpu"] if cpu_detail else [],
    )
    if counters.cpu_totals:
        if cpu_detail:
            for cpu, n in counters.cpu_totals.items():
                per_cpu.add_metric([str(cpu)], n)
        else:
            per_cpu.add_metric([], sum(counters.cpu_totals.values()))
    yield per_cpu
    yield _cpu_family(
        "irqtune_arch_interrupts", "Architecture interrupts by /proc/interrupts row (LOC timer, RES reschedule, "
        "CAL function call, TLB shootdown, IPIn on ARM, ...).", "kind", counters.arch,
        detail.get("arch_interrupts", True),
    )  # fmt: skip
    errors = CounterMetricFamily("irqtune_interrupt_errors", "Erroneous (ERR) and mis-routed (MIS) interrupts, "
                                 "counted once for the whole host.", labels=["kind"])  # fmt: skip
    for key, n in counters.errors.items():
        errors.add_metric([label(key)], n)
    yield errors


def _cpu_family(name: str, doc: str, key_label: str, rows: dict[str, Extended], cpu_detail: bool) -> Metric:
    if not cpu_detail:
        doc += " Summed over CPUs: the series budget left no room for the cpu label."
    family = CounterMetricFamily(name, doc, labels=[key_label, "cpu"] if cpu_detail else [key_label])
    for key, ext in rows.items():
        if cpu_detail:
            for i, cpu in enumerate(ext.cpus):
                family.add_metric([label(key), str(cpu)], ext.value(i))
        else:
            family.add_metric([label(key)], ext.total)
    return family


def softirq_families(counters: ExportedCounters, detail: dict[str, bool]) -> Iterator[Metric]:
    yield _cpu_family(
        "irqtune_softirqs", "Softirqs raised-and-run per vector (/proc/softirqs; hi, timer, net_tx, net_rx, block, "
        "irq_poll, tasklet, sched, hrtimer, rcu).", "vector", counters.softirqs, detail.get("softirqs", True),
    )  # fmt: skip
    cpu_detail = detail.get("softnet", True)
    for key, name, doc in SOFTNET_FIELDS:
        if not cpu_detail:
            doc += " Summed over CPUs: the series budget left no room for the cpu label."
        ext = counters.softnet.get(key)
        if ext is None and key not in ("processed", "dropped", "time_squeeze"):
            continue  # a column this kernel does not print: no family (the first three are always there)
        family = CounterMetricFamily(name, doc, labels=["cpu"] if cpu_detail else [])
        if ext is not None:
            if cpu_detail:
                for i, cpu in enumerate(ext.cpus):
                    family.add_metric([str(cpu)], ext.value(i))
            else:
                family.add_metric([], ext.total)
        yield family
    if counters.backlog:
        name, doc = SOFTNET_BACKLOG
        backlog = GaugeMetricFamily(name, doc, labels=["cpu"] if cpu_detail else [])
        if cpu_detail:
            for cpu, packets in counters.backlog.items():
                backlog.add_metric([str(cpu)], packets)
        else:
            backlog.add_metric([], sum(counters.backlog.values()))
        yield backlog


def interrupt_families(counters: ExportedCounters, kept: set[int], kept_cpu: set[int] | None) -> Iterator[Metric]:
    """Per-IRQ families; `kept_cpu` None: no per-CPU breakdown family at all (no --per-cpu)."""
    family = CounterMetricFamily("irqtune_interrupts", "Interrupts per numbered IRQ (/proc/interrupts), summed "
                                 "over CPUs.", labels=IRQ_LABELS)  # fmt: skip
    by_cpu = CounterMetricFamily("irqtune_irq_cpu_interrupts", "Interrupts per numbered IRQ and CPU, for the "
                                 "CPUs that served it (--per-cpu).", labels=[*IRQ_LABELS, "cpu"])  # fmt: skip
    requested = GaugeMetricFamily("irqtune_irq_requested_cpus", "CPUs in the IRQ's requested affinity "
                                  "(/proc/irq/N/smp_affinity_list).", labels=IRQ_LABELS)  # fmt: skip
    effective = GaugeMetricFamily("irqtune_irq_effective_cpus", "CPUs the IRQ is actually delivered to "
                                  "(/proc/irq/N/effective_affinity_list).", labels=IRQ_LABELS)  # fmt: skip
    for counter in counters.irqs:
        if counter.irq not in kept:
            continue
        family.add_metric(counter.labels, counter.ext.total)
        if kept_cpu and counter.irq in kept_cpu:
            for cpu, value in counter.nonzero_cells():
                by_cpu.add_metric([*counter.labels, str(cpu)], value)
        if counter.requested is not None:
            requested.add_metric(counter.labels, counter.requested)
        if counter.effective is not None:
            effective.add_metric(counter.labels, counter.effective)
    yield family
    if kept_cpu is not None:
        yield by_cpu
    yield requested
    yield effective


def netdev_families(snap: Snapshot, filters: Filters) -> Iterator[Metric]:
    packets = CounterMetricFamily("irqtune_network_receive_packets", "Packets received per interface "
                                  "(/proc/net/dev, this network namespace).", labels=["device"])  # fmt: skip
    dropped = CounterMetricFamily("irqtune_network_receive_dropped", "Received packets dropped per "
                                  "interface (/proc/net/dev drop: rx_dropped + rx_missed_errors).",
                                  labels=["device"])  # fmt: skip
    if snap.netdev is not None:
        for name, counts in sorted(snap.netdev.devices.items()):
            if filters.interface(name):
                packets.add_metric([label(name)], counts.get("rx_packets", 0))
                dropped.add_metric([label(name)], counts.get("rx_drop", 0))
    yield packets
    yield dropped
    if snap.busy_poll_rx_packets is not None:
        busy = CounterMetricFamily("irqtune_busy_poll_receive_packets", "Packets taken by busy-polling sockets "
                                   "(TcpExt BusyPollRxPackets).")  # fmt: skip
        busy.add_metric([], snap.busy_poll_rx_packets)
        yield busy
