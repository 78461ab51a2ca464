"""Shared pieces of the parsers: problems found in input, CPU lists and masks."""

from __future__ import annotations

from dataclasses import dataclass

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


MAX_CPU_ID = 1 << 16  # far above CONFIG_NR_CPUS; bigger ids are typos, not hosts


def parse_cpulist(text: str, last: int | None = None) -> list[int]:
    """Kernel cpulist (`0-3,8,10-15:2/4`, empty for none) -> sorted CPU ids.

    `last` is the highest CPU id, for the command line's `N` (last CPU) and `all`.
    """
    cpus: set[int] = set()
    text = text.strip()
    if not text or text == "(null)":
        return []
    if last is not None:
        if text == "all":
            return list(range(last + 1))
        text = ",".join("-".join(str(last) if n == "N" else n for n in p.split("-")) for p in text.split(","))
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        rng, _, group = part.partition(":")
        lo_s, dash, hi_s = rng.partition("-")
        numbers = [lo_s, *([hi_s] if dash else []), *group.replace("/", " ").split()]
        if not all(map(is_count, numbers)) or (group and group.count("/") != 1):
            raise CpuListError(f"expected a CPU list such as 0-3,8, got {text!r}")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if dash else lo
            used, size = (int(x) for x in group.split("/")) if group else (1, 1)
        except ValueError:
            raise CpuListError(f"expected a CPU list such as 0-3,8, got {text!r}") from None
        if lo < 0 or hi < lo or used < 1 or size < used:
            raise CpuListError(f"expected a CPU list such as 0-3,8, got {text!r}")
        if hi >= MAX_CPU_ID:
            raise CpuListError(f"CPU {hi} in {text!r} is beyond any real host (max {MAX_CPU_ID - 1})")
        for start in range(lo, hi + 1, size):
            cpus.update(c for c in range(start, min(start + used, hi + 1)))
    return sorted(cpus)


def parse_cpumask(text: str) -> list[int]:
    """Hex CPU mask as in smp_affinity (`ff,ffffffff`) -> sorted CPU ids."""
    digits = text.strip().replace(",", "")
    if not digits:
        return []
    if not is_hex(digits):
        raise CpuListError(f"expected a hex CPU mask such as ff,00000001, got {text!r}")
    try:
        value = int(digits, 16)
    except ValueError:
        raise CpuListError(f"expected a hex CPU mask such as ff,00000001, got {text!r}") from None
    return [bit for bit in range(value.bit_length()) if value >> bit & 1]


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


def is_count(token: str) -> bool:
    """A kernel %u counter: ASCII digits only (no sign, no underscores)."""
    return token.isdigit() and token.isascii()


_HEX = frozenset("0123456789abcdefABCDEF")


def is_hex(token: str) -> bool:
    """A kernel %x value: ASCII hex digits only (int(x, 16) would also take "0x", "_" and signs)."""
    return bool(token) and _HEX.issuperset(token)


def printable(text: str) -> str:
    """A string from the kernel or a process (device, action, comm names) made safe for a terminal: every
    non-printable character (escape sequences, newlines, bidi controls) shown as a Python escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
