"""Parser for /proc/softirqs (fs/proc/softirqs.c).

The header lists POSSIBLE CPUs (not online ones, unlike /proc/interrupts). Names are
right-aligned with varying width across kernels, so each row is split at ':'.
`BLOCK_IOPOLL` (before Linux 4.5) is reported under its current name `IRQ_POLL`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .common import COUNT_DIGITS, Problem, describe, is_count, kernel_lines
from .interrupts import parse_header

VECTORS = ("HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU")
RENAMED = {"BLOCK_IOPOLL": "IRQ_POLL"}


@dataclass(slots=True)
class SoftirqTable:
    cpus: list[int]
    vectors: dict[str, list[int]] = field(default_factory=dict)  # name -> counts aligned with cpus
    problems: list[Problem] = field(default_factory=list)

    def per_cpu(self, vector: str) -> dict[int, int]:
        return dict(zip(self.cpus, self.vectors.get(vector, ())))


def _all_counts(tokens: list[str]) -> bool:
    """Every token a kernel count; checked on the joined text first (one C call for 1,152 columns), token by
    token only when that could hide one over 2**64-1."""
    if max(map(len, tokens), default=0) < COUNT_DIGITS:
        joined = "".join(tokens)
        return joined.isdigit() and joined.isascii()
    return all(map(is_count, tokens))


def parse_softirqs(text: str, source: str = "/proc/softirqs") -> SoftirqTable:
    lines = kernel_lines(text)
    header_at = next((i for i, line in enumerate(lines) if line.strip()), None)
    cpus = parse_header(lines[header_at]) if header_at is not None else None
    if cpus is None:
        table = SoftirqTable(cpus=[])
        what = "empty file" if header_at is None else "expected a header of CPU columns (CPU0 CPU1 ...)"
        table.problems.append(Problem(source, 1 if header_at is None else header_at + 1, what))
        return table
    table = SoftirqTable(cpus=cpus)
    for number, line in enumerate(lines[header_at + 1 :], header_at + 2):
        if not line.strip():
            continue
        name, colon, rest = line.partition(":")
        name = name.strip()
        tokens = rest.split()
        if not colon or not name:
            table.problems.append(Problem(source, number, "expected 'VECTOR: counts ...'"))
        elif len(tokens) != len(cpus) or not _all_counts(tokens):
            table.problems.append(
                Problem(
                    source,
                    number,
                    f"vector {describe(name)}: expected {len(cpus)} counts, got {describe(' '.join(tokens), 60)}",
                )
            )
        else:
            table.vectors[RENAMED.get(name, name)] = list(map(int, tokens))
    return table
