"""Findings: what a performance engineer should notice, derived from measurements only.

Each check is a small function of (topology, inventory, rates) that returns
findings; none reads the host. Thresholds live in `Thresholds` so a config can
change them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from .measure.inventory import Inventory, IrqInfo
from .measure.rates import Rates
from .measure.topology import Topology
from .parse.common import format_cpulist
from .parse.interrupts import InterruptTable
from .parse.netdev import NetdevTable

QUEUE_ROLES = frozenset({"rx", "tx", "rxtx", "io"})


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str  # info, warning, critical
    code: str  # stable id, e.g. "irq-storm"
    message: str
    irq: int | None = None
    device: str | None = None
    cpu: int | None = None

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ("severity", "code", "message", "irq", "device", "cpu")}


@dataclass(frozen=True, slots=True)
class Thresholds:
    storm_per_s: float = 100_000.0  # an IRQ line below this rate is never a storm; above it, see check_storms
    storm_unmeasured_per_s: float = 200_000.0  # the rate alone makes a storm when nothing measures its work
    storm_packets_per_irq: float = 2.0  # a NIC IRQ bringing fewer packets per interrupt brings little
    storm_ios_per_irq: float = 0.5  # an NVMe/block IRQ bringing fewer completed requests per interrupt
    storm_cpu_share: float = 0.25  # ... and a NIC's costs: its CPU this much in hard+soft IRQ context
    storm_irq_none_share: float = 0.5  # interrupts no handler claimed (IRQ_NONE): this share is a storm
    nohz_tick_per_s: float = 10.0  # LOC on a nohz_full CPU above this: it still ticks
    busy_irq_per_s: float = 1.0  # below this an IRQ on an isolated CPU is noise
    rx_drops_per_s: float = 10.0  # an interface dropping received packets this fast is a warning, below it info


@dataclass(frozen=True, slots=True)
class Measurements:
    topology: Topology
    inventory: Inventory
    rates: Rates | None
    interrupts: InterruptTable | None = None  # the last reading's counts since boot (evidence without /proc/irq)
    netdev: NetdevTable | None = None  # the last reading's /proc/net/dev totals
    irq_none: Mapping[int, tuple[int, int]] | None = None  # hardirq probe: IRQ -> (handled, IRQ_NONE) returns
    rings: Mapping[str, Mapping[str, int]] | None = None  # NIC -> ethtool rings (rx, rx_max, ...), where read


def _label(info: IrqInfo) -> str:
    where = info.device or ", ".join(info.actions) or "no action"
    role = f" {info.role}" if info.role and info.role != "other" else ""
    queue = f" {info.queue}" if info.queue is not None else ""
    return f"IRQ {info.irq} ({where}{role}{queue})"


def _irq_rate(m: Measurements, irq: int) -> dict[int, float]:
    if m.rates is None:
        return {}
    row = m.rates.interrupts.get(str(irq))
    return row.per_cpu if row else {}


def _irq_total(m: Measurements, irq: int) -> float:
    """The IRQ's rate over every CPU (the row's total: no per-CPU map built)."""
    row = m.rates.interrupts.get(str(irq)) if m.rates is not None else None
    return row.total if row else 0.0


def _serving_cpus(m: Measurements, info: IrqInfo) -> list[int]:
    """Where the IRQ runs: CPUs that took it in the window, else its effective, else requested affinity."""
    row = m.rates.interrupts.get(str(info.irq)) if m.rates is not None else None
    busy = list(row.busy) if row is not None else []
    if busy:
        return busy
    aff = info.affinity
    return list((aff.effective or aff.requested or []) if aff else [])


def _kernel_spread(info: IrqInfo) -> bool:
    """Managed IRQs and block I/O queues: the kernel places them per CPU on purpose."""
    return info.managed == "yes" or (info.kind in ("nvme", "block") and info.role == "io")


def _landing_cpus(m: Measurements, info: IrqInfo) -> tuple[list[int], str]:
    """Where a queue IRQ's interrupts go, and the evidence: "window" (counts in the window), "affinity" (the
    /proc/irq files), else "counts" (per-CPU counts since boot: sosreport-style trees have no /proc/irq)."""
    row = m.rates.interrupts.get(str(info.irq)) if m.rates is not None else None
    busy = list(row.busy) if row is not None else []
    if busy:
        return busy, "window"
    aff = info.affinity
    if aff and (aff.effective or aff.requested):
        return list(aff.effective or aff.requested or []), "affinity"
    counts = m.interrupts.per_cpu(str(info.irq)) if m.interrupts else {}
    return [cpu for cpu, count in counts.items() if count > 0], "counts"


def _has_affinity_files(info: IrqInfo) -> bool:
    aff = info.affinity
    return aff is not None and (aff.effective is not None or aff.requested is not None)


def _count_evidence(queues: list[IrqInfo], sources: set[str]) -> str:
    """Say so when the placement is known from where interrupts landed, not from the affinity files."""
    if any(_has_affinity_files(info) for info in queues):
        return ""
    when = "in the window" if sources == {"window"} else "since boot"
    return f" (evidence: their /proc/interrupts counts {when}; no affinity files)"


def check_queues_on_one_cpu(m: Measurements, t: Thresholds) -> Iterator[Finding]:
    online = len(m.topology.online)
    for device in m.inventory.devices:
        if device.kind != "nic" or online < 2:
            continue
        queues = [m.inventory.irqs[q.irq] for q in device.irqs if q.role in QUEUE_ROLES and q.irq in m.inventory.irqs]
        numbers = {info.queue for info in queues}  # rx 0 and tx 0 of one queue pair belong together
        landed = [_landing_cpus(m, info) for info in queues]
        cpus = {cpu for found, _ in landed for cpu in found}
        if len(numbers) >= 2 and len(cpus) == 1:
            cpu = next(iter(cpus))
            rate = sum(_irq_total(m, info.irq) for info in queues)
            at = f" at {rate:,.0f}/s" if m.rates is not None else ""
            evidence = _count_evidence(queues, {source for _, source in landed})
            yield Finding(
                "warning", "nic-queues-one-cpu",
                f"all {len(queues)} queue IRQs of {device.name} land on CPU {cpu}{at}{evidence}",
                device=device.name, cpu=cpu,
            )  # fmt: skip


def check_isolated(m: Measurements, t: Thresholds) -> Iterator[Finding]:
    isolated = m.topology.isolated_any
    if not isolated:
        return
    for info in m.inventory.irqs.values():
        rates = _irq_rate(m, info.irq)
        if rates:
            hits = {cpu: r for cpu, r in rates.items() if cpu in isolated and r >= t.busy_irq_per_s}
        else:
            effective = info.affinity.effective if info.affinity and info.affinity.effective else []
            hits = {cpu: 0.0 for cpu in effective if cpu in isolated}
        for cpu, rate in sorted(hits.items()):
            how = f" at {rate:.0f}/s" if rate else " (effective affinity)"
            how += " (kernel-managed: see isolcpus=managed_irq)" if info.managed == "yes" else ""
            yield Finding(
                "warning", "irq-on-isolated-cpu",
                f"{_label(info)} serviced on isolated CPU {cpu}{how}", irq=info.irq, device=info.device, cpu=cpu,
            )  # fmt: skip


def check_remote_numa(m: Measurements, t: Thresholds) -> Iterator[Finding]:
    if len(m.topology.nodes) < 2:
        return
    for device in m.inventory.devices:
        if device.numa_node is None or device.numa_node not in m.topology.nodes:
            continue
        local = set(m.topology.nodes[device.numa_node])
        remote = []
        for q in device.irqs:
            info = m.inventory.irqs.get(q.irq)
            if info is None or _kernel_spread(info):
                continue
            cpus = _serving_cpus(m, info)
            far = [cpu for cpu in cpus if cpu not in local]
            if far:
                remote.append((q.irq, far))
        if remote:
            irqs = ", ".join(f"IRQ {irq} on CPU {format_cpulist(cpus)}" for irq, cpus in remote[:4])
            more = f" and {len(remote) - 4} more" if len(remote) > 4 else ""
            kind = "NIC" if device.kind == "nic" else device.kind
            yield Finding(
                "warning", "remote-numa",
                f"{kind} {device.name} IRQs on a remote NUMA node (device on node {device.numa_node}): {irqs}{more}",
                device=device.name,
            )  # fmt: skip


def check_storms(m: Measurements, t: Thresholds) -> Iterator[Finding]:
    """A storm is an IRQ whose interrupts cost more than the work they bring (docs/physics.md §3.4): a high rate
    (storm_per_s) with unclaimed interrupts, or little work per interrupt, or (nothing measures its work) a higher
    rate. Healthy NVMe queues interrupt once per I/O at 100k/s and more."""
    if m.rates is None:
        return
    for key, row in m.rates.interrupts.items():
        if key.isdigit() and row.total >= t.storm_per_s:
            info = m.inventory.irqs.get(int(key))
            label = _label(info) if info else f"IRQ {key}"
            why = _storm_evidence(m, t, info, int(key), row.total)
            if why is not None:
                message = f"interrupt storm on {label}: {row.total:,.0f}/s{why}"
                yield Finding("critical", "irq-storm", message, irq=int(key))
        elif key in ("ERR", "MIS", "Err") and row.total > 0:
            yield Finding("warning", "irq-errors", f"{key} interrupts rising: {row.total:.1f}/s (spurious or lost)")


def _storm_evidence(m: Measurements, t: Thresholds, info: IrqInfo | None, irq: int, rate: float) -> str | None:
    """What makes this busy IRQ a storm, as the rest of the finding's message; None when it is not one."""
    unclaimed = _irq_none_share(m, info, irq)
    if unclaimed is not None and unclaimed >= t.storm_irq_none_share:
        return f", {unclaimed:.0%} of them claimed by no handler (IRQ_NONE)"
    work = _work(m, info) if info else None
    cpu = _interrupt_context(m, info, irq)
    spent = f"; CPU {cpu[0]} {cpu[1]:.0%} in hard+soft IRQ" if cpu else ""
    if work is None:
        return f" (no measure of the work it brings{spent})" if rate >= t.storm_unmeasured_per_s else None
    done, unit, source = work
    each = done / rate
    if unit == "packets":
        little = each < t.storm_packets_per_irq and (cpu is None or cpu[1] >= t.storm_cpu_share)
    else:
        little = each < t.storm_ios_per_irq
    return f" bringing {each:.2f} {unit} each ({source}: {done:,.0f} {unit}/s{spent})" if little else None


