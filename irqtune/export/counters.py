"""32-bit kernel counters as 64-bit Prometheus counters.

/proc/interrupts, /proc/softirqs and /proc/net/softnet_stat count in 32 bits per CPU.
Exported as they are, a wrap looks like a counter reset to Prometheus and `rate()`
counts a huge spike. The exporter keeps the previous raw value of every cell (one IRQ
on one CPU) and an offset: a decrease that `measure.rates.counter_delta` calls a wrap
adds 2^32; any other decrease (the IRQ was freed and its number reused) adds the
value before the reset, so the exported value keeps rising by what the kernel
counted since. A CPU that goes offline keeps its last value in the row's total
(otherwise the sum would drop); when it comes back it counts on from there.

State lives as long as a row is seen: a row not read in a scrape (a freed IRQ) is
forgotten, and its last per-CPU values move to `retired`, so per-CPU sums over all
rows (irqtune_cpu_interrupts_total) never go down either.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from operator import lt

from ..measure.rates import counter_delta


@dataclass(slots=True)
class _Cells:
    cpus: tuple[int, ...]
    raw: tuple[int, ...]
    offsets: dict[int, int] = field(default_factory=dict)  # CPU id -> offset; sparse (most never wrap)
    absent: dict[int, tuple[int, int]] = field(default_factory=dict)  # offline CPU -> (raw, offset)


@dataclass(slots=True)
class Extended:
    """One row's cells as 64-bit values: `value(i)` for column i, `total` for the row."""

    cpus: tuple[int, ...]
    raw: tuple[int, ...]
    offsets: dict[int, int]
    total: int

    def value(self, index: int) -> int:
        return self.raw[index] + self.offsets.get(self.cpus[index], 0)


class Extender:
    """Previous raw values and offsets of every series, across scrapes (not thread-safe: one scrape at a time)."""

    def __init__(self) -> None:
        self._rows: dict[Hashable, _Cells] = {}
        self._scalars: dict[Hashable, tuple[int, int]] = {}  # key -> (raw, offset)
        self._seen_rows: set[Hashable] = set()
        self._seen_scalars: set[Hashable] = set()
        self._interval: float | None = None
        self._cpus: tuple[int, ...] = ()  # the last CPU columns seen, shared by every row that has them
        self._given: Sequence[int] = ()  # the sequence they were last given as
        self.retired: dict[int, int] = {}  # CPU id -> last values of rows that vanished

    def begin(self, interval: float | None) -> None:
        """Start a scrape; `interval` = seconds since the previous one (None: first), for wrap plausibility."""
        self._interval = interval if interval and interval > 0 else None
        self._seen_rows.clear()
        self._seen_scalars.clear()

    def end(self) -> None:
        """Forget series that were not read in this scrape (a freed IRQ, a renamed action)."""
        for key in [k for k in self._rows if k not in self._seen_rows]:
            cells = self._rows.pop(key)
            parked = {cpu: raw + offset for cpu, (raw, offset) in cells.absent.items()}
            live = {cpu: raw + cells.offsets.get(cpu, 0) for cpu, raw in zip(cells.cpus, cells.raw)}
            for cpu, value in (parked | live).items():
                if value:
                    self.retired[cpu] = self.retired.get(cpu, 0) + value
        for key in [k for k in self._scalars if k not in self._seen_scalars]:
            del self._scalars[key]

    def cpu_offsets(self) -> dict[int, int]:
        """Per CPU, what to add to the raw sum of all live rows: their offsets and the retired rows."""
        out = dict(self.retired)
        for cells in self._rows.values():
            for cpu, offset in cells.offsets.items():
                out[cpu] = out.get(cpu, 0) + offset
        return out

    def scalar(self, key: Hashable, raw: int) -> int:
        """One 32-bit counter (ERR, a softnet column) as a 64-bit value."""
        self._seen_scalars.add(key)
        prev = self._scalars.get(key)
        offset = 0
        if prev is not None:
            old, offset = prev
            if raw < old:
                offset = self._advance(offset, old, raw)
        self._scalars[key] = (raw, offset)
        return raw + offset

    def row(self, key: Hashable, cpus: Sequence[int], raw: Sequence[int]) -> Extended:
        """Per-CPU 32-bit counters of one row (aligned with `cpus`) as 64-bit values."""
        self._seen_rows.add(key)
        cpus_t, raw_t = self._shared(cpus), tuple(raw)
        prev = self._rows.get(key)
        if prev is None:
            cells = self._rows[key] = _Cells(cpus_t, raw_t)
        else:
            cells = prev
            if prev.cpus is cpus_t or prev.cpus == cpus_t:
                if prev.raw != raw_t and any(map(lt, raw_t, prev.raw)):
                    for cpu, old, new in zip(cpus_t, prev.raw, raw_t):
                        if new < old:
                            cells.offsets[cpu] = self._advance(cells.offsets.get(cpu, 0), old, new)
            else:
                self._replug(cells, cpus_t, raw_t)
            cells.cpus, cells.raw = cpus_t, raw_t
        total = sum(raw_t) + sum(cells.offsets.values()) + sum(r + o for r, o in cells.absent.values())
        return Extended(cpus_t, raw_t, cells.offsets, total)

    def _shared(self, cpus: Sequence[int]) -> tuple[int, ...]:
        """`cpus` as the one tuple every row with these columns holds: on a 1152-CPU host, a copy and a compare
        per row and scrape was a fifth of the scrape."""
        if cpus is not self._given:
            self._given = cpus
            if tuple(cpus) != self._cpus:
                self._cpus = tuple(cpus)
        return self._cpus

    def _advance(self, offset: int, old: int, new: int) -> int:
        """The offset after a decrease old -> new: exported value = previous one + what the kernel counted."""
        return offset + old - new + counter_delta(old, new, self._interval)

    def _replug(self, cells: _Cells, cpus: tuple[int, ...], raw: tuple[int, ...]) -> None:
        """The CPU columns changed (hotplug): match cells by CPU id, park the CPUs that went away."""
        old = dict(zip(cells.cpus, cells.raw))
        for cpu in set(cells.cpus) - set(cpus):
            cells.absent[cpu] = (old[cpu], cells.offsets.pop(cpu, 0))
        for cpu, new in zip(cpus, raw):
            if cpu in cells.absent:
                old[cpu], cells.offsets[cpu] = cells.absent.pop(cpu)
            before = old.get(cpu)
            if before is not None and new < before:
                cells.offsets[cpu] = self._advance(cells.offsets.get(cpu, 0), before, new)
