"""Shared pieces of the parsers: problems found in input, CPU lists and masks."""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass
from itertools import compress

U32 = 1 << 32


@dataclass(frozen=True, slots=True)
class Problem:
    """One piece of bad input: which file, which line (1-based, 0 = whole file), what was expected."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line, "message": self.message}


class CpuListError(ValueError):
    """A CPU list or mask that is not in the kernel's format."""


NR_CPUS_MAX = 8192  # the largest CONFIG_NR_CPUS any architecture allows (x86 MAXSMP, powerpc)
MAX_CPU_ID = NR_CPUS_MAX  # CPU ids are below it: a list or mask naming a higher one is not from a kernel


def parse_cpulist(text: str, last: int | None = None) -> list[int]:
    """Kernel cpulist (`0-3,8,10-15:2/4`, empty for none) -> sorted CPU ids.

    `last` is the highest CPU id, for the command line's `N` (last CPU) and `all`.
    """
    text = text.strip()
    if not text or text == "(null)":
        return []
    if last is not None:
        if text == "all":
            return list(range(last + 1))
        text = ",".join("-".join(str(last) if n == "N" else n for n in p.split("-")) for p in text.split(","))
    parts = [_cpulist_part(part, text) for part in (p.strip() for p in text.split(",")) if part]
    if len(parts) == 1 and parts[0][2] >= parts[0][3]:  # one plain range or CPU: the common case
        return list(range(parts[0][0], parts[0][1] + 1))
    if not parts:
        return []
    marks = bytearray(max(hi for _, hi, _, _ in parts) + 1)
    for part in parts:
        _mark(marks, *part)
    return list(compress(range(len(marks)), marks))


def _mark(marks: bytearray, lo: int, hi: int, used: int, size: int) -> None:
    """Set the CPUs of one part with slice assignments: at most sqrt(hi - lo) steps in Python, so that
    `0-8191` repeated costs bytes copied in C, not 8,192 set insertions per part."""
    if used >= size:
        marks[lo : hi + 1] = b"\1" * (hi + 1 - lo)
    elif (hi - lo) // size < used:  # few groups: each one a contiguous run
        for start in range(lo, hi + 1, size):
            end = min(start + used, hi + 1)
            marks[start:end] = b"\1" * (end - start)
    else:  # few CPUs per group: each offset a strided slice
        for first in range(lo, lo + used):
            marks[first : hi + 1 : size] = b"\1" * len(range(first, hi + 1, size))


def _cpulist_part(part: str, text: str) -> tuple[int, int, int, int]:
    """One part of a cpulist (`3`, `0-7`, `0-15:2/4`) -> (first, last, used, group size)."""
    rng, _, group = part.partition(":")
    lo_s, dash, hi_s = rng.partition("-")
    numbers = [lo_s, *([hi_s] if dash else []), *group.replace("/", " ").split()]
    if not all(map(is_count, numbers)) or (group and group.count("/") != 1):
        raise CpuListError(f"expected a CPU list such as 0-3,8, got {describe(text)}")
    lo = int(lo_s)
    hi = int(hi_s) if dash else lo
    used, size = (int(x) for x in group.split("/")) if group else (1, 1)
    if hi < lo or used < 1 or size < used:
        raise CpuListError(f"expected a CPU list such as 0-3,8, got {describe(text)}")
    if hi >= MAX_CPU_ID:
        raise CpuListError(
            f"CPU {hi} in {describe(text)} is beyond any real host (CPU ids are below CONFIG_NR_CPUS, "
            f"at most {NR_CPUS_MAX:,})"
        )
    return lo, hi, used, size


def parse_cpumask(text: str) -> list[int]:
    """Hex CPU mask as in smp_affinity (`ff,ffffffff`) -> sorted CPU ids."""
    digits = text.strip().replace(",", "")
    if not digits:
        return []
    if not is_hex(digits):
        raise CpuListError(f"expected a hex CPU mask such as ff,00000001, got {describe(text.strip())}")
    significant = digits.lstrip("0")
    if len(significant) * 4 > MAX_CPU_ID:
        raise CpuListError(
            f"a CPU mask of {len(significant):,} hex digits is beyond any real host (at most "
            f"{NR_CPUS_MAX // 4:,}: CONFIG_NR_CPUS is at most {NR_CPUS_MAX:,})"
        )
    bits = bin(int(significant or "0", 16))[:1:-1]  # lowest bit first; no shifting of a big int per bit
    return [cpu for cpu, bit in enumerate(bits) if bit == "1"]