def _irq_none_share(m: Measurements, info: IrqInfo | None, irq: int) -> float | None:
    """Share of the line's interrupts that no handler claimed. The probe counts every handler's return: on a
    line shared by n actions an interrupt that one claims returns IRQ_NONE from the other n-1."""
    counts = m.irq_none.get(irq) if m.irq_none else None
    if not counts or sum(counts) == 0:
        return None
    handled, unhandled = counts
    actions = max(len(info.actions), 1) if info else 1
    return max(0.0, 1.0 - actions * handled / (handled + unhandled))


def _work(m: Measurements, info: IrqInfo) -> tuple[float, str, str] | None:
    """(work per second, unit, where it was counted) an IRQ's interrupts may have brought, counted generously
    (every device on its function, or its CPUs' packets): a storm is little work even then. None: nothing
    measures it."""
    assert m.rates is not None
    devices = _on_its_function(m, info)
    if info.kind == "nic" and devices:
        found = []
        counted = [m.rates.netdev[name] for name in devices if name in m.rates.netdev]
        if counted:
            packets = sum(c.get("rx_packets", 0.0) + c.get("tx_packets", 0.0) for c in counted)
            found.append((packets, ", ".join(name for name in devices if name in m.rates.netdev)))
        cpus = _serving_cpus(m, info)
        if m.rates.softnet and cpus:
            processed = sum(m.rates.softnet.get(cpu, {}).get("processed", 0.0) for cpu in cpus)
            found.append((processed, f"softnet on CPU {format_cpulist(cpus)}"))
        if found:
            done, source = max(found, key=lambda pair: pair[0])  # a tie: the devices' own count
            return done, "packets", source
    if info.kind in ("nvme", "block") and devices:
        disks = [disk for disk in m.rates.block if any(_disk_of(disk, name) for name in devices)]
        if disks:
            return sum(m.rates.block[disk] for disk in disks), "I/Os", f"{', '.join(devices)} diskstats"
    return None


