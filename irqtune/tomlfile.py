"""TOML files with errors that name the file, the line and the key.

tomllib gives values, not positions; a `Locator` finds `key =` inside its table (nested
arrays of tables included), and `build` fills a dataclass from a table, refusing unknown
keys, wrong types, negative numbers, nan and infinity, integers beyond 64 bits and names
over 64 characters. Used by scenario files and the agent's config.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import fields

from .fileio import read_text
from .parse.common import brief, brief_text, nesting_line


class TomlError(ValueError):
    """A file that cannot be used; the message is `FILE:LINE: key: what is wrong`."""


Where = tuple[tuple[str, int | None], ...]  # the tables down to a value: (("phase", 2), ("load", 0))


class Locator:
    """Line numbers for keys: tomllib gives values only, so find `key =` inside its table."""

    def __init__(self, path: str, text: str, error: type[TomlError] = TomlError) -> None:
        self.path, self.lines, self.error_type = path, text.split("\n"), error  # TOML ends lines at \n only
        self._headers: dict[tuple[int, int, str, bool], list[int]] = {}  # each table's headers, found once
        self._ends: dict[tuple[int, str], int] = {}

    @staticmethod
    def _is_header(line: str, parts: list[str], array: bool) -> bool:
        """`[a.b]` (`[[a.b]]` when `array`), spaces around the dots allowed. Compared, not matched: a regex
        made of a 2 MB name takes seconds to compile."""
        text = line.lstrip()
        opener = "[[" if array else "["
        if not text.startswith(opener) or (not array and text.startswith("[[")):
            return False
        inner, closed, _ = text[len(opener) :].partition("]")
        return bool(closed) and [_unquoted(part.strip()) for part in inner.split(".")] == parts

    @staticmethod
    def _is_key(line: str, key: str) -> bool:
        """`key =`, `"key" =`, `'key' =` or a dotted key under it (`key.sub =`)."""
        text = line.lstrip()
        for form in (key, f'"{key}"', f"'{key}'"):
            if text.startswith(form) and text[len(form) :].lstrip()[:1] in ("=", "."):
                return True
        return False

    def line(self, where: Where, key: str | None) -> int:
        start, end, dotted = 0, len(self.lines), ""
        for table, index in where:
            dotted = f"{dotted}.{table}" if dotted else table
            headers = self._headers_in(start, end, dotted, index is not None)
            found = headers[index or 0] if len(headers) > (index or 0) else None
            if found is None:  # no [header]: perhaps a key of that name (`cpus = 0`, an inline table)
                return self._key_line(start, end, table, top=dotted == table) or (start + 1 if start else 0)
            start, end = found, self._table_end(found, dotted)
        if key is None:
            return start + 1
        return self._key_line(start, end, key, top=not where) or start + 1

    def _key_line(self, start: int, end: int, key: str, top: bool) -> int | None:
        """The line of `key =` among a table's own keys (before any sub-table); None when it is not there."""
        for n in range(start if top else start + 1, end):  # top-level keys may be on the first line
            if re.match(r"^\s*\[", self.lines[n]):
                break  # the table's own keys come before any sub-table
            if self._is_key(self.lines[n], key):
                return n + 1
        return None

    def _headers_in(self, start: int, end: int, dotted: str, array: bool) -> list[int]:
        """The lines of the `[dotted]` (`[[dotted]]`) headers between start and end, scanned once per region: a
        config of 20,000 [[device]] tables with a problem each is located in one pass, not 20,000."""
        key = (start, end, dotted, array)
        if key not in self._headers:
            parts = dotted.split(".")
            self._headers[key] = [n for n in range(start, end) if self._is_header(self.lines[n], parts, array)]
        return self._headers[key]

    def _table_end(self, start: int, dotted: str) -> int:
        """Where a table's region ends: the next header that is not one of its sub-tables."""
        if (start, dotted) not in self._ends:
            after = (n for n in range(start + 1, len(self.lines)) if self._ends_table(n, dotted))
            self._ends[start, dotted] = next(after, len(self.lines))
        return self._ends[start, dotted]

    def _ends_table(self, n: int, dotted: str) -> bool:
        match = re.match(r"^\s*\[\[?\s*([^\]]+?)\s*\]", self.lines[n])
        return bool(match) and not re.sub(r"\s", "", match.group(1)).startswith(dotted + ".")

    def error(self, where: Where, key: str | None, message: str) -> TomlError:
        """The error to raise, of the caller's type, located at the key (or its table)."""
        name = ".".join(f"{t}[{i}]" if i is not None else t for t, i in where)
        name = brief_text((f"{name}.{key}" if name else key) if key is not None else name)
        if not name.strip() or name != name.strip():  # a blank or padded key, quoted so it shows
            name = f'"{name}"'
        return self.error_type(f"{self.path}:{self.line(where, key) or 1}: {name}: {message}")


