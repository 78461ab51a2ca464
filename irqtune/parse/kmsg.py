"""Parser for kernel log records as /dev/kmsg gives them: allocation failures counted, never the log text kept.

Record format (kernel/printk/printk.c, info_print_ext_header / devkmsg_read): "PRI,SEQ,TS_USEC,FLAGS[,caller=
T123];MESSAGE", then dictionary lines that start with a space. A failed allocation is reported by warn_alloc
(mm/page_alloc.c): "%s: page allocation failure: order:%u, mode:%#x(%pGg), nodemask=%*pbl" with the task's
comm first (older kernels: "page allocation failure. order:%d, mode:0x%x", no flag names); dump_stack then
prints "CPU: %d [UID: %u] PID: %d Comm: %s ..." in a record of its own, which names the CPU. Only the
numbers and the task's name are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .common import Problem, describe, kernel_lines, parse_count

_RECORD = re.compile(r"(\d+),(\d+),(\d+),([^,;]*)(?:,[^;]*)?;(.*)\Z", re.DOTALL)
_FAILURE = re.compile(
    r"(?P<task>.*?): page allocation failure[:.] order:(?P<order>\d+), mode:(?P<mode>0x[0-9a-fA-F]+)"
    r"(?:\((?P<flags>[^)]*)\))?"
)
_CPU = re.compile(r"CPU: (\d+) ")
ATOMIC_NAMES = ("GFP_ATOMIC", "GFP_NOWAIT")


@dataclass(frozen=True, slots=True)
class AllocFailure:
    """One warn_alloc report: no log text, only what it says."""

    seq: int
    order: int
    mode: int
    flags: tuple[str, ...]  # GFP flag names where the kernel printed them (4.10+)
    task: str
    cpu: int | None = None

    @property
    def atomic(self) -> bool | None:
        """GFP_ATOMIC / GFP_NOWAIT by name; None where the kernel printed no names."""
        return any(f in ATOMIC_NAMES for f in self.flags) if self.flags else None


@dataclass(slots=True)
class KmsgScan:
    failures: list[AllocFailure] = field(default_factory=list)
    last_seq: int | None = None
    problems: list[Problem] = field(default_factory=list)


def _failure(seq: int, message: str) -> AllocFailure | None:
    match = _FAILURE.search(message)
    if match is None:
        return None
    flags = tuple(f for f in (match.group("flags") or "").split("|") if f)
    return AllocFailure(seq, int(match.group("order")), int(match.group("mode"), 16), flags,
                        match.group("task").strip()[-64:])  # fmt: skip


def parse_kmsg(text: str, after: int | None = None, source: str = "/dev/kmsg") -> KmsgScan:
    """Records with a sequence number above `after` scanned; the "CPU: N" record following a failure gives
    its CPU. A line that is neither a record nor a dictionary line is a Problem(FILE, LINE)."""
    scan = KmsgScan(last_seq=after)
    pending: AllocFailure | None = None
    for number, line in enumerate(kernel_lines(text), 1):
        if not line or line.startswith(" "):
            continue  # a record's dictionary (SUBSYSTEM=, DEVICE=)
        match = _RECORD.match(line)
        if match is None or parse_count(match.group(2)) is None:
            scan.problems.append(Problem(source, number, f"expected 'PRI,SEQ,TS,FLAGS;MESSAGE', got {describe(line)}"))
            continue
        seq = int(match.group(2))
        if after is not None and seq <= after:
            continue
        scan.last_seq = seq if scan.last_seq is None else max(scan.last_seq, seq)
        message = match.group(5)
        cpu = _CPU.match(message)
        if pending is not None and cpu is not None:
            scan.failures[-1] = AllocFailure(*(getattr(pending, f) for f in ("seq", "order", "mode", "flags", "task")),
                                             cpu=int(cpu.group(1)))  # fmt: skip
            pending = None
            continue
        found = _failure(seq, message)
        if found is not None:
            scan.failures.append(found)
            pending = found
    return scan
