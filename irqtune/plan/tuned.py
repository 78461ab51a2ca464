"""TuneD profiles as irqtune config: what carries over becomes [pin] and [cpus] critical, the rest is named.

TuneD applies a profile once (`[sysctl]`, `[net]` ethtool options, isolated cores); irqtune's [pin] does the same
through its journal, so `irqtune restore` undoes it. Carried over: `[sysctl]` net.core.* keys that irqtune has as
knobs (plan/knob_id.py SYSCTLS), `[net]` coalesce=, channels= and ring= (ethtool -C / -L / -G option strings,
the devices= glob kept), `[scheduler]` and `[variables]` isolated_cores (cpu-partitioning) as [cpus] critical.
Every other key is a leftover, named FILE:LINE with its section: irqtune says what it did not take, never drops
it silently.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..fileio import read_text
from ..parse.common import CpuListError, format_cpulist, parse_cpulist
from .knob_id import SYSCTLS, KnobError
from .pins import parse_pin

PROFILE_DIRS = ("etc/tuned", "usr/lib/tuned")  # TuneD's order: /etc overrides /usr/lib
MAX_INCLUDES = 8  # include= depth: TuneD's own profiles nest three deep (cpu-partitioning)
_SECTION = re.compile(r"\s*\[([^\]]+)\]\s*\Z")
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_SILENT = {("main", "summary"), ("main", "include")}  # text, and what was followed: not leftovers
# TuneD's net plugin splits option strings at any of these (plugin_net.py _parse_config_parameters)
_SPLIT = re.compile(r"(:\s*)|(\s+)|(\s*;\s*)|(\s*,\s*)")
_ETHTOOL_FLAGS = {"coalesce": ("-C", "--coalesce"), "channels": ("-L", "--set-channels"), "ring": ("-G", "--set-ring")}
_KNOB_KIND = {"coalesce": "coalesce", "channels": "channels", "ring": "rings"}  # [net] key -> knob id part
_ON_OFF = {"on": 1, "off": 0}


class TunedError(ValueError):
    """A profile that cannot be read (missing, unreadable, an include loop)."""


@dataclass(frozen=True)
class Entry:
    section: str
    key: str
    value: str
    where: str  # FILE:LINE


@dataclass
class Imported:
    """The profile's carried-over pins and critical CPUs, and every key it could not carry over."""

    profile: str
    pins: dict[str, int] = field(default_factory=dict)  # knob id (device globs kept) -> value
    critical: str = ""
    leftovers: list[tuple[Entry, str]] = field(default_factory=list)  # (the key, why not)

    def toml(self) -> str:
        """A config irqtune's loader takes: observe mode, so nothing is written before the operator looks."""
        lines = [f"# irqtune config imported from the TuneD profile {self.profile} (irqtune import-tuned)",
                 '# observe mode reports what the pins would change; set mode = "tune" to apply them', "",
                 'mode = "observe"']  # fmt: skip
        if self.critical:
            lines += ["", "[cpus]", f'critical = "{self.critical}"  # isolated_cores']
        if self.pins:
            lines += ["", "[pin]", *(f'"{knob}" = {value}' for knob, value in self.pins.items())]
        return "\n".join(lines) + "\n"

    def leftover_lines(self) -> list[str]:
        return [f"{e.where}: [{e.section}] {e.key} = {e.value}: {why}" for e, why in self.leftovers]

    def to_json(self) -> dict:
        return {"profile": self.profile, "config": self.toml(), "pins": self.pins, "critical": self.critical,
                "leftovers": [{"where": e.where, "section": e.section, "key": e.key, "value": e.value, "why": why}
                              for e, why in self.leftovers]}  # fmt: skip


def find_profile(name: str, root: str) -> str:
    """A path to a tuned.conf as given, else the profile of that name below root (/etc/tuned, /usr/lib/tuned)."""
    if os.sep in name or name.endswith(".conf"):
        return name
    for base in PROFILE_DIRS:
        path = os.path.join(root, base, name, "tuned.conf")
        if os.path.isfile(path):
            return path
    raise TunedError(f"no TuneD profile {name!r} in {', '.join(os.path.join(root, b) for b in PROFILE_DIRS)}")


def import_profile(name: str, root: str = "/") -> Imported:
    """The profile, its includes applied first (a key the profile sets again overrides the included one)."""
    entries = _load(find_profile(name, root), root, ())
    return convert(name, entries)


def _load(path: str, root: str, seen: tuple[str, ...]) -> dict[tuple[str, str], Entry]:
    """Section/key -> entry, the includes' first, then this file's over them."""
    if len(seen) >= MAX_INCLUDES or os.path.realpath(path) in seen:
        raise TunedError(f"{path}: include loop or deeper than {MAX_INCLUDES}: {' -> '.join(seen)}")
    try:
        text = read_text(path, "config")
    except (OSError, UnicodeDecodeError) as err:
        raise TunedError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    own = parse_conf(text, path)
    merged: dict[tuple[str, str], Entry] = {}
    include = own.get(("main", "include"))
    for name in _SPLIT.sub(" ", include.value).split() if include else ():
        merged.update(_load(find_profile(name, root), root, (*seen, os.path.realpath(path))))
    merged.update(own)
    return merged


