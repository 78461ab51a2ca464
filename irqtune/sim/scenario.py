"""Scenario files (TOML): the simulated host, its devices and the workload over time.

    [host]                       cpus = 8, nodes = ["0-3", "4-7"], isolated = "6-7", hz = 1000, kernel = "6.18"
    [[nic]]                      name, queues, node, flavour (timer-from-first | timer-restart),
                                 rx_usecs, rx_frames, usecs_quantum, irq_cost_us, service_us
    [[nvme]]                     name, queues, node, media (optane | nand)
    [[phase]]                    name, seconds, and per device: nic = "eth1", rate_pps = 200000 (all queues),
                                 arrivals = "poisson"

NVMe devices exist (queues, managed IRQs) but carry no I/O load yet; bursty arrivals and
ring overflows are not modelled yet either, so the keys for them are not accepted.

Every error names the file, the line and the key: an unknown key, a negative rate, a
queue or CPU that does not exist.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields

from ..parse.common import CpuListError, parse_cpulist

FLAVOURS = ("timer-from-first", "timer-restart")  # min-gap (Intel ITR) is not modelled yet
MEDIA = ("optane", "nand")
ARRIVALS = ("poisson",)  # bursty (MMPP) and closed-loop arrivals: not modelled yet


LIBRARY = os.path.join(os.path.dirname(__file__), "scenarios")


def library() -> dict[str, str]:
    """The scenarios shipped with irqtune: name -> path."""
    return {name[: -len(".toml")]: os.path.join(LIBRARY, name) for name in sorted(os.listdir(LIBRARY))
            if name.endswith(".toml")}  # fmt: skip


def resolve(name_or_path: str) -> str:
    """A scenario file path, or the name of one in the library."""
    if os.path.exists(name_or_path):
        return name_or_path
    shipped = library()
    if name_or_path in shipped:
        return shipped[name_or_path]
    raise ScenarioError(f"{name_or_path}: no such file, and not a library scenario ({', '.join(shipped)})")


class ScenarioError(ValueError):
    """A scenario that cannot be simulated; the message is `FILE:LINE: key: what is wrong`."""


@dataclass
class HostSpec:
    cpus: int = 4
    nodes: list[str] = field(default_factory=list)
    isolated: str = ""
    hz: int = 1000
    kernel: str = "6.18"


@dataclass
class NicSpec:
    name: str = ""
    queues: int = 1
    node: int = 0
    flavour: str = "timer-from-first"
    rx_usecs: int = 8
    rx_frames: int = 32
    usecs_quantum: int = 1
    irq_cost_us: float = 1.5
    service_us: float = 0.8


@dataclass
class NvmeSpec:
    name: str = ""
    queues: int = 1
    node: int = 0
    media: str = "nand"


@dataclass
class PhaseSpec:
    name: str = ""
    seconds: float = 10.0
    nic: str = ""
    rate_pps: float = 0.0
    arrivals: str = "poisson"


@dataclass
class Scenario:
    path: str
    host: HostSpec
    nics: list[NicSpec]
    nvmes: list[NvmeSpec]
    phases: list[PhaseSpec]

    @property
    def cpus(self) -> list[int]:
        return list(range(self.host.cpus))

    def node_cpus(self) -> dict[int, list[int]]:
        if not self.host.nodes:
            return {0: self.cpus}
        return {n: parse_cpulist(text) for n, text in enumerate(self.host.nodes)}


class _Locator:
    """Line numbers for keys: tomllib gives values only, so find `key =` inside its table."""

    def __init__(self, path: str, text: str) -> None:
        self.path, self.lines = path, text.splitlines()

    def line(self, table: str, index: int | None, key: str | None) -> int:
        header = re.compile(
            rf"^\s*\[\[\s*{re.escape(table)}\s*\]\]" if index is not None else rf"^\s*\[\s*{table}\s*\]"
        )
        seen, start = -1, None
        for n, text in enumerate(self.lines):
            if header.match(text):
                seen += 1
                if index is None or seen == index:
                    start = n
                    break
        if start is None:
            return 0
        if key is None:
            return start + 1
        for n in range(start + 1, len(self.lines)):
            if re.match(r"^\s*\[", self.lines[n]):
                break
            if re.match(rf"^\s*{re.escape(key)}\s*=", self.lines[n]):
                return n + 1
        return start + 1

    def error(self, table: str, index: int | None, key: str | None, message: str) -> ScenarioError:
        where = f"{table}[{index}]" if index is not None else table
        name = f"{where}.{key}" if key else where
        return ScenarioError(f"{self.path}:{self.line(table, index, key)}: {name}: {message}")


def _build(cls, data: object, table: str, index: int | None, loc: _Locator):
    if not isinstance(data, dict):
        raise loc.error(table, index, None, "expected a table")
    known = {f.name: f for f in fields(cls)}
    obj = cls()
    for key, value in data.items():
        if key not in known:
            raise loc.error(table, index, key, f"unknown key (expected one of: {', '.join(known)})")
        default = getattr(obj, key)
        wanted = type(default)
        ok = isinstance(value, wanted) or (wanted is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok or (wanted is int and isinstance(value, bool)):
            raise loc.error(table, index, key, f"expected {wanted.__name__}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise loc.error(table, index, key, f"must not be negative, got {value}")
        setattr(obj, key, float(value) if wanted is float else value)
    return obj


def load_scenario(path: str, text: str | None = None) -> Scenario:
    if text is None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            raise ScenarioError(f"{path}: cannot read: {err.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{path}: {err}") from None
    loc = _Locator(path, text)
    for key in data:
        if key not in ("host", "nic", "nvme", "phase"):
            raise ScenarioError(f"{path}:{loc.line(key, None, None) or loc.line(key, 0, None)}: {key}: unknown table "
                                "(expected host, nic, nvme, phase)")  # fmt: skip
    host = _build(HostSpec, data.get("host", {}), "host", None, loc)
    nics = [_build(NicSpec, d, "nic", i, loc) for i, d in enumerate(data.get("nic", []))]
    nvmes = [_build(NvmeSpec, d, "nvme", i, loc) for i, d in enumerate(data.get("nvme", []))]
    phases = [_build(PhaseSpec, d, "phase", i, loc) for i, d in enumerate(data.get("phase", []))]
    scenario = Scenario(path, host, nics, nvmes, phases)
    _check(scenario, loc)
    return scenario


def _check(sc: Scenario, loc: _Locator) -> None:
    if sc.host.cpus < 1 or sc.host.cpus > 4096:
        raise loc.error("host", None, "cpus", f"expected 1..4096 CPUs, got {sc.host.cpus}")
    try:
        nodes = sc.node_cpus()
        isolated = parse_cpulist(sc.host.isolated)
    except CpuListError as err:
        raise loc.error("host", None, "nodes" if "isolated" not in str(err) else "isolated", str(err)) from None
    for key, cpus in [("nodes", [c for cs in nodes.values() for c in cs]), ("isolated", isolated)]:
        missing = [c for c in cpus if c >= sc.host.cpus]
        if missing:
            raise loc.error("host", None, key, f"CPU {missing[0]} does not exist (host has {sc.host.cpus} CPUs)")
    names = set()
    for i, nic in enumerate(sc.nics):
        if not nic.name or nic.name in names:
            raise loc.error("nic", i, "name", f"expected a unique device name, got {nic.name!r}")
        names.add(nic.name)
        if nic.node not in nodes:
            raise loc.error("nic", i, "node", f"NUMA node {nic.node} does not exist")
        if nic.flavour not in FLAVOURS:
            raise loc.error("nic", i, "flavour", f"expected one of {', '.join(FLAVOURS)}")
        if not 1 <= nic.queues <= 1024:
            raise loc.error("nic", i, "queues", f"expected 1..1024 queues, got {nic.queues}")
    for i, nvme in enumerate(sc.nvmes):
        if not nvme.name or nvme.name in names:
            raise loc.error("nvme", i, "name", f"expected a unique device name, got {nvme.name!r}")
        names.add(nvme.name)
        if nvme.media not in MEDIA:
            raise loc.error("nvme", i, "media", f"expected one of {', '.join(MEDIA)}")
        if nvme.queues > sc.host.cpus:
            raise loc.error("nvme", i, "queues", f"{nvme.queues} queues: NVMe has at most one per CPU "
                            f"({sc.host.cpus})")  # fmt: skip
    if not sc.phases:
        raise loc.error("phase", 0, None, "expected at least one [[phase]]")
    nic_names = {n.name for n in sc.nics}
    for i, phase in enumerate(sc.phases):
        if phase.nic and phase.nic not in nic_names:
            raise loc.error("phase", i, "nic", f"no [[nic]] named {phase.nic!r}")
        if phase.arrivals not in ARRIVALS:
            raise loc.error("phase", i, "arrivals", f"expected one of {', '.join(ARRIVALS)}")
        if phase.seconds <= 0:
            raise loc.error("phase", i, "seconds", "a phase needs a positive duration")
