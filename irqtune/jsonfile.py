"""JSON that irqtune reads back (the journal, a saved plan, the simulated tree's state): errors as `FILE:LINE: what`.

json.loads raises JSONDecodeError with a position, but a plain ValueError for an integer of thousands of
digits (Python's int() limit) and RecursionError for arrays nested thousands deep, and it takes NaN,
Infinity and 1e400 (a float overflowing to infinity) as numbers. Each becomes a JsonError on its line.
"""

from __future__ import annotations

import json
import math
import re

from .parse.common import nesting_line


class JsonError(ValueError):
    """A JSON text that cannot be used; the message is `FILE:LINE: what` (`where` and `what` apart)."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where, self.what = where, what


_HUGE_NUMBER = re.compile(r"[0-9]{4000,}")


def loads(path: str, text: str) -> object:
    """The document in `text` (read from `path`), every number finite; anything else raises JsonError."""
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as err:
        raise JsonError(f"{path}:{err.lineno}:{err.colno}", err.msg) from None
    except _NotFinite as err:
        where = _line_at(text, text.find(err.literal))
        raise JsonError(f"{path}:{where}", f"{err.literal} is not a finite number") from None
    except RecursionError:
        raise JsonError(f"{path}:{nesting_line(text)}", "arrays or objects nested too deeply") from None
    except ValueError:  # int() refused a number of thousands of digits
        found = _HUGE_NUMBER.search(text)
        raise JsonError(
            f"{path}:{_line_at(text, found.start() if found else -1)}", "a number of thousands of digits"
        ) from None


def key_line(text: str, *keys: str) -> int:
    """The line of `"keys[0]":`, then of `"keys[1]":` after it, and so on: where a value of a document written
    with one key a line (json.dump with indent) is; the deepest key found (1 when none is)."""
    position = -1
    for key in keys:
        found = _find_key(text, json.dumps(key), max(position, 0))
        if found < 0:
            break
        position = found
    return _line_at(text, position)


def is_number(value: object) -> bool:
    """An int or float, not a bool, that a float holds: a time, a rate."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer of hundreds of digits
        return False


class _NotFinite(ValueError):
    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _no_constant(literal: str) -> float:
    raise _NotFinite(literal)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NotFinite(literal)
    return value


def _find_key(text: str, quoted: str, start: int) -> int:
    """Where `quoted` (a JSON string) next stands as a key, followed by a colon; -1 if nowhere. Searched, not
    matched: a regex of a 2 MB key takes seconds to compile."""
    position = text.find(quoted, start)
    while position >= 0:
        after = position + len(quoted)
        while after < len(text) and text[after] in " \t\r\n":
            after += 1
        if text[after : after + 1] == ":":
            return position
        position = text.find(quoted, position + 1)
    return -1


def _line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1 if position >= 0 else 1
