"""Parser for /proc/vmstat (mm/vmstat.c, vmstat_show: one `name value` line per counter, "%s %lu\n").

Only the counters that show atomic-allocation pressure are kept: allocstall_* (direct reclaim entered, per
zone type), pgalloc_* (pages allocated, per zone type) and compact_* (compaction work and stalls). The set
of names changes between kernels (CONFIG_ZONE_DMA, CONFIG_COMPACTION), so each is optional.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .common import Problem, describe, kernel_lines, parse_count

PREFIXES = ("allocstall_", "pgalloc_", "compact_")


@dataclass(slots=True)
class Vmstat:
    counters: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def total(self, prefix: str) -> int | None:
        """The sum over every counter named `prefix*` (allocstall over all zone types); None when none."""
        found = [v for k, v in self.counters.items() if k.startswith(prefix)]
        return sum(found) if found else None


def parse_vmstat(text: str, source: str = "/proc/vmstat") -> Vmstat:
    """The pressure counters; a line that is not `name count` is a Problem(FILE, LINE)."""
    out = Vmstat()
    for number, line in enumerate(kernel_lines(text), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 2:
            out.problems.append(Problem(source, number, f"expected 'name count', got {describe(line)}"))
            continue
        name, value = tokens
        if not name.startswith(PREFIXES):
            continue
        count = parse_count(value)
        if count is None:
            out.problems.append(Problem(source, number, f"{describe(name)}: expected a count, got {describe(value)}"))
            continue
        out.counters[name] = count
    return out
