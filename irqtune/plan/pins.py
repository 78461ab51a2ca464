"""Static pins: knob ids (a glob in the device part allowed) held at a fixed value (pure, no I/O).

The config's [pin] table names knobs the operator sets once and for all (`"net/eth*/coalesce/rx-usecs" = 8`):
the agent writes them through the journal, never moves them itself, and reports when something else does. A glob
is checked here against a stand-in device name, so a pin for a NIC that is not there yet is still validated.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from .knob_id import NETDEV_FILES, SYSCTLS, KnobError, KnobId, parse_knob_id

_GLOB = re.compile(r"[A-Za-z0-9_.:@*?\[\]!-]{1,64}\Z")  # a device name or an fnmatch pattern over one
_STAND_IN = "pindev0"  # a valid device name put in place of a glob to check the rest of the id
COALESCE_MAX = (1 << 32) - 1
CHANNELS_MAX = 1 << 16


@dataclass(frozen=True)
class Pin:
    """One [pin] entry: its id (the device part may be a glob), the value as irqtune writes it."""

    pattern: str  # canonical, the glob kept as written
    kind: str
    value: str
    glob: bool = False

    def knobs(self, devices: list[str]) -> list[str]:
        """The knob ids this pin stands for on a host with these network devices (a glob: every match)."""
        if not self.glob:
            return [self.pattern]
        head, _, rest = self.pattern.partition("/")
        wanted, _, tail = rest.partition("/")
        return [f"{head}/{dev}/{tail}" for dev in devices if fnmatch.fnmatchcase(dev, wanted)]


def parse_pin(knob: str, value: object) -> Pin:
    """Raises KnobError (one line) for an unknown id, a value of the wrong type or one out of the knob's range."""
    parsed, glob = _parse_id(knob)
    return Pin(parsed.canonical.replace(f"/{_STAND_IN}/", f"/{glob}/", 1) if glob else parsed.canonical,
               parsed.kind, _value(parsed, value), glob=bool(glob))  # fmt: skip


def _parse_id(knob: str) -> tuple[KnobId, str]:
    """The parsed id, and the glob of its device part ("" when it names one device)."""
    parts = knob.split("/")
    if len(parts) >= 3 and parts[0] in ("net", "napi") and any(c in parts[1] for c in "*?["):
        if not _GLOB.match(parts[1]):
            raise KnobError(f"{knob}: {parts[1]!r} is not a device name or a glob over device names")
        try:
            return parse_knob_id("/".join([parts[0], _STAND_IN, *parts[2:]])), parts[1]
        except KnobError as err:  # named as written, not with the stand-in
            raise KnobError(str(err).replace(_STAND_IN, parts[1])) from None
    return parse_knob_id(knob), ""


def _value(knob: KnobId, value: object) -> str:
    """The value as a canonical string: a CPU list (a string) for the masks, a whole number for the rest."""
    if knob.cpulist:
        if not isinstance(value, str):
            raise KnobError(f'expected a CPU list as a string ("0-3"), got {value!r}')
        return value
    if isinstance(value, bool) and (knob.name == "threaded" or knob.name.startswith("use_")):
        return str(int(value))
    if not isinstance(value, int) or isinstance(value, bool):
        raise KnobError(f"expected a whole number, got {value!r}")
    low, high = _range(knob)
    if not low <= value <= high:
        raise KnobError(f"{value} is outside {low}..{high}")
    return str(value)


def _range(knob: KnobId) -> tuple[int, int]:
    """What the knob takes, as the write path checks it (act/knobs.py)."""
    if knob.kind == "sysctl":
        return SYSCTLS[knob.name]
    if knob.kind == "netdev":
        return NETDEV_FILES[knob.name][1:]
    if knob.kind == "coalesce":
        return (0, 1) if knob.name.startswith("use_") else (0, COALESCE_MAX)
    if knob.kind == "channels":
        return 0, CHANNELS_MAX
    if knob.kind == "napi" and knob.name == "threaded":
        return 0, 1
    return 0, (1 << 63) - 1
