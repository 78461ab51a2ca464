"""Parser for /proc/diskstats: the requests each block device completed.

block/genhd.c `diskstats_show`, Documentation/admin-guide/iostats.rst: `major minor name` and 11
counters (up to 4.17), 15 (4.18+: discards) or 17 (5.5+: flushes). irqtune keeps the completed
requests, reads (field 1), writes (5), discards (12) and flushes (16): the useful work a block
device's interrupts bring (findings.py judges an interrupt storm by it). Partitions are listed too,
their I/O also counted in their whole disk. Counters are unsigned long (64-bit on 64-bit kernels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .common import Problem, is_count, kernel_lines

COMPLETED = {"reads": 0, "writes": 4, "discards": 11, "flushes": 15}  # name -> index among the counters
WIDTHS = (11, 15, 17)  # counters per line, by kernel version


@dataclass(slots=True)
class DiskstatsTable:
    disks: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> COMPLETED key -> count
    problems: list[Problem] = field(default_factory=list)


def parse_diskstats(text: str, source: str = "/proc/diskstats") -> DiskstatsTable:
    table = DiskstatsTable()
    for number, line in enumerate(kernel_lines(text), 1):
        parts = line.split()
        if not parts:
            continue
        counters = parts[3:]
        if len(counters) not in WIDTHS or not all(map(is_count, (*parts[:2], *counters))):
            table.problems.append(
                Problem(source, number, f"expected 'MAJOR MINOR NAME' and 11, 15 or 17 counters, got {line[:60]!r}")
            )
            continue
        table.disks[parts[2]] = {name: int(counters[i]) for name, i in COMPLETED.items() if i < len(counters)}
    return table


def completed(counts: dict[str, int]) -> int:
    """Every request the device completed: reads, writes, discards and flushes."""
    return sum(counts.values())
