"""Aligned text tables and optional colour: the one way irqtune lays text out for people (status, probe, top,
simulate). Cells are escaped (kernel strings are untrusted)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .parse.common import printable


class Style:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    @classmethod
    def auto(cls, choice: str = "auto", stream=None) -> Style:
        if choice == "always":
            return cls(True)
        if choice == "never" or os.environ.get("NO_COLOR"):
            return cls(False)
        return cls(bool(getattr(stream or sys.stdout, "isatty", lambda: False)()))

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour and code else text

    def heading(self, text: str) -> str:
        return self.paint(text, "1")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Left-aligned text columns, numbers right-aligned; two spaces between columns."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [_is_numeric_column([row[i] for row in rows]) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    return [line(headers)] + [line(r) for r in cells]


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 1e6 else f"{value:,.0f}"
    return printable(str(value))


def _is_numeric_column(values: list[object]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
