"""The agent's configuration (TOML), validated with errors that name the file, line and key.

mode = "observe"              # observe: measure and recommend, write nothing | tune: apply
interval = 10                 # seconds between passes (0.5..3600; every number finite: no nan or inf)
samples = 4                   # cheap reads per interval (the managed devices' /proc/interrupts rows, /proc/net/dev):
                              # bursts longer than interval / samples show as a peak above the mean; 1 = off
restore_on_exit = true        # on SIGTERM: put back everything this agent changed (false: keep the journal)
allow_host_wide = false       # tune IRQ affinity (host-wide) from a network namespace other than the host's
goal = "balanced"             # default goal: latency | throughput | balanced | efficiency
p99_target_us = 0             # default p99 latency target of a NIC's packets, µs (0: none; docs/physics.md §9.6)
repin = false                 # [pin]: write a pinned knob again when something else changed it (false: report)

[cpus]                        # CPU lists ("0-3,8"); empty = derived from the host
housekeeping = ""             # where IRQs may go (default: every CPU not isolated/critical)
critical = ""                 # latency-critical CPUs: no IRQ is moved onto them (but a device's own cpus)
banned = ""                   # no IRQ is moved onto these either
irq_sink = ""                 # where a storming low-criticality device is sent

[limits]
max_changes = 8               # optimisation moves per pass (moving IRQs off forbidden CPUs is not counted)
dwell = 30                    # seconds a knob holds before it may change again (0..86400)
irq_cost_us = 1.5             # CPU per interrupt, for the moderation model (docs/physics.md §3.3; 0.01..1000)
service_us = 0.8              # CPU per packet when the host is too idle to measure it (0.01..1000)

[exporter]                    # Prometheus metrics served by the agent (docs/metrics.md); off when listen = ""
listen = ""                   # e.g. "127.0.0.1:9731" (0.0.0.0 exposes it: use TLS and basic auth)
tls_cert = ""                 # PEM certificate (and key, unless tls_key) to serve HTTPS
tls_key = ""
basic_auth_file = ""          # USER:HASH lines, as for irqtune export --basic-auth-file
per_cpu = false               # also per-IRQ per-CPU series
max_series = 5000             # the series budget

[kubernetes]                  # the kubelet's CPU manager (README, "Kubernetes CPU manager")
pods = ""                     # "api" (in-cluster, this node's pods) | "file:PATH" (a pod list) | "" (off)
cpu_manager_state = "/var/lib/kubelet/cpu_manager_state"  # below --root
annotation = "irq-load-balancing.crio.io"  # pods with it "disable": their exclusive CPUs are critical

[bounds]                      # the agent never sets a matching knob outside [min, max]
"net/*/coalesce/rx-usecs" = [0, 64]

[pin]                         # knobs held at a value (tune mode writes them once, journaled; the agent never
"sysctl/net.core.busy_read" = 50   # moves them); a glob in the device part pins every matching NIC, later ones too
"net/eth*/coalesce/rx-usecs" = 8

[[device]]                    # per device (name) or per class ("nic", "nvme")
name = "eth1"
goal = "latency"
p99_target_us = 50            # moderation keeps the predicted p99 within it (0: the top-level default)
manage = true                 # false: leave it alone
cpus = "6-7"                  # its queue IRQs go here, even onto critical or isolated CPUs
colocate = "memcached"        # put its queue IRQs next to this process's pinned threads (same core, else L3)
colocate_move = "irq"         # irq | threads (leave the IRQs, recommend pinning the threads next to them)
steer = true                  # RPS/XPS masks that match the IRQ placement (scaling.rst)
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from .measure.known import KnownNames, cpu_problem, device_problem
from .parse.common import CpuListError, brief, brief_text, parse_cpulist
from .plan.knob_id import KnobError
from .plan.pins import Pin, parse_pin
from .tomlfile import Locator, TomlError, Where, build, read_toml

MODES = ("observe", "tune")
MAX_SAMPLES = 100  # cheap reads per interval
MIN_SAMPLE_GAP = 0.05  # seconds between them: the agent's own cost stays small
GOALS = ("latency", "throughput", "balanced", "efficiency")
CLASSES = ("nic", "nvme")


class ConfigError(TomlError):
    pass


DEFAULT_LISTEN = "127.0.0.1:9731"  # the exporter's: loopback unless the operator says otherwise


def parse_listen(listen: str) -> tuple[str, int]:
    """`ADDR:PORT`, `[V6ADDR]:PORT` or `:PORT` (all addresses, like Go's exporters) -> (addr, port)."""
    host, colon, port_text = listen.rpartition(":")
    if not colon or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected ADDR:PORT (e.g. {DEFAULT_LISTEN} or [::1]:9731), got {brief(listen)}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"write an IPv6 address in brackets: [{brief_text(host)}]:{port_text}")
    return host or "0.0.0.0", int(port_text)


