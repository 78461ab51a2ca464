"""Scenario files (TOML): the simulated host, its devices and the workload over time.

    [host]        cpus = 8, nodes = ["0-3", "4-7"], isolated = "6-7", hz = 1000, kernel = "6.18",
                  smt (threads per core: CPUs N, N + cpus/smt, ... are siblings; two busy siblings slow
                  each other's packets, sim/machine.py SMT_CONTENTION), irq_sink (CPU list: the agent's
                  config [cpus] irq_sink, where its storm guard sends a storming device), memory_mb (the
                  one zone's managed memory: the free-page reserve RX refill draws on, sim/memory.py)
    [[nic]]       name, queues, node, flavour (timer-from-first | timer-restart | min-gap),
                  rx_usecs, rx_frames, usecs_quantum, max_channels (the driver's channel maximum, as
                  `ethtool -l` shows it; 0 = queues: a NIC run on fewer channels than it has),
                  timer_scale (the device's real µs per rx-usecs unit, hidden from the driver),
                  adaptive_rx (bool), adaptive (dim | aim),
                  ring, ring_max (the driver's maximum, `ethtool -g`), napi (false: interrupt per
                  packet), cpus (initial IRQ affinity, queues round-robin), critical (the agent's
                  config keeps it on those CPUs with a latency goal), goal (the operator's: latency |
                  balanced | throughput | efficiency; the agent's config and the objective's price of
                  a core), p99_target_us (the operator's p99 latency
                  target, µs, in the agent's config; 0: none), irq_cost_us, service_us, packet_bytes,
                  driver (the driver name the tree reports, e.g. mlx5_core with flavour timer-restart for
                  CQE mode; "" = mlx5_core, or ice for min-gap; a name model/coalesce.py knows),
                  deferral (false: the operator forbids NAPI deferral on it: the agent's config bounds
                  napi-defer-hard-irqs to [0, 0], and the oracles leave deferral out)
    [[nvme]]      name, queues, node, media (optane | nand), cstate_us (exit latency of an idle CPU),
                  service_us (the device's mean service time per I/O, µs; 0: the media's), goal (the
                  operator's, as for a NIC: the objective's price of a core and the agent's config; "" =
                  balanced)
    [[phase]]     name, seconds; background: tlb_shootdowns (per s), tlb_cpus (the churning process's CPUs),
                  tlb_task (its name, as the tlb probe reports the sender),
                  resched_ipis (per s per CPU), ipi_cpus; alloc_burst_mb (applications' allocation bursts
                  below the low watermark, with [host] memory_mb: RX refill under memory pressure);
                  and one device's load inline (the keys of [[phase.load]], `nic =` or `nvme =` naming it)
    [[phase.load]] device; for a NIC: rate_pps (all queues), arrivals (poisson | bursty | closed-loop),
                  burst_pps, burst_ms, burst_every_ms (bursty: a two-state MMPP), clients, think_us
                  (closed-loop request/response: outstanding requests per queue and the client's
                  time between a response and its next request), app_busy_poll (an epoll app with
                  prefer_busy_poll); for an NVMe device: iodepth (outstanding per queue), iops (open loop)

Every error names the file, the line and the key: an unknown key, a negative rate, a
queue or CPU that does not exist, a device name the kernel would refuse (it becomes a path in the tree), a
value out of range (`RANGES`; every number finite, every name at most 64 characters, whatever the key:
tomlfile.build).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from ..model.coalesce import DRIVER_FLAVOUR, DRIVER_USECS, GOAL_WEIGHT_US
from ..parse.common import CpuListError, brief, brief_text, parse_cpulist
from ..tomlfile import Locator, TomlError, Where, build, read_toml

FLAVOURS = ("timer-from-first", "timer-restart", "min-gap")
ADAPTIVE = ("dim", "aim")
MEDIA = ("optane", "nand")
ARRIVALS = ("poisson", "bursty", "closed-loop")
OPEN_LOOP_DEPTH = 1024  # outstanding I/O allowed to an NVMe load given by iops alone
DRIVERS = sorted({*DRIVER_FLAVOUR, *DRIVER_USECS})  # driver names the agent's model knows
MAX_SMT = 8
COMM_LEN = 15  # a task's comm is 16 bytes with its NUL
IFNAMSIZ = 16  # the kernel's interface names: at most 15 characters and the NUL


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
    raise ScenarioError(f"{brief_text(name_or_path)}: no such file, and not a library scenario ({', '.join(shipped)})")


class ScenarioError(TomlError):
    """A scenario that cannot be simulated; the message is `FILE:LINE: key: what is wrong`."""


@dataclass
class HostSpec:
    cpus: int = 4
    nodes: list[str] = field(default_factory=list)
    isolated: str = ""
    hz: int = 1000
    kernel: str = "6.18"
    smt: int = 1  # threads per core: CPU N's siblings are N ± k × cpus/smt
    irq_sink: str = ""  # the agent's config [cpus] irq_sink
    memory_mb: int = 0  # managed memory of the one simulated zone; 0: a roomy 16 GB one (sim/memory.py)

    def siblings(self, cpu: int) -> list[int]:
        """`cpu`'s SMT siblings (itself excluded), Linux's usual numbering: the second threads after the first."""
        cores = self.cpus // max(self.smt, 1)
        return [cpu % cores + k * cores for k in range(self.smt) if cpu % cores + k * cores != cpu]


@dataclass
class NicSpec:
    name: str = ""
    queues: int = 1
    node: int = 0
    flavour: str = "timer-from-first"
    rx_usecs: int = 8
    rx_frames: int = 32
    usecs_quantum: int = 1
    timer_scale: float = 1.0  # µs of real delay per rx-usecs unit (QEMU's e1000e: about 0.79); the driver knows 1
    adaptive_rx: bool = False  # the driver's default; which algorithm runs is `adaptive`
    adaptive: str = ""  # "" = the flavour's usual one: aim for min-gap (Intel), dim otherwise
    ring: int = 1024  # rx/tx descriptors at start (ethtool -g); a ring written through the knob is in force
    ring_max: int = 4096  # the driver's maximum ring size
    max_channels: int = 0  # the driver's channel maximum (ethtool -l); 0 = queues. A count written is kept, not
    # modelled: the simulated NIC keeps `queues`
    napi: bool = True  # false: the pre-NAPI path, one interrupt per packet (receive livelock, docs/physics.md §3.2)
    cpus: str = ""  # where the driver points its queue IRQs at start, one CPU each in turn ("" = every CPU)
    critical: bool = False  # feeds the latency-critical work on `cpus`: the operator's agent config pins it there
    goal: str = ""  # the operator's goal for it (latency, balanced, ...): the agent's config and the objective's
    # price of a core; "" = latency when critical, else balanced
    p99_target_us: float = 0.0  # the operator's p99 target for it (the agent's config [[device]] p99_target_us)
    irq_cost_us: float = 1.5
    service_us: float = 0.8
    packet_bytes: int = 64
    driver: str = ""  # the driver name the tree reports ("" = the flavour's usual one, `driver_name`)
    deferral: bool = True  # false: the operator forbids NAPI deferral on it (the agent's config bounds
    # napi-defer-hard-irqs to [0, 0]; the oracles' grid leaves deferral out)

    @property
    def effective_goal(self) -> str:
        return self.goal or ("latency" if self.critical else "balanced")

    @property
    def driver_name(self) -> str:
        return self.driver or ("ice" if self.flavour == "min-gap" else "mlx5_core")

    @property
    def algorithm(self) -> str:
        return self.adaptive or ("aim" if self.flavour == "min-gap" else "dim")


@dataclass
class NvmeSpec:
    name: str = ""
    queues: int = 1
    node: int = 0
    media: str = "nand"
    cstate_us: float = 2.0
    service_us: float = 0.0  # the device's mean service time per I/O; 0 = the media's (sim/nvme.py MEDIA)
    goal: str = ""  # the operator's goal for it: the objective's price of a core and the agent's config

    @property
    def effective_goal(self) -> str:
        return self.goal or "balanced"


@dataclass
class LoadSpec:
    device: str = ""
    rate_pps: float = 0.0
    arrivals: str = "poisson"
    burst_pps: float = 0.0
    burst_ms: float = 1.0
    burst_every_ms: float = 10.0
    clients: int = 0
    think_us: float = 20.0
    app_busy_poll: bool = False
    iodepth: int = 0
    iops: float = 0.0


@dataclass
class PhaseSpec:
    name: str = ""
    seconds: float = 10.0
    tlb_shootdowns: float = 0.0
    tlb_cpus: str = ""
    resched_ipis: float = 0.0  # rescheduling IPIs per second to each of ipi_cpus (wake-ups from other CPUs)
    ipi_cpus: str = ""
    tlb_task: str = "app"  # the churning process's name (comm): the tlb probe's shootdown sender
    alloc_burst_mb: float = 0.0  # how far applications' allocations drive free pages below low (sim/memory.py)
    loads: list[LoadSpec] = field(default_factory=list)
    inline_load: bool = False  # the first load came from the phase's own keys (for error locations)

    def load_for(self, device: str) -> LoadSpec | None:
        return next((load for load in self.loads if load.device == device), None)


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

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)


LOAD_KEYS = {f.name for f in fields(LoadSpec)} - {"device"}

MAX_SECONDS = 86400.0  # simulated time of a scenario (--duration too): a day, a control interval a second

RANGES: dict[tuple[type, str], tuple[float, float]] = {  # beyond these a model divides by zero or never ends
    (HostSpec, "hz"): (10, 10_000),
    (NicSpec, "rx_usecs"): (0, 100_000),
    (NicSpec, "rx_frames"): (0, 65_536),
    (NicSpec, "usecs_quantum"): (1, 1_000),
    (NicSpec, "irq_cost_us"): (0, 1_000),
    (NicSpec, "service_us"): (0.001, 1_000),
    (PhaseSpec, "seconds"): (0.001, MAX_SECONDS),
    (HostSpec, "memory_mb"): (0, 1 << 24),
    (PhaseSpec, "alloc_burst_mb"): (0, 1 << 20),
}


def _check_ranges(spec: object, where: Where, loc: Locator) -> None:
    """Every key of `spec` that RANGES bounds, within its bounds (keys without an entry: tomlfile.build's)."""
    for f in fields(spec):
        bounds = RANGES.get((type(spec), f.name))
        value = getattr(spec, f.name)
        if bounds and not bounds[0] <= value <= bounds[1]:
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            raise loc.error(where, f.name, f"expected {bounds[0]:g} to {bounds[1]:g}, got {shown}")


def _phase(data: object, i: int, loc: Locator) -> PhaseSpec:
    """A phase: its own keys, an inline load (`nic =`/`nvme =` + load keys) and [[phase.load]] tables."""
    if not isinstance(data, dict):
        raise loc.error((("phase", i),), None, "expected a table")
    own = {k: v for k, v in data.items() if k not in LOAD_KEYS and k not in ("nic", "nvme", "load")}
    phase = build(PhaseSpec, own, (("phase", i),), loc, skip=("loads", "inline_load"))
    inline = {k: v for k, v in data.items() if k in LOAD_KEYS}
    named = [k for k in ("nic", "nvme") if k in data]
    if len(named) > 1:
        raise loc.error((("phase", i),), "nvme", "one inline load per phase: use [[phase.load]] tables for more")
    if named:
        device = data[named[0]]
        if not isinstance(device, str):
            raise loc.error((("phase", i),), named[0], f"expected a device name, got {brief(device)}")
        load = build(LoadSpec, inline, (("phase", i),), loc)
        load.device = device
        phase.loads.append(load)
        phase.inline_load = True
    elif inline:
        key = next(iter(inline))
        raise loc.error((("phase", i),), key, 'a load needs its device: add nic = "NAME" or nvme = "NAME"')
    tables = data.get("load", [])
    if not isinstance(tables, list):
        raise loc.error((("phase", i),), "load", "expected [[phase.load]] tables")
    for j, table in enumerate(tables):
        phase.loads.append(build(LoadSpec, table, (("phase", i), ("load", j)), loc))
    return phase


def load_scenario(path: str, text: str | None = None) -> Scenario:
    data, loc = read_toml(path, text, ScenarioError, "scenario")
    for key in data:
        if key not in ("host", "nic", "nvme", "phase"):
            line = loc.line(((key, None),), None) or loc.line(((key, 0),), None) or 1
            raise ScenarioError(f"{path}:{line}: {brief_text(key) or repr(key)}: unknown table (expected host, nic, "
                                "nvme, phase)")  # fmt: skip
    host = build(HostSpec, data.get("host", {}), (("host", None),), loc)
    nics = [build(NicSpec, d, (("nic", i),), loc) for i, d in enumerate(data.get("nic", []))]
    nvmes = [build(NvmeSpec, d, (("nvme", i),), loc) for i, d in enumerate(data.get("nvme", []))]
    phases = [_phase(d, i, loc) for i, d in enumerate(data.get("phase", []))]
    scenario = Scenario(path, host, nics, nvmes, phases)
    _check(scenario, loc)
    return scenario


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a device's name, as the kernel's dev_valid_name says (names become paths in the
    simulated tree: `../../x` would leave it), or None."""
    if not 0 < len(name) < IFNAMSIZ:
        return f"expected 1 to {IFNAMSIZ - 1} characters, got {len(name)}"
    if name in (".", ".."):
        return f"{name!r} is not a device name"
    bad = next((c for c in name if c in "/:\0" or c.isspace()), None)
    if bad is not None:
        return f"{name!r}: no '/', ':', NUL or whitespace in a device name (found {bad!r})"
    return None


def _check_names(devices: list, kind: str, loc: Locator) -> None:
    """Unique names the kernel would accept, for every [[nic]] or [[nvme]] (names shared across both)."""
    for i, device in enumerate(devices):
        problem = name_problem(device.name) if device.name else "expected a unique device name, got ''"
        if problem:
            raise loc.error(((kind, i),), "name", problem)


def _check(sc: Scenario, loc: Locator) -> None:
    host = (("host", None),)
    if sc.host.cpus < 1 or sc.host.cpus > 4096:
        raise loc.error(host, "cpus", f"expected 1..4096 CPUs, got {sc.host.cpus}")
    _check_ranges(sc.host, host, loc)
    try:
        nodes = sc.node_cpus()
    except CpuListError as err:
        raise loc.error(host, "nodes", str(err)) from None
    _check_cpus(loc, host, "nodes", [c for cs in nodes.values() for c in cs], sc.host.cpus)
    _check_cpus(loc, host, "isolated", _cpulist(loc, host, "isolated", sc.host.isolated), sc.host.cpus)
    _check_cpus(loc, host, "irq_sink", _cpulist(loc, host, "irq_sink", sc.host.irq_sink), sc.host.cpus)
    _check_smt(sc, nodes, loc)
    _check_names(sc.nics, "nic", loc)
    _check_names(sc.nvmes, "nvme", loc)
    names = set()
    for i, nic in enumerate(sc.nics):
        where = (("nic", i),)
        if not nic.name or nic.name in names:
            raise loc.error(where, "name", f"expected a unique device name, got {brief(nic.name)}")
        names.add(nic.name)
        if nic.node not in nodes:
            raise loc.error(where, "node", f"NUMA node {nic.node} does not exist")
        for key, value, allowed in (("flavour", nic.flavour, FLAVOURS), ("adaptive", nic.adaptive, ("", *ADAPTIVE))):
            if value not in allowed:
                raise loc.error(where, key, f"expected one of {', '.join(a for a in allowed if a)}")
        if not 1 <= nic.queues <= 1024:
            raise loc.error(where, "queues", f"expected 1..1024 queues, got {nic.queues}")
        if nic.max_channels and not nic.queues <= nic.max_channels <= 1024:
            raise loc.error(where, "max_channels", f"expected {nic.queues}..1024 (at least its queues), got "
                            f"{nic.max_channels}")  # fmt: skip
        if not 64 <= nic.ring <= 65536:
            raise loc.error(where, "ring", f"expected 64..65536 descriptors, got {nic.ring}")
        if not nic.ring <= nic.ring_max <= 65536:
            raise loc.error(where, "ring_max", f"expected {nic.ring}..65536 descriptors, got {nic.ring_max}")
        _check_cpus(loc, where, "cpus", _cpulist(loc, where, "cpus", nic.cpus), sc.host.cpus)
        if nic.critical and not nic.cpus:
            raise loc.error(where, "critical", "a critical NIC needs cpus, the CPUs of the work it feeds")
        if nic.goal and nic.goal not in GOAL_WEIGHT_US:
            raise loc.error(where, "goal", f"expected one of {', '.join(GOAL_WEIGHT_US)}")
        if not 0.1 <= nic.timer_scale <= 10:
            raise loc.error(where, "timer_scale", f"expected 0.1..10 µs per rx-usecs unit, got {nic.timer_scale}")
        if nic.service_us <= 0:
            raise loc.error(where, "service_us", "a packet needs some CPU: expected a positive time")
        if nic.driver and nic.driver not in DRIVERS:
            raise loc.error(where, "driver", f"unknown driver {nic.driver!r} (expected one of {', '.join(DRIVERS)})")
        _check_ranges(nic, where, loc)
    for i, nvme in enumerate(sc.nvmes):
        where = (("nvme", i),)
        if not nvme.name or nvme.name in names:
            raise loc.error(where, "name", f"expected a unique device name, got {brief(nvme.name)}")
        names.add(nvme.name)
        if nvme.node not in nodes:
            raise loc.error(where, "node", f"NUMA node {nvme.node} does not exist")
        if nvme.media not in MEDIA:
            raise loc.error(where, "media", f"expected one of {', '.join(MEDIA)}")
        if not 1 <= nvme.queues <= sc.host.cpus:
            raise loc.error(where, "queues", f"{nvme.queues} queues: NVMe has one to one per CPU ({sc.host.cpus})")
        if nvme.goal and nvme.goal not in GOAL_WEIGHT_US:
            raise loc.error(where, "goal", f"expected one of {', '.join(GOAL_WEIGHT_US)}")
    if not sc.phases:
        raise loc.error((("phase", 0),), None, "expected at least one [[phase]]")
    for i, phase in enumerate(sc.phases):
        where = (("phase", i),)
        if phase.seconds <= 0:
            raise loc.error(where, "seconds", "a phase needs a positive duration")
        _check_ranges(phase, where, loc)
        _check_cpus(loc, where, "tlb_cpus", _cpulist(loc, where, "tlb_cpus", phase.tlb_cpus), sc.host.cpus)
        if phase.tlb_shootdowns and not phase.tlb_cpus:
            raise loc.error(where, "tlb_shootdowns", "needs tlb_cpus, the CPUs the churning process runs on")
        if not 0 < len(phase.tlb_task) <= COMM_LEN:
            raise loc.error(where, "tlb_task", f"expected a process name of 1 to {COMM_LEN} characters (its comm)")
        _check_cpus(loc, where, "ipi_cpus", _cpulist(loc, where, "ipi_cpus", phase.ipi_cpus), sc.host.cpus)
        if phase.resched_ipis and not phase.ipi_cpus:
            raise loc.error(where, "resched_ipis", "needs ipi_cpus, the CPUs whose threads are woken")
        inline = 1 if phase.inline_load else 0
        for j, load in enumerate(phase.loads):
            _check_load(sc, load, where if j < inline else (*where, ("load", j - inline)), loc)
    if sc.seconds > MAX_SECONDS:
        raise loc.error((("phase", 0),), "seconds", f"the phases last {sc.seconds:,.0f} s: at most {MAX_SECONDS:,.0f}")


def _check_smt(sc: Scenario, nodes: dict[int, list[int]], loc: Locator) -> None:
    """Whole cores, each on one NUMA node."""
    host, smt = (("host", None),), sc.host.smt
    if not 1 <= smt <= MAX_SMT:
        raise loc.error(host, "smt", f"expected 1 (no SMT) to {MAX_SMT} threads per core, got {smt}")
    if sc.host.cpus % smt:
        raise loc.error(host, "smt", f"{sc.host.cpus} CPUs do not make whole cores of {smt} threads")
    node_of = {cpu: node for node, cpus in nodes.items() for cpu in cpus}
    for cpu in sc.cpus:
        other = next((s for s in sc.host.siblings(cpu) if node_of.get(s) != node_of.get(cpu)), None)
        if other is not None:
            raise loc.error(host, "smt", f"CPU {cpu} and its sibling {other} are on different nodes (list both "
                            f"threads of a core in one node, e.g. \"0-3,8-11\")")  # fmt: skip


def _check_load(sc: Scenario, load: LoadSpec, where: Where, loc: Locator) -> None:
    nics, nvmes = {n.name: n for n in sc.nics}, {n.name: n for n in sc.nvmes}
    key = "device" if where[-1][0] == "load" else ("nvme" if load.device in nvmes else "nic")
    if load.device not in nics and load.device not in nvmes:
        raise loc.error(where, key, f"no [[nic]] or [[nvme]] named {brief(load.device)}")
    if load.arrivals not in ARRIVALS:
        raise loc.error(where, "arrivals", f"expected one of {', '.join(ARRIVALS)}")
    if load.device in nics:
        for name in ("iodepth", "iops"):
            if getattr(load, name):
                raise loc.error(where, name, f"{load.device} is a NIC: {name} is for NVMe loads")
        if load.arrivals == "closed-loop" and load.clients < 1:
            raise loc.error(where, "clients", "closed-loop arrivals need clients >= 1 (outstanding per queue)")
        if load.arrivals == "bursty":
            if load.burst_pps <= load.rate_pps:
                raise loc.error(where, "burst_pps", "bursts need a rate above rate_pps")
            if not 0 < load.burst_ms < load.burst_every_ms:
                raise loc.error(where, "burst_ms", "expected 0 < burst_ms < burst_every_ms")
    else:
        for name in ("rate_pps", "burst_pps", "clients"):
            if getattr(load, name):
                raise loc.error(where, name, f"{load.device} is an NVMe device: use iodepth or iops")
        if load.iodepth < 1 and load.iops <= 0:
            raise loc.error(where, "iodepth", "an NVMe load needs iodepth >= 1 or iops > 0")
    _check_ranges(load, where, loc)


def _cpulist(loc: Locator, where: Where, key: str, text: str) -> list[int]:
    try:
        return parse_cpulist(text)
    except CpuListError as err:
        raise loc.error(where, key, str(err)) from None


def _check_cpus(loc: Locator, where: Where, key: str, cpus: list[int], count: int) -> None:
    missing = [c for c in cpus if c >= count]
    if missing:
        raise loc.error(where, key, f"CPU {missing[0]} does not exist (host has {count} CPUs)")
