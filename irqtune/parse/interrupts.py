"""Parser for /proc/interrupts (kernel/irq/proc.c `show_interrupts` + `arch_show_interrupts`).

The header names the ONLINE CPUs by id (`CPU0 CPU1 CPU3` when CPU2 is offline), so
counts are keyed by the header ids, never by column position. Rows are split at the
first ':' (arm64 prints `IPI0:2768808080` with no space), then by whitespace tokens:
a run of unsigned counts, then a description. Numbered rows describe the chip,
hardware IRQ, trigger/flow and action names; named rows (LOC, RES, IPI0, s390 `EXT`)
carry a text. Single-value rows (ERR, MIS, Err) and rows without counts (FIQ) exist.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from operator import add

from .common import COUNT_DIGITS, MAX_COUNT, MAX_CPU_ID, Problem, describe, is_count, too_big

_HWIRQ = re.compile(r"(\d+)(?:-(\S+))?\Z")
_TOKEN = re.compile(r"\S+")
_TRIGGERS = frozenset({"Level", "Edge"})
# rows the kernel prints as one global value ("%*s: %10u"), whatever the number of CPUs
SINGLE_VALUE_ROWS = frozenset({"ERR", "MIS", "Err"})
# rows parsed at most: one per IRQ with a handler (kernel/irq/proc.c show_interrupts) and a few dozen named ones;
# an x86 IRQ with a handler holds one of its CPU's ~200 device vectors (arch/x86/kernel/apic/vector.c), and hosts
# of 1,152 CPUs show a few thousand rows. Past it the rest of the file is ignored, with one problem.
MAX_ROWS = 1 << 16
_KEY_WIDTH = 32  # a row's name and its colon come within this many bytes of the line's start
_DENSE = 32  # above this many non-zero counts in a row, convert every token
_BLANK_OR_ZERO = b" \t\n\r\f\v0"
# flow-handler names the kernel prints glued to the chip in old (pre irq-domain) kernels,
# Xen's event-channel names included ("xen-dyn-event", "xen-percpu-virq").
_FLOWS = frozenset(
    {"edge", "level", "fasteoi", "simple", "percpu", "percpu_devid", "bad", "edge_eoi", "event", "virq", "ipi"}
)


@dataclass(slots=True)
class InterruptRow:
    """One row of /proc/interrupts."""

    key: str
    line: int
    counts: tuple[int, ...] | None  # per CPU, aligned with InterruptTable.cpus; None: no per-CPU counts
    total: int | None  # sum of counts, or the single value (ERR); None when the row has no counts (FIQ)
    description: str = ""  # text after the counts, as printed (named rows: "Local timer interrupts")
    chip: str = ""
    hwirq: str = ""
    trigger: str = ""  # ARM "Level"/"Edge"
    flow: str = ""  # flow handler: "edge", "fasteoi", Xen "event"
    actions: tuple[str, ...] = ()
    extra_counts: tuple[int, ...] = ()  # counts beyond the header (old ARM printed IPIs per present CPU)
    irq: int | None = field(init=False)  # the IRQ number of a numbered row; None for LOC, ERR, ... (asked often)

    def __post_init__(self) -> None:
        self.irq = int(self.key) if is_count(self.key) else None

    @property
    def remapped(self) -> bool:
        """Interrupt remapping: the chip is an `IR-` domain."""
        return self.chip.startswith("IR-")


@dataclass(slots=True)
class InterruptTable:
    cpus: list[int]
    rows: dict[str, InterruptRow] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # the file as read, where each line starts (and its end), and the rows whose meaning hangs on the whole file
    # (`_settle_ambiguous`): what the next parse needs to take an unchanged line's row as it is (`previous=`)
    raw: bytes = field(default=b"", repr=False, compare=False)
    starts: list[int] = field(default_factory=list, repr=False, compare=False)
    settled: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def same_line(self, number: int, line: bytes) -> bool:
        """Line `number` (1-based) of this parse's file was byte for byte `line` (compared in place, no copy)."""
        starts = self.starts
        return number < len(starts) and starts[number] - starts[number - 1] == len(line) and \
            self.raw.startswith(line, starts[number - 1])  # fmt: skip

    def per_cpu(self, key: str) -> dict[int, int]:
        row = self.rows.get(key)
        if row is None or row.counts is None:
            return {}
        return dict(zip(self.cpus, row.counts))

    def cpu_totals(self) -> dict[int, int]:
        """Sum of every per-CPU row for each CPU (PCP's kernel.percpu.intr)."""
        totals = [0] * len(self.cpus)
        for row in self.rows.values():
            if row.counts is not None and row.total:  # most rows of a large host are all zeros
                totals = list(map(add, totals, row.counts))
        return dict(zip(self.cpus, totals))