@dataclass
class CpuSets:
    housekeeping: str = ""
    critical: str = ""
    banned: str = ""
    irq_sink: str = ""

    def cpus(self, name: str) -> frozenset[int]:
        return frozenset(parse_cpulist(getattr(self, name)))


@dataclass
class Limits:
    max_changes: int = 8
    dwell: float = 30.0
    irq_cost_us: float = 1.5
    service_us: float = 0.8


@dataclass
class Exporter:
    listen: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    basic_auth_file: str = ""
    per_cpu: bool = False
    max_series: int = 5000


@dataclass
class Kubernetes:
    pods: str = ""  # "api" | "file:PATH" | "" (off)
    cpu_manager_state: str = "/var/lib/kubelet/cpu_manager_state"
    annotation: str = "irq-load-balancing.crio.io"


@dataclass
class DeviceRule:
    name: str = ""
    class_: str = ""  # "class" in the file
    goal: str = ""
    p99_target_us: float = 0.0  # µs; 0 = the top-level default
    manage: bool = True
    cpus: str = ""  # where its queue IRQs go, isolated or critical CPUs included (it feeds the work there)
    colocate: str = ""  # a process (comm) whose pinned threads consume this device's packets
    colocate_move: str = "irq"  # irq: its IRQs go next to the threads | threads: recommend pinning the threads
    steer: bool = False  # set RPS/XPS masks to match where the queue IRQs are placed


@dataclass
class Config:
    path: str = "(defaults)"
    mode: str = "observe"
    interval: float = 10.0
    samples: int = 4  # cheap counter reads per interval, the pass's own included (measure/bursts.py); 1 = off
    restore_on_exit: bool = True  # the one default (unit, Ansible, Kubernetes): a stop leaves the host as found
    allow_host_wide: bool = False  # IRQ affinity from inside `ip netns exec`: it moves the host's interrupts
    goal: str = "balanced"
    p99_target_us: float = 0.0  # µs, every NIC's unless its rule sets one; 0 = none
    repin: bool = False  # a pinned knob something else changed: written again (True) or only reported
    cpus: CpuSets = field(default_factory=CpuSets)
    limits: Limits = field(default_factory=Limits)
    exporter: Exporter = field(default_factory=Exporter)
    kubernetes: Kubernetes = field(default_factory=Kubernetes)
    devices: list[DeviceRule] = field(default_factory=list)
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)  # knob pattern (fnmatch) -> [min, max]
    pins: list[Pin] = field(default_factory=list)  # [pin], in file order
    locator: Locator | None = field(default=None, repr=False, compare=False)  # lines of the keys, for check_host

    def bound(self, knob: str) -> tuple[int, int] | None:
        """The bounds of a knob: the first pattern that matches its canonical id."""
        return next((b for pattern, b in self.bounds.items() if fnmatch.fnmatchcase(knob, pattern)), None)

    def rule(self, device: str, kind: str | None) -> DeviceRule:
        """The rule for a device: by name first, then by class, else the defaults."""
        for rule in self.devices:
            if rule.name == device:
                return rule
        for rule in self.devices:
            if rule.class_ and rule.class_ == kind:
                return rule
        return DeviceRule(name=device)

    def goal_for(self, device: str, kind: str | None) -> str:
        return self.rule(device, kind).goal or self.goal

    def p99_target_for(self, device: str, kind: str | None) -> float:
        """The p99 latency target (µs) the moderation choice holds this device to; 0 = none."""
        return self.rule(device, kind).p99_target_us or self.p99_target_us

    def manages(self, device: str, kind: str | None) -> bool:
        return self.rule(device, kind).manage

    def colocations(self) -> dict[str, tuple[str, str]]:
        """Device -> (process name, what moves) for devices tied to a process."""
        return {r.name: (r.colocate, r.colocate_move) for r in self.devices if r.name and r.colocate and r.manage}

    def steered(self) -> frozenset[str]:
        return frozenset(r.name for r in self.devices if r.name and r.steer and r.manage)

    def device_cpus(self) -> dict[str, frozenset[int]]:
        """Devices (by name) whose queue IRQs the config puts on given CPUs."""
        return {r.name: frozenset(parse_cpulist(r.cpus)) for r in self.devices if r.name and r.cpus}