def _on_its_function(m: Measurements, info: IrqInfo) -> list[str]:
    """The IRQ's device and every other one on its PCI function: the ports of one NIC (mlx4), the disks behind
    one HBA, whose IRQs serve them all."""
    if not info.device:
        return []
    own = m.inventory.device(info.device)
    bus = own.bus_id if own else None
    others = [d.name for d in m.inventory.devices if bus and d.bus_id == bus and d.name != info.device]
    return [info.device, *others]


def _disk_of(disk: str, device: str) -> bool:
    """Whole disk `disk` is served by `device`'s IRQs: itself (vda, sda), an NVMe controller's namespace
    (nvme0 -> nvme0n1) or its multipath path device (nvme0 -> nvme2c0n1). Partitions are counted in their disk."""
    if disk == device:
        return True
    controller = re.fullmatch(r"nvme(\d+)", device)
    return controller is not None and re.fullmatch(rf"{device}n\d+|nvme\d+c{controller[1]}n\d+", disk) is not None


def _interrupt_context(m: Measurements, info: IrqInfo | None, irq: int) -> tuple[int, float] | None:
    """(CPU, its share in hard and soft IRQ context) for the IRQ's CPU most in it; None where /proc/stat does not
    count interrupt time (no file, or a kernel that accounts none of it)."""
    assert m.rates is not None
    spent = {cpu: m.rates.irq_time.get(cpu, 0.0) + m.rates.softirq_time.get(cpu, 0.0) for cpu in m.rates.cpus}
    if not any(spent.values()):
        return None
    cpus = _serving_cpus(m, info) if info else list(_irq_rate(m, irq))
    share = [(spent[cpu], cpu) for cpu in cpus if cpu in spent]
    if not share:
        return None
    value, cpu = max(share)
    return cpu, value


