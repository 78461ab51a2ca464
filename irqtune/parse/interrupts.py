"""Parser for /proc/interrupts (kernel/irq/proc.c `show_interrupts` + `arch_show_interrupts`).

The header names the ONLINE CPUs by id (`CPU0 CPU1 CPU3` when CPU2 is offline), so
counts are keyed by the header ids, never by column position. Rows are split at the
first ':' (arm64 prints `IPI0:2768808080` with no space), then by whitespace tokens:
a run of unsigned counts, then a description. Numbered rows describe the chip,
hardware IRQ, trigger/flow and action names; named rows (LOC, RES, IPI0, s390 `EXT`)
carry a text. Single-value rows (ERR, MIS, Err) and rows without counts (FIQ) exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import compress
from operator import add

from .common import Problem, is_count

_HWIRQ = re.compile(r"(\d+)(?:-(\S+))?\Z")
_TOKEN = re.compile(r"\S+")
_TRIGGERS = frozenset({"Level", "Edge"})
# flow-handler names the kernel prints glued to the chip in old (pre irq-domain) kernels.
_FLOWS = frozenset({"edge", "level", "fasteoi", "simple", "percpu", "percpu_devid", "bad", "edge_eoi"})


@dataclass(slots=True)
class InterruptRow:
    """One row of /proc/interrupts."""

    key: str
    line: int
    counts: list[int] | None  # per CPU, aligned with InterruptTable.cpus; None: no per-CPU counts
    total: int | None  # sum of counts, or the single value (ERR); None when the row has no counts (FIQ)
    description: str = ""  # text after the counts, as printed (named rows: "Local timer interrupts")
    chip: str = ""
    hwirq: str = ""
    trigger: str = ""  # ARM "Level"/"Edge"
    flow: str = ""  # flow handler: "edge", "fasteoi", Xen "event"
    actions: tuple[str, ...] = ()
    extra_counts: tuple[int, ...] = ()  # counts beyond the header (old ARM printed IPIs per present CPU)

    @property
    def irq(self) -> int | None:
        return int(self.key) if self.key.isdigit() else None

    @property
    def remapped(self) -> bool:
        """Interrupt remapping: the chip is an `IR-` domain."""
        return self.chip.startswith("IR-")


@dataclass(slots=True)
class InterruptTable:
    cpus: list[int]
    rows: dict[str, InterruptRow] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def per_cpu(self, key: str) -> dict[int, int]:
        row = self.rows.get(key)
        if row is None or row.counts is None:
            return {}
        return dict(zip(self.cpus, row.counts))

    def cpu_totals(self) -> dict[int, int]:
        """Sum of every per-CPU row for each CPU (PCP's kernel.percpu.intr)."""
        totals = [0] * len(self.cpus)
        for row in self.rows.values():
            if row.counts is not None:
                totals = list(map(add, totals, row.counts))
        return dict(zip(self.cpus, totals))


def parse_header(line: str) -> list[int] | None:
    ids: list[int] = []
    for token in line.split():
        if not token.startswith("CPU") or not is_count(token[3:]):
            return None
        ids.append(int(token[3:]))
    return ids or None


def parse_interrupts(text: str, source: str = "/proc/interrupts") -> InterruptTable:
    """Parse the whole file. Bad rows are skipped and reported in `problems`; never raises."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    cpus = parse_header(lines[start]) if start is not None else None
    if cpus is None or start is None:
        table = InterruptTable(cpus=[])
        what = "empty file" if start is None else "expected a header of CPU columns (CPU0 CPU1 ...)"
        table.problems.append(Problem(source, 0 if start is None else start + 1, what))
        return table

    table = InterruptTable(cpus=cpus)
    ncpu = len(cpus)
    columns = range(ncpu)
    rows = table.rows
    ambiguous: list[InterruptRow] = []
    for number, line in enumerate(lines[start + 1 :], start + 2):
        key, colon, rest = line.partition(":")
        key = key.strip()
        if not colon:
            if line.strip():
                table.problems.append(Problem(source, number, "expected 'NAME: counts ...', found no ':'"))
            continue
        if not key:
            table.problems.append(Problem(source, number, "expected a row name before ':'"))
            continue
        if key in rows:
            table.problems.append(Problem(source, number, f"duplicate row {key!r}; first one kept"))
            continue
        row = _fast_row(key, number, rest, ncpu, columns) or _slow_row(key, number, rest, ncpu, table, source)
        if row is None:
            continue
        if key.isdigit():
            if _describe_numbered(row):
                ambiguous.append(row)
        else:
            _describe_named(row)
        rows[key] = row
    _settle_ambiguous(ambiguous, rows)
    return table


def _fast_row(key: str, number: int, rest: str, ncpu: int, columns: range) -> InterruptRow | None:
    """The common case: exactly `ncpu` counts, mostly zero. Converts only non-zero tokens."""
    tokens = rest.split(None, ncpu)
    if len(tokens) < ncpu:
        return None
    counts = [0] * ncpu
    total = 0
    for i in compress(columns, map("0".__ne__, tokens)):
        token = tokens[i]
        if not is_count(token):
            return None
        counts[i] = value = int(token)
        total += value
    tail = tokens[ncpu].rstrip() if len(tokens) > ncpu else ""
    return InterruptRow(key, number, counts, total, tail)


def _slow_row(key: str, number: int, rest: str, ncpu: int, table: InterruptTable, source: str) -> InterruptRow | None:
    """Rows with fewer counts than CPUs: single-value (ERR), none (FIQ), or malformed."""
    tokens = rest.split()
    found = 0
    while found < len(tokens) and is_count(tokens[found]):
        found += 1
    tail_parts = rest.split(None, found)
    tail = tail_parts[found].rstrip() if len(tail_parts) > found else ""
    numbered = key.isdigit()
    if found == 0 and not numbered:
        return InterruptRow(key, number, None, None, tail)
    if found == 1 and not numbered:
        return InterruptRow(key, number, None, int(tokens[0]), tail)
    detail = f" before {tokens[found]!r}" if found < len(tokens) else ""
    table.problems.append(
        Problem(source, number, f"row {key!r}: expected {ncpu} per-CPU counts, found {found}{detail}; row skipped")
    )
    return None


def _describe_named(row: InterruptRow) -> None:
    """Named rows: peel counts for CPUs beyond the header off the description."""
    text = row.description
    if text[:1].isdigit():
        tokens = text.split()
        extra = 0
        while extra < len(tokens) and is_count(tokens[extra]):
            extra += 1
        row.extra_counts = tuple(int(t) for t in tokens[:extra])
        rest = text.split(None, extra)
        row.description = rest[extra] if len(rest) > extra else ""


def _describe_numbered(row: InterruptRow) -> bool:
    """Split a numbered row's tail into chip, hwirq, trigger, flow and actions.

    Returns True when the tail is one lone token that is either a chip with no action
    (`ARMCTRL`) or an action on a kernel that prints no chip (`4020KEY`): decided later
    from the chips seen in the whole file.
    """
    tail = row.description
    tokens = list(_TOKEN.finditer(tail))
    if not tokens:
        return False
    first = tokens[0].group()
    pos = 0
    hw = None
    for i in (1, 2):
        if i < len(tokens):
            hw = _HWIRQ.match(tokens[i].group())
            if hw:
                # a chip name may contain one space ("PCIe MSI 526336 Edge"), never more
                if i == 2 and tail[tokens[0].end() : tokens[1].start()] != " ":
                    hw = None
                break
    if hw:
        row.chip = tail[: tokens[i - 1].end()]
        row.hwirq, row.flow = hw.group(1), hw.group(2) or ""
        pos = i + 1
    elif "-" in first and first.rsplit("-", 1)[1] in _FLOWS and first.rsplit("-", 1)[0]:
        row.chip, row.flow = first.rsplit("-", 1)  # old kernels: "IR-IO-APIC-edge"
        pos = 1
    elif len(tokens) > 1 and (tokens[1].group() in _TRIGGERS or _is_flow_token(tokens[1].group())):
        row.chip, pos = first, 1  # Xen: "xen-dyn  Edge  -event"
    elif len(tokens) > 1 and len(tail[tokens[0].end() : tokens[1].start()]) >= 2:
        row.chip, pos = first, 1  # chip, two spaces, action ("ARMCTRL  mmc0", "-  timer")
    elif len(tokens) == 1:
        return True
    if pos < len(tokens) and tokens[pos].group() in _TRIGGERS:
        row.trigger = tokens[pos].group()
        pos += 1
    if pos < len(tokens) and not row.flow and _is_flow_token(tokens[pos].group()):
        row.flow = tokens[pos].group()[1:]
        pos += 1
    if pos < len(tokens):
        row.actions = _split_actions(tail[tokens[pos].start() :])
    return False


def _is_flow_token(token: str) -> bool:
    return len(token) > 1 and token[0] == "-" and token[1].isalpha()


def _split_actions(text: str) -> tuple[str, ...]:
    return tuple(name for name in (part.strip() for part in text.split(",")) if name)


def _settle_ambiguous(ambiguous: list[InterruptRow], rows: dict[str, InterruptRow]) -> None:
    chips = {row.chip for row in rows.values() if row.chip}
    for row in ambiguous:
        if row.description in chips:
            row.chip = row.description
        else:
            row.actions = (row.description,)