def load_config(path: str, text: str | None = None) -> Config:
    data, loc = read_toml(path, text, ConfigError, "config")
    tables = ("cpus", "limits", "device", "bounds", "exporter", "pin", "kubernetes")
    top = {k: v for k, v in data.items() if k not in tables}
    config = build(Config, top, (), loc, skip=("path", "devices", "locator", "pins", *tables))
    config.path, config.locator = path, loc
    config.cpus = build(CpuSets, data.get("cpus", {}), (("cpus", None),), loc)
    config.limits = build(Limits, data.get("limits", {}), (("limits", None),), loc)
    config.exporter = build(Exporter, data.get("exporter", {}), (("exporter", None),), loc)
    config.kubernetes = build(Kubernetes, data.get("kubernetes", {}), (("kubernetes", None),), loc)
    devices = data.get("device", [])
    if not isinstance(devices, list):
        raise loc.error((), "device", "expected [[device]] tables")
    for i, table in enumerate(devices):
        if isinstance(table, dict) and "class" in table:
            table = {("class_" if k == "class" else k): v for k, v in table.items()}
        config.devices.append(build(DeviceRule, table, (("device", i),), loc))
    config.bounds = _bounds(data.get("bounds", {}), loc)
    config.pins = _pins(data.get("pin", {}), config, loc)
    _check(config, loc)
    return config


def _bounds(table: object, loc: Locator) -> dict[str, tuple[int, int]]:
    """[bounds] "KNOB-PATTERN" = [MIN, MAX]: the agent never sets a matching knob outside them."""
    where = (("bounds", None),)
    if not isinstance(table, dict):
        raise loc.error((), "bounds", 'expected a table of "KNOB" = [MIN, MAX]')
    out = {}
    for pattern, value in table.items():
        ok = (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
              and v >= 0 for v in value) and value[0] <= value[1])  # fmt: skip
        if not ok:
            raise loc.error(where, pattern, f"expected [MIN, MAX], whole numbers, MIN <= MAX; got {brief(value)}")
        out[pattern] = (value[0], value[1])
    return out


def _pins(table: object, config: Config, loc: Locator) -> list[Pin]:
    """[pin] "KNOB" = VALUE: each id known (a glob in its device part allowed), its value of the knob's type and
    range, and within the config's [bounds]: a pin the agent would refuse to write is a mistake found at load."""
    if not isinstance(table, dict):
        raise loc.error((), "pin", 'expected a table of "KNOB" = VALUE')
    pins: dict[str, Pin] = {}
    for knob, value in table.items():
        try:
            pin = parse_pin(knob, value)
        except KnobError as err:
            raise loc.error((("pin", None),), knob, str(err)) from None
        bound = config.bound(pin.pattern)
        if bound and pin.value.isdigit() and not bound[0] <= int(pin.value) <= bound[1]:
            raise loc.error(
                (("pin", None),), knob, f"{pin.value} is outside the config's [bounds] {bound[0]}..{bound[1]}"
            )
        if pin.pattern in pins:
            raise loc.error((("pin", None),), knob, f"pins the same knob as {pins[pin.pattern].pattern!r}")
        pins[pin.pattern] = pin
    return list(pins.values())


def _check(config: Config, loc: Locator) -> None:
    if config.mode not in MODES:
        raise loc.error((), "mode", f"expected one of {', '.join(MODES)}, got {brief(config.mode)}")
    if config.goal not in GOALS:
        raise loc.error((), "goal", f"expected one of {', '.join(GOALS)}, got {brief(config.goal)}")
    _check_target(loc, (), config.p99_target_us)
    if not 0.5 <= config.interval <= 3600:
        raise loc.error((), "interval", f"expected 0.5..3600 seconds, got {config.interval:g}")
    if not 1 <= config.samples <= MAX_SAMPLES or config.interval / config.samples < MIN_SAMPLE_GAP:
        gap = f"at least {MIN_SAMPLE_GAP:g} s apart (interval {config.interval:g} s)"
        raise loc.error((), "samples", f"expected 1 (off) to {MAX_SAMPLES} reads per interval, {gap}; "
                        f"got {config.samples}")  # fmt: skip
    for name in ("housekeeping", "critical", "banned", "irq_sink"):
        try:
            config.cpus.cpus(name)
        except CpuListError as err:
            raise loc.error((("cpus", None),), name, str(err)) from None
    if config.limits.max_changes < 1:
        raise loc.error((("limits", None),), "max_changes", "at least one change per pass, or use mode = observe")
    _check_limits(config.limits, loc)
    if config.exporter.listen:
        try:
            parse_listen(config.exporter.listen)
        except ValueError as err:
            raise loc.error((("exporter", None),), "listen", str(err)) from None
    if config.exporter.max_series < 0:
        raise loc.error((("exporter", None),), "max_series", "expected 0 (no budget) or more")
    _check_kubernetes(config.kubernetes, loc)
    for i, rule in enumerate(config.devices):
        where = (("device", i),)
        if bool(rule.name) == bool(rule.class_):
            raise loc.error(where, "name", "give exactly one of name (a device) or class (nic, nvme)")
        if rule.class_ and rule.class_ not in CLASSES:
            raise loc.error(where, "class", f"expected one of {', '.join(CLASSES)}")
        try:
            parse_cpulist(rule.cpus)
        except CpuListError as err:
            raise loc.error(where, "cpus", str(err)) from None
        if rule.colocate_move not in ("irq", "threads"):
            raise loc.error(where, "colocate_move", f"expected irq or threads, got {brief(rule.colocate_move)}")
        if (rule.colocate or rule.steer) and not rule.name:
            raise loc.error(where, "colocate" if rule.colocate else "steer", "needs a device name, not a class")
        if rule.goal and rule.goal not in GOALS:
            raise loc.error(where, "goal", f"expected one of {', '.join(GOALS)}, got {brief(rule.goal)}")
        _check_target(loc, where, rule.p99_target_us, rule.class_)


