"""Parser for /proc/zoneinfo (mm/vmstat.c, zoneinfo_show_print): free pages and watermarks per zone.

Each zone starts with "Node %d, zone %8s"; then "  pages free     %lu" and the indented "min", "low",
"high" (and since 5.19 "promo", since 5.0 "boost") lines, "managed" among them. Every other line (per-node
stats, pagesets, protection) is skipped. A zone with no "managed" pages (ZONE_MOVABLE unused) is kept:
its watermarks are zero and callers skip it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .common import Problem, describe, kernel_lines, parse_count

_HEADER = re.compile(r"Node (\d+), zone +(\S+)\Z")
_FIELDS = ("free", "boost", "min", "low", "high", "managed")


@dataclass(slots=True)
class Zone:
    node: int
    name: str
    free: int = 0  # pages
    boost: int = 0
    min: int = 0
    low: int = 0
    high: int = 0
    managed: int = 0

    @property
    def headroom(self) -> int:
        """Free pages above the min watermark: what GFP_ATOMIC may still take before it fails."""
        return self.free - self.min


@dataclass(slots=True)
class ZoneInfo:
    zones: list[Zone] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _field(tokens: list[str]) -> tuple[str, str] | None:
    """("free", "3840") from ["pages", "free", "3840"] or ("min", "23") from ["min", "23"]."""
    if len(tokens) == 3 and tokens[0] == "pages":
        tokens = tokens[1:]
    if len(tokens) == 2 and tokens[0] in _FIELDS:
        return tokens[0], tokens[1]
    return None


def parse_zoneinfo(text: str, source: str = "/proc/zoneinfo") -> ZoneInfo:
    """Zones in file order; a bad header or watermark value is a Problem(FILE, LINE)."""
    out = ZoneInfo()
    zone: Zone | None = None
    for number, line in enumerate(kernel_lines(text), 1):
        if line.startswith("Node"):
            match = _HEADER.match(line)
            if match is None or parse_count(match.group(1)) is None:
                out.problems.append(Problem(source, number, f"expected 'Node N, zone NAME', got {describe(line)}"))
                zone = None
                continue
            zone = Zone(int(match.group(1)), match.group(2))
            out.zones.append(zone)
            continue
        found = _field(line.split())
        if zone is None or found is None:
            continue
        value = parse_count(found[1])
        if value is None:
            out.problems.append(Problem(source, number, f"{found[0]}: expected a page count, got {describe(found[1])}"))
            continue
        setattr(zone, found[0], value)
    return out