def format_cpulist(cpus: list[int] | set[int] | tuple[int, ...]) -> str:
    """Sorted CPU ids -> compact kernel cpulist (`0-3,8`)."""
    out: list[str] = []
    ordered = sorted(set(cpus))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


MAX_COUNT = (1 << 64) - 1  # kernel counters are at most 64-bit (%llu)
COUNT_DIGITS = len(str(MAX_COUNT))  # 20
_MAX_TEXT = str(MAX_COUNT)
_MAX_BYTES = _MAX_TEXT.encode()


def is_count(token: str | bytes) -> bool:
    """A kernel %u/%llu value: ASCII digits only (no sign, underscores or other scripts' digits), at most
    2**64-1, so that int() never meets the thousands of digits it refuses (or takes seconds over)."""
    size = len(token)
    if size > COUNT_DIGITS or not token.isdigit() or not token.isascii():
        return False
    return size < COUNT_DIGITS or token <= (_MAX_TEXT if isinstance(token, str) else _MAX_BYTES)


def parse_count(token: str | bytes) -> int | None:
    """`token` as an int when it is a kernel count (is_count), else None: the one way kernel text becomes
    a number."""
    return int(token) if is_count(token) else None


def parse_signed(token: str) -> int | None:
    """A kernel %d/%lld value such as numa_node's -1: an optional '-', then a count."""
    value = parse_count(token.removeprefix("-"))
    return None if value is None else -value if token.startswith("-") else value


def too_big(token: str | bytes) -> bool:
    """ASCII digits, but more than a 64-bit counter holds: worth its own message, not 'expected a count'."""
    return token.isdigit() and token.isascii() and not is_count(token)


def describe(token: str | bytes, limit: int = 40) -> str:
    """A token from kernel text for a problem message: quoted and cut short; an oversized number by its size."""
    if too_big(token):
        return f"a {len(token):,}-digit number"
    text = token.decode("utf-8", "replace") if isinstance(token, bytes) else token
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


_HEX = frozenset("0123456789abcdefABCDEF")


def is_hex(token: str) -> bool:
    """A kernel %x value: ASCII hex digits only (int(x, 16) would also take "0x", "_" and signs)."""
    return bool(token) and _HEX.issuperset(token)


def kernel_lines(text: str) -> list[str]:
    """The file's lines as the kernel ends them, at "\n" only: str.splitlines() also breaks at \f, \x1c,
    \x85 or U+2028 inside a line, and every FILE:LINE after one would then point at the wrong line."""
    return text.removesuffix("\n").split("\n") if text else []


def printable(text: str) -> str:
    """A string from the kernel or a process (device, action, comm names) made safe for a terminal: every
    non-printable character (escape sequences, newlines, bidi controls) shown as a Python escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


BRIEF = 80  # characters of a value quoted in a message


class _Brief(reprlib.Repr):
    """reprlib with a bounded depth and width, and a number too long for repr() shown by its size."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxstring, self.maxother, self.maxlong = 3, BRIEF, BRIEF, BRIEF
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = 6

    def repr_str(self, x: str, level: int) -> str:
        return repr(x[: self.maxstring]) + ("…" if len(x) > self.maxstring else "")

    def repr_int(self, x: int, level: int) -> str:
        try:
            return super().repr_int(x, level)
        except ValueError:  # more digits than int -> str allows
            return f"<a {x.bit_length():,}-bit number>"


_BRIEFER = _Brief()


def brief(value: object, limit: int = BRIEF) -> str:
    """A value quoted in a message (its repr): at most `limit` characters, an ellipsis where cut, three levels
    deep, so that a 2 MB string does not flood the terminal and a value nested 5,000 deep does not recurse."""
    text = _BRIEFER.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def brief_text(text: str, limit: int = BRIEF) -> str:
    """A name (a key, a file's table) in a message: printable, at most `limit` characters, an ellipsis where cut."""
    text = printable(text[: limit * 4])
    return text if len(text) <= limit else text[: limit - 1] + "…"


_NESTING = re.compile(r""""(?:[^"\\\n]|\\.)*"|'[^'\n]*'|#[^\n]*|[\[\]{}\n]""")


def nesting_line(text: str, depth: int = 100) -> int:
    """The line (1-based) where arrays, tables or objects first nest `depth` deep, for a parser's
    RecursionError; strings and comments skipped (TOML and JSON alike). 1 when nothing nests that deep."""
    line, level = 1, 0
    for match in _NESTING.finditer(text):
        token = match.group()
        if token == "\n":
            line += 1
        elif token in ("[", "{"):
            level += 1
            if level >= depth:
                return line
        elif token in ("]", "}"):
            level = max(0, level - 1)
    return 1
