"""What every probe shares: the probe description, log2 histograms, common C helpers.

Programs attach to tracepoints or raw tracepoints only (no kprobes: those break
across kernels and need exact headers). The hot paths read no strings and update
per-CPU or array maps; names are resolved in user space. Every hash map is bounded.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SLOTS = 40  # log2 buckets: slot s holds [2^(s-1), 2^s - 1] ns (0 and 1 in slot 1); the last one is open

# Shared C: the histogram slot of a value in ns (bcc's bpf_log2l + 1 semantics, written out for the verifier).
C_COMMON = (
    f"#define SLOTS {SLOTS}\n"
    + r"""
static __always_inline u32 log2_slot(u64 v) {
    u32 s = 0;
    if (v >= (1ULL << 32)) { v >>= 32; s += 32; }
    if (v >= (1ULL << 16)) { v >>= 16; s += 16; }
    if (v >= (1ULL << 8)) { v >>= 8; s += 8; }
    if (v >= (1ULL << 4)) { v >>= 4; s += 4; }
    if (v >= (1ULL << 2)) { v >>= 2; s += 2; }
    if (v >= (1ULL << 1)) { s += 1; }
    s += 1;
    return s < SLOTS ? s : SLOTS - 1;
}
"""
)


@dataclass(slots=True)
class Histogram:
    """Durations: count, sum and max in ns, plus log2 slot counts (index = slot)."""

    count: int = 0
    sum_ns: int = 0
    max_ns: int = 0
    slots: list[int] = field(default_factory=lambda: [0] * SLOTS)

    def add(self, count: int, sum_ns: int, max_ns: int, slots) -> None:
        self.count += count
        self.sum_ns += sum_ns
        self.max_ns = max(self.max_ns, max_ns)
        for i, n in enumerate(slots):
            self.slots[i] += n

    @staticmethod
    def upper_ns(slot: int) -> int:
        """Largest value in a slot (Prometheus `le`), in ns."""
        return (1 << slot) - 1

    def to_json(self) -> dict:
        """Buckets in seconds: [[le, count], ...] for non-empty slots (not cumulative)."""
        return {
            "count": self.count,
            "sum_seconds": self.sum_ns / 1e9,
            "max_seconds": self.max_ns / 1e9,
            "mean_seconds": self.sum_ns / self.count / 1e9 if self.count else 0.0,
            "buckets": [[self.upper_ns(i) / 1e9, n] for i, n in enumerate(self.slots) if n],
        }


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One probe: which tracepoints it needs, its C text, and how to read its maps."""

    name: str
    summary: str
    tracepoints: tuple[str, ...]  # "category:event" that must exist in tracefs
    source: Callable[[dict], str]  # context (max_irq, cpu_words, ...) -> C text
    read: Callable[[Any, dict], dict]  # (BPF object, context) -> plain values
    arch: tuple[str, ...] = ()  # machines it runs on; empty = all
    optional_tracepoints: tuple[str, ...] = ()
    prepare: Callable[[Any, dict], None] | None = None  # fill maps user space owns, after loading

    def unsupported_reason(self, has_tracepoint: Callable[[str], bool]) -> str | None:
        if self.arch and platform.machine() not in self.arch:
            return f"needs {'/'.join(self.arch)} (this is {platform.machine()})"
        missing = [tp for tp in self.tracepoints if not has_tracepoint(tp)]
        if missing:
            return f"tracepoint{'s' if len(missing) > 1 else ''} {', '.join(missing)} not in this kernel"
        return None


_MAP_DECL = re.compile(r"\bBPF_(PERCPU_)?(ARRAY|HASH)\((\w+),")


def map_names(source: str) -> list[str]:
    """Names of the maps a probe's C text declares."""
    return [m.group(3) for m in _MAP_DECL.finditer(source)]


PROBE_NAMES = ("hardirq", "softirq", "ipi", "tlb", "napi", "timer", "block")