def _check_kubernetes(kube: Kubernetes, loc: Locator) -> None:
    """pods: where the node's pods come from; the checkpoint an absolute path (read below --root)."""
    where = (("kubernetes", None),)
    if kube.pods not in ("", "api") and not (kube.pods.startswith("file:") and kube.pods[len("file:") :]):
        raise loc.error(where, "pods", f'expected "api", "file:PATH" or "" (off), got {brief(kube.pods)}')
    for key in ("cpu_manager_state", *(("pods",) if kube.pods.startswith("file:") else ())):
        path = getattr(kube, key).removeprefix("file:")
        if not path.startswith("/") or "\0" in path:
            raise loc.error(where, key, f"expected an absolute path (read below --root), got {brief(path)}")
    if not kube.annotation:
        raise loc.error(where, "annotation", "expected an annotation key")


LIMIT_RANGES = {  # [limits] key -> (lowest, highest): the models divide by the costs, the loop waits the dwell
    "dwell": (0.0, 86400.0),  # seconds; 0: no dwell (nor freezing)
    "irq_cost_us": (0.01, 1000.0),  # µs of CPU per interrupt (docs/physics.md §3.3: about 1 to 5)
    "service_us": (0.01, 1000.0),  # µs of CPU per packet
}


def _check_limits(limits: Limits, loc: Locator) -> None:
    """Each [limits] number within what the model and the loop can use: a zero cost divides by zero."""
    for key, (low, high) in LIMIT_RANGES.items():
        value = getattr(limits, key)
        if not low <= value <= high:
            raise loc.error((("limits", None),), key, f"expected {low:g} to {high:g}, got {value:g}")


MAX_TARGET_US = 1e6  # a p99 target beyond a second is a unit mistake (the key is in microseconds)


def _check_target(loc: Locator, where: Where, target: float, class_: str = "") -> None:
    """A p99 target: microseconds, 0 (none) up to a second, for NICs (the moderation choice holds it)."""
    if target > MAX_TARGET_US:
        raise loc.error(
            where, "p99_target_us", f"expected microseconds, 0 (none) to {MAX_TARGET_US:,.0f}; got {target:g}"
        )
    if target and class_ and class_ != "nic":
        raise loc.error(where, "p99_target_us", f"a p99 target is for NICs (their moderation), not class {class_!r}")


def check_host(config: Config, known: KnownNames) -> list[str]:
    """Every device and CPU the config names that this host lacks, as `FILE:LINE: key: what`, in file order.

    Separate from load_config: a config is checked against the host where the agent starts or reloads,
    while `restore --only-if-config` must read it whatever the host has become.
    """
    problems: list[tuple[int, str]] = []
    for name in ("housekeeping", "critical", "banned", "irq_sink"):
        problem = cpu_problem(config.cpus.cpus(name), known.cpus)
        if problem:
            problems.append(_located(config, (("cpus", None),), name, problem))
    for i, rule in enumerate(config.devices):
        where = (("device", i),)
        problem = device_problem(rule.name, known.devices) if rule.name else None
        if problem:
            problems.append(_located(config, where, "name", problem))
        problem = cpu_problem(parse_cpulist(rule.cpus), known.cpus)
        if problem:
            problems.append(_located(config, where, "cpus", problem))
    return [message for _, message in sorted(problems)]


def _located(config: Config, where: Where, key: str, message: str) -> tuple[int, str]:
    """(line, `FILE:LINE: key: message`); line 0 for a config built in code, not read from a file."""
    if config.locator is None:
        return 0, f"{config.path}: {key}: {message}"
    return config.locator.line(where, key), str(config.locator.error(where, key, message))
