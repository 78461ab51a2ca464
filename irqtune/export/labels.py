"""Kernel strings as label values.

Action names, chip names, interface names and kernel symbols are untrusted: they
only ever become label VALUES (metric and label names are fixed in the code), and
prometheus_client escapes backslash, double quote and newline in values. On top of
that control characters become U+FFFD and values are cut to `MAX_LABEL` characters,
so a hostile or broken driver cannot bloat or garble the exposition.
"""

from __future__ import annotations

import re

MAX_LABEL = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def label(value: object) -> str:
    text = "" if value is None else str(value)
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "\u2026"
    return _CONTROL.sub("\ufffd", text)