def parse_header(line: str) -> list[int] | None:
    """The CPU ids of a header line (`CPU0 CPU1 ...`); None if it is not one. A new list each call."""
    ids = _header_ids(line)
    return list(ids) if ids is not None else None


@lru_cache(maxsize=16)  # the same line every pass: 1,152 tokens checked once, not on every read
def _header_ids(line: str) -> tuple[int, ...] | None:
    ids: list[int] = []
    for token in line.split():
        if not token.startswith("CPU") or not is_count(token[3:]) or int(token[3:]) >= MAX_CPU_ID:
            return None
        ids.append(int(token[3:]))
    return tuple(ids) or None


def parse_interrupts(data: bytes | str, source: str = "/proc/interrupts",
                     previous: InterruptTable | None = None) -> InterruptTable:  # fmt: skip
    """Parse the whole file. Bad rows are skipped and reported in `problems`; never raises.

    Works on bytes: on a 1152-CPU host the file is 13 MB, and splitting bytes is the
    cheapest tokenizer Python has. Names and descriptions are decoded per row.
    `previous`: the same file's last parse (a reader that comes back every pass): a line byte for byte what it
    was there, under the same header, is that row again and is not parsed (most rows of a large host do not move
    between passes; comparing a 13 kB line costs a microsecond, parsing it ten). Rows are never changed after the
    parse, so the two tables share them.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    starts = [0]  # where each line starts: the next parse compares its lines with this file's in place
    lines = enumerate(_measured(io.BytesIO(data), starts), 1)  # one line at a time stays in cache; split() does not
    start, header = next(((n, line) for n, line in lines if line.strip()), (None, b""))
    cpus = parse_header(_text(header)) if start is not None else None
    if cpus is None or start is None:
        table = InterruptTable(cpus=[])
        what = "empty file" if start is None else "expected a header of CPU columns (CPU0 CPU1 ...)"
        table.problems.append(Problem(source, start or 1, what))
        return table

    table = InterruptTable(cpus=cpus, raw=data, starts=starts)
    ncpu = len(cpus)
    zero_row = (0,) * ncpu  # shared by every all-zero row: most rows on a large host
    rows = table.rows
    ambiguous: list[InterruptRow] = []
    learned: dict[str, bytes] = {}  # "zero": the bytes of an all-zero row's counts as this file prints them
    before = _reusable(previous, header, start)
    for number, line in lines:
        if number - start > MAX_ROWS:
            what = f"more than {MAX_ROWS:,} rows (the cap: more IRQs than hosts have); the rest ignored"
            table.problems.append(Problem(source, number, what))
            break
        if before and (row := before.get(number)) is not None and previous.same_line(number, line) \
                and row.key not in rows:  # fmt: skip
            rows[row.key] = row
            continue
        zero = learned.get("zero")
        row = _zero_row(line, number, zero, zero_row) if zero is not None else None
        if row is not None and row.key not in rows and row.irq is not None and str(row.irq) == row.key:
            if _describe_numbered(row):  # a plain IRQ number not seen before: the common row
                ambiguous.append(row)
            rows[row.key] = row
            continue
        tokens = line.split(None, ncpu + 1)
        if not tokens:
            continue
        first = tokens[0]
        if first.endswith(b":") and first.count(b":") == 1 and len(first) > 1:
            key, body = _text(first[:-1]), line.find(b":") + 1
        else:  # a count glued to the colon (arm64 "IPI0:2768808080"), or no colon at all
            head, colon, rest = line.partition(b":")
            key, body = _text(head.strip()), len(head) + 1
            if not colon or not key:
                what = "expected 'NAME: counts ...', found no ':'" if not colon else "expected a row name before ':'"
                table.problems.append(Problem(source, number, what))
                continue
            tokens = [b"", *rest.split(None, ncpu)]
        if key in rows:
            table.problems.append(Problem(source, number, f"duplicate row {describe(key)}; first one kept"))
            continue
        if key[:1].isdigit() and (not is_count(key) or str(int(key)) != key):
            table.problems.append(Problem(source, number, f"expected an IRQ number, got {describe(key)}; row skipped"))
            continue
        fast = None if key in SINGLE_VALUE_ROWS else _fast_row(key, number, line, body, tokens, ncpu, zero_row, learned)
        row = fast or _slow_row(key, number, line[body:], ncpu, table, source)
        if row is None:
            continue
        if key.isdigit():
            if _describe_numbered(row):
                ambiguous.append(row)
        elif oversized := _describe_named(row):
            table.problems.append(Problem(source, number, _oversized(key, oversized)))
            continue
        rows[key] = row
    _settle_ambiguous(ambiguous, rows)
    table.settled = frozenset(row.key for row in ambiguous)
    return table


def _measured(lines, starts: list[int]):
    """The lines, the offset after each appended to `starts`."""
    end = 0
    for line in lines:
        end += len(line)
        starts.append(end)
        yield line


def _reusable(previous: InterruptTable | None, header: bytes, start: int | None) -> dict[int, InterruptRow]:
    """Line number -> the previous parse's row there, when that parse kept its lines and read the same header at
    the same line; rows settled against the whole file (`_settle_ambiguous`) are parsed again (the chips may have
    changed)."""
    if previous is None or start is None or not previous.same_line(start, header):
        return {}
    return {row.line: row for row in previous.rows.values() if row.key not in previous.settled}


def parse_rows(data: bytes, keys: frozenset[str], source: str = "/proc/interrupts") -> InterruptTable:
    """The header and only the rows named in `keys` (a few IRQs of the managed devices), parsed as
    `parse_interrupts` does: the cheap read between the agent's passes. Lines are found, not split: on a
    1152-CPU host each is 13 kB and only a few are wanted."""
    wanted = {key.encode() for key in keys}
    kept, pos, size = [], 0, len(data)
    while pos < size:
        end = data.find(b"\n", pos)
        end = size if end < 0 else end + 1
        if not kept:
            if data[pos:end].strip():
                kept.append(data[pos:end])  # the header: the first line that is not blank
        else:
            colon = data.find(b":", pos, min(end, pos + _KEY_WIDTH))
            if colon > 0 and data[pos:colon].strip() in wanted:
                kept.append(data[pos:end])
        pos = end
    return parse_interrupts(b"".join(kept), source)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _zero_row(line: bytes, number: int, zero: bytes, zero_row: tuple[int, ...]) -> InterruptRow | None:
    """A row whose counts are byte for byte those of an all-zero row seen before (`zero`: from its colon to its
    description, ending in blanks), without splitting its thousand tokens: most rows of a large host. None: not
    such a row (the general path decides)."""
    colon = line.find(b":", 0, _KEY_WIDTH)
    if colon <= 0 or not line.startswith(zero, colon + 1):
        return None
    name = line[:colon].strip()
    if not name or len(name.split()) != 1:
        return None
    tail = line[colon + 1 + len(zero) :].strip()
    return InterruptRow(_text(name), number, zero_row, 0, _text(tail)) if tail else None


def _fast_row(
    key: str, number: int, line: bytes, body: int, tokens: list[bytes], ncpu: int, zero_row: tuple[int, ...],
    learned: dict[str, bytes] | None = None,
) -> InterruptRow | None:  # fmt: skip
    """The common case: at least `ncpu` counts after the name. None sends the row to `_slow_row`.

    `tokens` is [name, count..., tail]. Large hosts print mostly zeros, so tokens equal
    to "0" are counted in C and only the few others are located and converted. The first all-zero row with a
    description teaches `learned["zero"]`, how this file prints such a row (`_zero_row`).
    """
    if len(tokens) < ncpu + 1:
        return None
    raw_tail = tokens.pop() if len(tokens) > ncpu + 1 else b""
    tail = _text(raw_tail.rstrip())
    nonzero = ncpu - tokens.count(b"0")  # tokens[0] is the name ("41:"), never "0"
    if nonzero == 0:
        if learned is not None and "zero" not in learned and raw_tail.strip():
            learned["zero"] = line[body : len(line) - len(raw_tail)]  # ends in the blanks before the description
        return InterruptRow(key, number, zero_row, 0, tail)
    if nonzero > _DENSE:
        counts_raw = tokens[1:]
        if not b"".join(counts_raw).isdigit() or max(map(len, counts_raw)) > COUNT_DIGITS:
            return None
        counts = tuple(map(int, counts_raw))
        if max(counts) > MAX_COUNT:
            return None
        return InterruptRow(key, number, counts, sum(counts), tail)
    found = _sparse_counts(line, body, len(line) - len(raw_tail), tokens, nonzero)
    return InterruptRow(key, number, found[0], found[1], tail) if found else None


def _sparse_counts(
    line: bytes, body: int, end: int, tokens: list[bytes], nonzero: int
) -> tuple[tuple[int, ...], int] | None:
    """Counts of a row with few non-zero tokens; None if any token is not a plain count."""
    counts = [0] * (len(tokens) - 1)
    total = zero_chars = 0
    index, pos = 1, body
    for _ in range(nonzero):
        remainder = line[pos:end]
        stripped = remainder.lstrip(_BLANK_OR_ZERO)
        start = pos + len(remainder) - len(stripped)
        index += line.count(b"0", pos, start)  # each skipped zero token is one "0"
        if index >= len(tokens):
            return None
        token = tokens[index]
        if not (is_count(token) and stripped.startswith(token)):
            return None
        counts[index - 1] = value = int(token)
        total += value
        zero_chars += token.count(b"0")
        index += 1
        pos = start + len(token)
    # every other token must be exactly "0": junk such as "00" or "x" leaves extra characters
    if line.count(b"0", body, end) != len(counts) - nonzero + zero_chars:
        return None
    return tuple(counts), total


def _slow_row(key: str, number: int, rest: bytes, ncpu: int, table: InterruptTable, source: str) -> InterruptRow | None:
    """Rows with fewer counts than CPUs: single-value (ERR), none (FIQ), or malformed."""
    tokens = rest.split()
    found = 0
    while found < len(tokens) and is_count(tokens[found]):
        found += 1
    if found < len(tokens) and too_big(tokens[found]):
        table.problems.append(Problem(source, number, _oversized(key, tokens[found])))
        return None
    tail_parts = rest.split(None, found)
    tail = _text(tail_parts[found].rstrip()) if len(tail_parts) > found else ""
    numbered = key.isdigit()
    if found >= ncpu and key not in SINGLE_VALUE_ROWS:  # plain counts the fast path did not take ("007")
        counts = tuple(int(t) for t in tokens[:ncpu])
        return InterruptRow(key, number, counts, sum(counts), _text(rest.split(None, ncpu)[-1].rstrip()))
    if found == 0 and not numbered:
        return InterruptRow(key, number, None, None, tail)  # FIQ: a name and no counts
    if found == 1 and (key in SINGLE_VALUE_ROWS or (not numbered and not tail)):
        return InterruptRow(key, number, None, int(tokens[0]), tail)
    if found == ncpu and key in SINGLE_VALUE_ROWS:  # never printed per CPU: not this kernel's format
        found = 1
    detail = f" before {describe(tokens[found])}" if found < len(tokens) else ""
    what = f"row {describe(key)}: expected {ncpu} per-CPU counts, found {found}{detail}; row skipped"
    table.problems.append(Problem(source, number, what))
    return None


def _oversized(key: str, token: str | bytes) -> str:
    return f"row {describe(key)}: {describe(token)} is beyond a 64-bit counter (2**64-1); row skipped"


def _describe_named(row: InterruptRow) -> str | None:
    """Named rows: peel counts for CPUs beyond the header off the description. Returns the first token
    after them when it is a number too big for a counter: the row is then bad input, not a description."""
    text = row.description
    if text[:1].isdigit():
        tokens = text.split()
        extra = 0
        while extra < len(tokens) and is_count(tokens[extra]):
            extra += 1
        if extra < len(tokens) and too_big(tokens[extra]):
            return tokens[extra]
        row.extra_counts = tuple(int(t) for t in tokens[:extra])
        rest = text.split(None, extra)
        row.description = rest[extra] if len(rest) > extra else ""
    return None


def _describe_numbered(row: InterruptRow) -> bool:
    """Split a numbered row's tail into chip, hwirq, trigger, flow and actions.

    Returns True when the tail is one lone token that is either a chip with no action
    (`ARMCTRL`) or an action on a kernel that prints no chip (`4020KEY`): decided later
    from the chips seen in the whole file.
    """
    tail = row.description
    parts = tail.split(None, 2)
    hw = _HWIRQ.match(parts[1]) if len(parts) > 1 else None
    if hw:  # the common shape: "IR-PCI-MSI 524288-edge  nvme0q1", "GICv3  27 Level  arch_timer"
        row.chip, row.hwirq, row.flow = parts[0], hw.group(1), hw.group(2) or ""
        _describe_rest(row, parts[2] if len(parts) > 2 else "")
        return False
    tokens = list(_TOKEN.finditer(tail))
    if not tokens:
        return False
    first = tokens[0].group()
    pos = 0
    if len(tokens) > 2 and tail[tokens[0].end() : tokens[1].start()] == " ":
        hw = _HWIRQ.match(tokens[2].group())  # a chip name with one space: "PCIe MSI 526336 Edge"
    if hw:
        row.chip = tail[: tokens[1].end()]
        row.hwirq, row.flow = hw.group(1), hw.group(2) or ""
        pos = 3
    elif "-" in first and first.rsplit("-", 1)[1] in _FLOWS and first.rsplit("-", 1)[0]:
        row.chip, row.flow = first.rsplit("-", 1)  # old kernels: "IR-IO-APIC-edge"
        pos = 1
    elif len(tokens) > 1 and (tokens[1].group() in _TRIGGERS or _is_flow_token(tokens[1].group())):
        row.chip, pos = first, 1  # Xen: "xen-dyn  Edge  -event"
    elif len(tokens) > 1 and len(tail[tokens[0].end() : tokens[1].start()]) >= 2:
        row.chip, pos = first, 1  # chip, two spaces, action ("ARMCTRL  mmc0", "-  timer")
    elif len(tokens) == 1:
        return True
    _describe_rest(row, tail[tokens[pos].start() :] if pos < len(tokens) else "")
    return False


def _describe_rest(row: InterruptRow, rest: str) -> None:
    """After chip and hwirq: optional trigger (ARM "Level"/"Edge"), optional "-flow", then actions."""
    words = rest.split(None, 1)
    if words and words[0] in _TRIGGERS:
        row.trigger = words[0]
        rest = words[1] if len(words) > 1 else ""
        words = rest.split(None, 1)
    if words and not row.flow and _is_flow_token(words[0]):
        row.flow = words[0][1:]
        rest = words[1] if len(words) > 1 else ""
    row.actions = _split_actions(rest)


def _is_flow_token(token: str) -> bool:
    return len(token) > 1 and token[0] == "-" and token[1].isalpha()


def _split_actions(text: str) -> tuple[str, ...]:
    if "," not in text:
        name = text.strip()
        return (name,) if name else ()
    return tuple(name for name in (part.strip() for part in text.split(",")) if name)


def _settle_ambiguous(ambiguous: list[InterruptRow], rows: dict[str, InterruptRow]) -> None:
    chips = {row.chip for row in rows.values() if row.chip}
    for row in ambiguous:
        if row.description in chips:
            row.chip = row.description
        else:
            row.actions = (row.description,)
