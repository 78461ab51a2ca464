"""What `irqtune top` shows, as plain data: one row per IRQ and per CPU, sorted; no I/O, no drawing.

Kept apart from the renderers so the same rows feed the terminal view and the
plain (`top -b`-like) lines, and so tests can build them from constructed rates.
Device and action names are kernel strings: control characters are escaped here,
once, for both renderers (rich markup is the rich renderer's job: it uses Text).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..measure.inventory import Inventory
from ..measure.rates import Rates
from ..parse.common import format_cpulist, is_count, printable
from ..probe.base import Histogram

SORTS = ("rate", "cpus", "latency", "irq", "device")
SORT_KEYS = {"r": "rate", "c": "cpus", "l": "latency", "i": "irq", "d": "device"}  # key pressed -> sort
SPREAD_CPUS = 4  # CPUs named in the spread text; the rest are counted
ARCH_ROWS = ("LOC", "RES", "CAL", "TLB")  # x86; ARM has IPI0..IPIn instead


def clean(text: str) -> str:
    """A kernel string made safe to print: control and other non-printable characters as escapes."""
    return printable(text)


@dataclass(frozen=True, slots=True)
class Latency:
    """Hard-IRQ handler time in the last window, from the hardirq probe."""

    count: int
    mean_us: float
    max_us: float


@dataclass(frozen=True, slots=True)
class IrqRow:
    irq: int
    rate: float  # interrupts/s, all CPUs
    per_cpu: dict[int, float]
    device: str  # "-" when no device is known
    queue: str  # "rx 3", "io", "-"
    actions: str
    effective: str  # effective affinity (else requested) as a CPU list, "-" when unknown
    latency: Latency | None

    @property
    def cpus(self) -> int:
        """How many CPUs took this IRQ in the window."""
        return sum(1 for r in self.per_cpu.values() if r > 0)

    @property
    def spread(self) -> str:
        return spread_text(self.per_cpu)


@dataclass(frozen=True, slots=True)
class CpuRow:
    cpu: int
    device_irqs: float  # numbered IRQs/s on this CPU
    arch: dict[str, float]  # LOC, RES, CAL, TLB (or IPIn) per second
    irq_time: float | None  # fraction of the CPU in hard-IRQ context (/proc/stat)
    softirq_time: float | None


def spread_text(per_cpu: Mapping[int, float], limit: int = SPREAD_CPUS) -> str:
    """Where an IRQ landed: `0:92% 1:8%`, busiest CPUs first, `+N` for the rest; `idle`, or `-` unknown."""
    if not per_cpu:
        return "-"
    total = sum(per_cpu.values())
    busy = sorted(((r, c) for c, r in per_cpu.items() if r > 0), key=lambda rc: (-rc[0], rc[1]))
    if not busy or total <= 0:
        return "idle"
    text = " ".join(f"{c}:{r / total:.0%}" for r, c in busy[:limit])
    return text + (f" +{len(busy) - limit}" if len(busy) > limit else "")


def _queue(role: str | None, queue: int | None) -> str:
    if not role:
        return "-"
    return f"{role} {queue}" if queue is not None else role


def _latency(hist: Histogram | None) -> Latency | None:
    if hist is None or not hist.count:
        return None
    return Latency(hist.count, hist.sum_ns / hist.count / 1e3, hist.max_ns / 1e3)


def _sort_key(sort: str):
    if sort == "rate":
        return lambda r: (-r.rate, r.irq)
    if sort == "cpus":
        return lambda r: (-r.cpus, -r.rate, r.irq)
    if sort == "latency":  # measured rows first, slowest mean first; the rest by rate
        return lambda r: (r.latency is None, -(r.latency.mean_us if r.latency else r.rate),
                          -(r.latency.max_us if r.latency else 0.0), r.irq)  # fmt: skip
    if sort == "irq":
        return lambda r: r.irq
    if sort == "device":  # named devices first, alphabetically, queues in IRQ order
        return lambda r: (r.device == "-", r.device, r.irq)
    raise ValueError(f"unknown sort {sort!r}; choose from {', '.join(SORTS)}")


def irq_rows(
    rates: Rates | None,
    inventory: Inventory,
    latency: Mapping[int, Histogram] | None = None,
    sort: str = "rate",
) -> list[IrqRow]:
    """Every numbered IRQ of the inventory with its rate, spread and handler latency, sorted by `sort`.

    `latency`: the hardirq probe's histograms by IRQ for the same window (None: the probe is not running).
    """
    key = _sort_key(sort)
    latency = latency or {}
    rows = []
    for irq, info in inventory.irqs.items():
        row_rate = rates.interrupts.get(str(irq)) if rates else None
        aff = info.affinity
        cpus = aff.effective or aff.requested if aff else None
        rows.append(
            IrqRow(
                irq=irq,
                rate=row_rate.total if row_rate else 0.0,
                per_cpu=dict(row_rate.per_cpu) if row_rate else {},
                device=clean(info.device) if info.device else "-",
                queue=_queue(info.role, info.queue),
                actions=clean(", ".join(info.actions)) or "-",
                effective=format_cpulist(cpus) if cpus else "-",
                latency=_latency(latency.get(irq)),
            )
        )
    return sorted(rows, key=key)


def arch_keys(rates: Rates) -> list[str]:
    """The per-CPU architecture rows to show: LOC/RES/CAL/TLB on x86, IPI0..IPIn on ARM."""
    keys = [k for k in ARCH_ROWS if k in rates.interrupts and rates.interrupts[k].per_cpu]
    if not keys:
        ipis = [k for k in rates.interrupts if k.startswith("IPI") and is_count(k[3:])]
        keys = sorted(ipis, key=lambda k: int(k[3:]))
    return keys


def cpu_rows(rates: Rates) -> list[CpuRow]:
    """Per online CPU: device interrupts, timer/IPI rows, and the share of time in (soft)IRQ context."""
    keys = arch_keys(rates)
    numbered = [r for k, r in rates.interrupts.items() if k.isdigit()]
    return [
        CpuRow(
            cpu=cpu,
            device_irqs=sum(r.per_cpu.get(cpu, 0.0) for r in numbered),
            arch={k: rates.interrupts[k].per_cpu.get(cpu, 0.0) for k in keys},
            irq_time=rates.irq_time.get(cpu),
            softirq_time=rates.softirq_time.get(cpu),
        )
        for cpu in rates.cpus
    ]