def check_remapping(m: Measurements, t: Thresholds) -> Iterator[Finding]:
    if m.inventory.remapping == "off":
        yield Finding(
            "info", "remapping-off",
            "interrupt remapping off: no IR- interrupt chips (expected in a VM; VFIO passthrough needs it)",
        )  # fmt: skip
    elif m.inventory.remapping == "partial":
        yield Finding("warning", "remapping-partial", "interrupt remapping covers only some interrupt chips")


def check_softnet(m: Measurements, t: Thresholds) -> Iterator[Finding]:
    if m.rates is None:
        return
    for cpu, counters in sorted(m.rates.softnet.items()):
        if counters.get("dropped", 0) > 0:
            yield Finding(
                "warning", "softnet-drops",
                f"CPU {cpu} drops {counters['dropped']:.0f} packets/s at the backlog (netdev_max_backlog)", cpu=cpu,
            )  # fmt: skip
        if counters.get("time_squeeze", 0) > 0:
            yield Finding(
                "info", "time-squeeze",
                f"CPU {cpu}: NAPI ran out of budget or time {counters['time_squeeze']:.0f} times/s"
                " (netdev_budget, netdev_budget_usecs)",
                cpu=cpu,
            )  # fmt: skip


def rx_dropped(counters: dict) -> float:
    """/proc/net/dev drop (rx_dropped + rx_missed_errors: ring overflows) plus fifo (rx_fifo_errors)."""
    return counters.get("rx_drop", 0) + counters.get("rx_fifo", 0)


def check_rx_drops(m: Measurements, t: Thresholds) -> Iterator[Finding]:
    """Received packets an interface dropped: a sustained rate is a warning, a rare drop info."""
    totals = {name: rx_dropped(c) for name, c in (m.netdev.devices if m.netdev else {}).items()}
    if m.rates is None:
        for name, total in sorted(totals.items()):
            if total > 0:
                yield Finding(
                    "info", "rx-drops",
                    f"{name} dropped {total:,.0f} received packets since boot (drop+fifo; no window)",
                    device=name,
                )  # fmt: skip
        return
    for name, counters in sorted(m.rates.netdev.items()):
        rate = rx_dropped(counters)
        if rate <= 0:
            continue
        total = f"; {totals[name]:,.0f} since boot" if name in totals else ""
        yield Finding(
            "warning" if rate >= t.rx_drops_per_s else "info", "rx-drops",
            f"{name} drops {rate:,.1f} received packets/s (drop+fifo{total})", device=name,
        )  # fmt: skip


def check_ring_drops(m: Measurements, t: Thresholds) -> Iterator[Finding]:
    """A NIC dropping received packets with its rx ring below the driver's maximum: a bigger ring holds a longer
    burst while NAPI catches up (docs/physics.md §2.8); doubling, not the maximum at once, since a ring's buffers
    leave the cache and a full ring is latency. Drops from a CPU that cannot keep up need CPUs, not a ring."""
    if m.rates is None or not m.rings:
        return
    for name, counters in sorted(m.rates.netdev.items()):
        rate, rings = rx_dropped(counters), m.rings.get(name) or {}
        rx, high = rings.get("rx"), rings.get("rx_max")
        if rate <= 0 or not rx or not high or rx >= high:
            continue
        wanted = min(high, 2 * rx)
        yield Finding(
            "warning" if rate >= t.rx_drops_per_s else "info", "rx-ring-small",
            f"{name} drops {rate:,.1f} received packets/s with its rx ring at {rx} of the driver's maximum {high}: "
            f"raise it (irqtune set net/{name}/rings/rx {wanted})", device=name,
        )  # fmt: skip


def check_nohz_ticks(m: Measurements, t: Thresholds) -> Iterator[Finding]:
    if m.rates is None or not m.topology.nohz_full:
        return
    loc = m.rates.interrupts.get("LOC")
    for cpu in m.topology.nohz_full:
        rate = loc.per_cpu.get(cpu, 0.0) if loc else 0.0
        if rate > t.nohz_tick_per_s:
            yield Finding(
                "warning",
                "nohz-full-ticking",
                f"nohz_full CPU {cpu} still takes {rate:.0f} timer interrupts/s",
                cpu=cpu,
            )


CHECKS: tuple[Callable[[Measurements, Thresholds], Iterator[Finding]], ...] = (
    check_storms,
    check_queues_on_one_cpu,
    check_isolated,
    check_remote_numa,
    check_nohz_ticks,
    check_softnet,
    check_rx_drops,
    check_ring_drops,
    check_remapping,
)

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}  # how findings are sorted


def find_all(m: Measurements, thresholds: Thresholds | None = None) -> list[Finding]:
    t = thresholds or Thresholds()
    found = [f for check in CHECKS for f in check(m, t)]
    return sorted(found, key=lambda f: SEVERITY_ORDER[f.severity])
