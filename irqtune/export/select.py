"""Which series a scrape exports: include/exclude filters and the series budget.

Filters (`--include`, `--exclude`, repeatable) select per-IRQ series and /proc/net/dev
interfaces. A pattern that is a number or a range (`41`, `40-63`) matches IRQ numbers;
any other pattern is a shell glob (`eth*`, `nvme0q*`, `i40e-*`) matched against the
IRQ's device name and each of its action names, and against interface names. With
includes, an IRQ must match one of them (interfaces only when a glob include exists);
an exclude always wins.

The budget (`--max-series`, 0 = none) bounds the whole exposition:

1. Bounded families are always exported: health, agent, probe families keyed by
   vector/reason/device, per-interface counters, aggregated totals.
2. Per-CPU families keep their `cpu` label while they fit in 60 % of the budget, in
   this order: irqtune_cpu_interrupts_total, irqtune_arch_interrupts_total,
   softnet, irqtune_softirqs_total. One that does not fit is exported summed over
   CPUs, without the `cpu` label (the choice only changes with the CPU count).
3. Per-IRQ series (the counter, the two affinity gauges, the hard-IRQ histogram) fill
   the rest, busiest IRQ first by its count since boot (stable from scrape to scrape).
   An IRQ whose series do not fit in what is left is dropped whole and the next, less
   busy one is tried (family per_irq).
4. With `--per-cpu`, what is left then goes to the per-CPU breakdown of the kept IRQs
   (irqtune_irq_cpu_interrupts_total, one series per CPU that served the IRQ), busiest
   IRQ first, whole IRQs at a time (family per_irq_cpu).

Everything left out is counted in irqtune_exporter_series_dropped{family} and logged
when it changes.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

DEFAULT_MAX_SERIES = 5000
PER_CPU_SHARE = 0.6
PER_CPU_FAMILIES = ("cpu_interrupts", "arch_interrupts", "softnet", "softirqs")
DROP_FAMILIES = (*PER_CPU_FAMILIES, "per_irq", "per_irq_cpu")
_RANGE = re.compile(r"(\d+)(?:-(\d+))?\Z")


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str
    low: int | None = None
    high: int | None = None

    @classmethod
    def parse(cls, text: str) -> Pattern:
        m = _RANGE.match(text.strip())
        if m:
            low = int(m.group(1))
            high = int(m.group(2)) if m.group(2) else low
            if high < low:
                raise ValueError(f"IRQ range {text!r} ends before it starts")
            return cls(text.strip(), low, high)
        if not text.strip():
            raise ValueError("empty pattern")
        return cls(text.strip())

    @property
    def numeric(self) -> bool:
        return self.low is not None

    def matches_irq(self, irq: int, names: Iterable[str]) -> bool:
        if self.low is not None and self.high is not None:
            return self.low <= irq <= self.high
        return any(fnmatch.fnmatchcase(name, self.text) for name in names if name)

    def matches_name(self, name: str) -> bool:
        return not self.numeric and fnmatch.fnmatchcase(name, self.text)


@dataclass(frozen=True, slots=True)
class Filters:
    include: tuple[Pattern, ...] = ()
    exclude: tuple[Pattern, ...] = ()

    @classmethod
    def parse(cls, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Filters:
        return cls(tuple(map(Pattern.parse, include)), tuple(map(Pattern.parse, exclude)))

    def irq(self, irq: int, device: str | None, actions: Sequence[str]) -> bool:
        names = (device or "", *actions)
        if self.include and not any(p.matches_irq(irq, names) for p in self.include):
            return False
        return not any(p.matches_irq(irq, names) for p in self.exclude)

    def interface(self, name: str) -> bool:
        globs = [p for p in self.include if not p.numeric]
        if globs and not any(p.matches_name(name) for p in globs):
            return False
        return not any(p.matches_name(name) for p in self.exclude)


@dataclass(frozen=True, slots=True)
class ExportOptions:
    per_cpu: bool = False  # per-IRQ counters per CPU as well (opt-in: ncpu x nirq)
    filters: Filters = field(default_factory=Filters)
    max_series: int = DEFAULT_MAX_SERIES  # 0: no budget


@dataclass(frozen=True, slots=True)
class IrqItem:
    """One IRQ's claim on the budget."""

    irq: int
    busy: int  # its count since boot: the ranking
    series: int  # counter, affinity gauges, hard-IRQ histogram
    cpu_series: int = 0  # with --per-cpu: one per CPU that served it


@dataclass(slots=True)
class SeriesPlan:
    """What this scrape exports: per-CPU detail by family and the IRQs kept."""

    cpu_detail: dict[str, bool]
    kept: set[int]  # IRQ numbers whose per-IRQ series are exported
    kept_cpu: set[int]  # ... and whose per-CPU breakdown is (with --per-cpu)
    dropped: dict[str, int]  # family -> series not exported because of the budget


def plan_budget(max_series: int, fixed: int, per_cpu: dict[str, tuple[int, int]], irqs: list[IrqItem]) -> SeriesPlan:
    """Decide the scrape's shape.

    fixed: series always exported; per_cpu: family -> (series per CPU, series summed over CPUs);
    irqs: every IRQ that passed the filters.
    """
    detail = dict.fromkeys(per_cpu, True)
    dropped = dict.fromkeys(DROP_FAMILIES, 0)
    if max_series <= 0:
        every = {item.irq for item in irqs}
        return SeriesPlan(detail, every, {item.irq for item in irqs if item.cpu_series}, dropped)
    share = int(max_series * PER_CPU_SHARE)
    used = 0
    for name in PER_CPU_FAMILIES:
        if name not in per_cpu:
            continue
        full, summed = per_cpu[name]
        if used + full <= share:
            used += full
        else:
            detail[name] = False
            dropped[name] = full - summed
            used += summed
    room = max_series - fixed - used
    ranked = sorted(irqs, key=lambda item: (-item.busy, item.irq))
    kept: set[int] = set()
    for item in ranked:
        if item.series <= room:
            kept.add(item.irq)
            room -= item.series
        else:
            dropped["per_irq"] += item.series + item.cpu_series
    kept_cpu: set[int] = set()
    for item in ranked:
        if not item.cpu_series or item.irq not in kept:
            continue
        if item.cpu_series <= room:
            kept_cpu.add(item.irq)
            room -= item.cpu_series
        else:
            dropped["per_irq_cpu"] += item.cpu_series
    return SeriesPlan(detail, kept, kept_cpu, dropped)