def parse_conf(text: str, path: str) -> dict[tuple[str, str], Entry]:
    """TuneD's INI form: [section], key=value (spaces around = allowed), # comments."""
    out: dict[tuple[str, str], Entry] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        header = _SECTION.match(line)
        if header:
            section = header.group(1).strip()
            continue
        key, eq, value = stripped.partition("=")
        if eq:
            out[(section, key.strip())] = Entry(section, key.strip(), value.strip(), f"{path}:{number}")
    return out


def convert(profile: str, entries: dict[tuple[str, str], Entry]) -> Imported:
    """Each key carried over or named as a leftover, in file order."""
    result = Imported(profile)
    variables = {k: e.value for (s, k), e in entries.items() if s == "variables"}
    for (section, key), entry in entries.items():
        if (section, key) in _SILENT:
            continue
        value = _substitute(entry.value, variables)
        why = _carry(result, section, key, value, entries)
        if why:
            result.leftovers.append((entry, why))
    return result


def _substitute(value: str, variables: dict[str, str], depth: int = 4) -> str:
    """${name} from [variables], as TuneD expands it; a function (${f:...}) stays as written (unresolved)."""
    for _ in range(depth):
        value = _VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), value)
    return value


def _carry(result: Imported, section: str, key: str, value: str, entries: dict) -> str | None:
    """Carry one key over into `result`; else why not."""
    if section == "sysctl":
        return _sysctl(result, key, value)
    if section == "net" and key in _ETHTOOL_FLAGS:
        devices = entries.get(("net", "devices"))
        return _ethtool(result, key, value, devices.value if devices else "*")
    if section == "net" and key == "devices":
        return None if any(("net", k) in entries for k in _ETHTOOL_FLAGS) else "no coalesce=, channels= or ring="
    if key == "isolated_cores" and section in ("scheduler", "variables", "bootloader"):
        return _isolated(result, value)
    return f"irqtune has no equivalent of TuneD's [{section}] {key}"


def _sysctl(result: Imported, key: str, value: str) -> str | None:
    key = key.replace("/", ".")  # TuneD takes net/core/busy_read too
    if not key.startswith("net.core.") or key[len("net.core.") :] not in SYSCTLS:
        return f"not a sysctl irqtune sets (it has net.core.{{{','.join(SYSCTLS)}}})"
    if value.startswith(">"):
        return "'>' (raise only, never lower) has no [pin] form: pin the value by hand if it is meant"
    try:
        pin = parse_pin(f"sysctl/{key}", int(value))
    except (ValueError, KnobError) as err:
        return f"value not carried over: {err}"
    result.pins[pin.pattern] = int(pin.value)
    return None


def _ethtool(result: Imported, key: str, value: str, devices: str) -> str | None:
    """`-C id rx-usecs 8 adaptive-rx off` (or without the -C id) -> a pin per field and device glob."""
    tokens = _SPLIT.sub(" ", value).split()
    if tokens and tokens[0] in _ETHTOOL_FLAGS[key]:
        tokens = tokens[2:]  # the flag and the device it names (TuneD writes `id`: the [net] devices)
    if not tokens or len(tokens) % 2:
        return f"expected NAME VALUE pairs, got {value!r}"
    globs = [g for g in _SPLIT.sub(" ", devices).split() if g] or ["*"]
    refused = []
    for name, text in zip(tokens[::2], tokens[1::2], strict=True):
        why = _ethtool_pin(result, key, name, text, globs)
        if why:
            refused.append(f"{name} {text}: {why}")
    return "; ".join(refused) or None


def _ethtool_pin(result: Imported, key: str, name: str, text: str, globs: list[str]) -> str | None:
    number = _ON_OFF.get(text.lower())
    if number is None:
        if not text.isdigit():
            return "not a number (unresolved ${...}?)"
        number = int(text)
    try:
        pins = [parse_pin(f"net/{glob}/{_KNOB_KIND[key]}/{name}", number) for glob in globs]
    except KnobError as err:
        return str(err)
    for pin in pins:
        result.pins[pin.pattern] = int(pin.value)
    return None


def _isolated(result: Imported, value: str) -> str | None:
    try:
        cpus = parse_cpulist(value)
    except CpuListError:
        return "not a CPU list here (a TuneD variable or function): set [cpus] critical by hand"
    if cpus:
        result.critical = format_cpulist(sorted({*parse_cpulist(result.critical), *cpus}))
    return None