MAX_INT = 2**63 - 1  # TOML integers are 64-bit; tomllib takes any size, and float() of 10**400 overflows
MAX_NAME = 64  # characters of a `name` (a device's, a phase's): longer is a mistake that floods every table


def build(cls, data: object, where: Where, loc: Locator, skip: tuple[str, ...] = ()):
    """A dataclass from a table: every key known, of its field's type, and within what any field takes."""
    if not isinstance(data, dict):
        raise loc.error(where, None, "expected a table")
    known = {f.name: f for f in fields(cls) if f.name not in skip}
    obj = cls()
    for key, value in data.items():
        if key not in known:
            raise loc.error(where, key, f"unknown key (expected one of: {', '.join(known)})")
        wanted = type(getattr(obj, key))
        problem = _value_problem(key, value, wanted)
        if problem:
            raise loc.error(where, key, problem)
        setattr(obj, key, float(value) if wanted is float else value)
    return obj


def _value_problem(key: str, value: object, wanted: type) -> str | None:
    """Why a value cannot go in a field of type `wanted` (None when it can): the same bounds for every key,
    so a key added to a scenario or the config is covered without code of its own."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = isinstance(value, wanted) or (wanted is float and number)
    if not ok or (wanted in (int, float) and not number):
        return f"expected {wanted.__name__}, got {brief(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value}"
    if isinstance(value, int) and number and abs(value) > MAX_INT:
        return f"expected a 64-bit integer, got one of {len(str(abs(value))):,} digits"
    if number and value < 0:
        return f"must not be negative, got {value}"
    if key == "name" and isinstance(value, str) and len(value) > MAX_NAME:
        return f"expected at most {MAX_NAME} characters, got {len(value):,}: {brief(value)}"
    return None


def read_toml(path: str, text: str | None, error: type[TomlError], kind: str) -> tuple[dict, Locator]:
    """The file's tables and a locator for its keys; an unreadable file or bad TOML raises `error`.
    `kind`: its fileio.LIMITS entry (only a regular file that size or smaller is read: a FIFO cannot hang)."""
    if text is None:
        try:
            text = read_text(path, kind)
        except OSError as err:
            raise error(f"{path}: cannot read: {err.strerror}") from None
        except UnicodeDecodeError:
            raise error(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise error(syntax_error(path, text, err)) from None
    except ValueError:  # int() refused a number of thousands of digits: tomllib lets that through
        raise error(f"{path}:{_line_of(text, _HUGE_NUMBER)}: a number with thousands of digits") from None
    except RecursionError:
        raise error(f"{path}:{nesting_line(text)}: arrays or inline tables nested too deeply") from None
    return data, Locator(path, text, error)


_AT = re.compile(r"\s*\(at (?:line ([0-9]+), column ([0-9]+)|end of document)\)\s*\Z")
_HUGE_NUMBER = re.compile(r"[0-9_]{4000,}")


def syntax_error(path: str, text: str, err: tomllib.TOMLDecodeError) -> str:
    """`FILE:LINE:COLUMN: what`, like a compiler, from tomllib's `what (at line 7, column 10)`: Python 3.14
    has lineno/colno attributes; 3.11 only the message, and `(at end of document)` for an unfinished file."""
    message = str(err)
    at = _AT.search(message)
    what = getattr(err, "msg", None) or (message[: at.start()] if at else message)
    line, column = getattr(err, "lineno", None), getattr(err, "colno", None)
    if (line is None or column is None) and at and at.group(1):
        line, column = int(at.group(1)), int(at.group(2))
    if line is None or column is None:  # at the end of the document, or a message without a place
        line, column = text.count("\n") + 1, len(text) - text.rfind("\n")
    return f"{path}:{line}:{column}: {brief_text(what, 160)}"  # tomllib quotes keys: a 2 MB one too


def _unquoted(name: str) -> str:
    """A table name as written, `"eth0"` or `'eth0'` as eth0."""
    return name[1:-1] if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'" else name


def _line_of(text: str, pattern: re.Pattern) -> int:
    """The line where `pattern` first matches (1 when it does not)."""
    found = pattern.search(text)
    return text.count("\n", 0, found.start()) + 1 if found else 1
