"""Policies `irqtune simulate --policy` runs: baselines, the oracle, and irqtune's own.

Every policy acts on the simulated host the way an operator or agent acts on a real one:
through irqtune's knob layer and journal (ethtool coalescing over the simulated driver,
NAPI settings over the simulated netdev family, sysctls), so whatever it changes is
journaled and `irqtune --root TREE restore` undoes it. The one exception is an NVMe
device's completion mode, an application choice (io_uring IOPOLL or HYBRID_IOPOLL)
that the simulated host takes from `sys/block/DEV/irqtune-sim/completion`.

    defaults        the scenario's driver settings, untouched
    static:SPEC     fixed settings for every NIC: latency, throughput, dumazet, suspend20, or
                    key=value,... with rx-usecs, rx-frames, defer, gro-flush (µs), suspend (µs)
    dim | aim       the driver's adaptive-rx with Linux DIM or Intel's legacy adaptive ITR
    always-poll     busy-poll every read (net.core.busy_read) and poll NVMe completions
    oracle          the dynamic oracle: the best setting per phase, knowing the load ahead
    oracle-static   the best single setting for the whole scenario
    irqtune         irqtune's agent loop (agent/loop.py, as `irqtune run --mode tune`): placement,
                    then coalescing from measurements of the tree, with dwell, limits and rollback;
                    its advice gets the probe data the simulated host serves (sim/probes.py). It turns
                    no NVMe knob: the completion mode is the application's, polling is advice
"""

from __future__ import annotations

import logging

from ..act.engine import change, prepare
from ..act.journal import Journal
from ..act.knobs import make_knob
from ..agent.loop import Agent
from ..config import Config, DeviceRule, Limits
from ..statedir import boot_id
from .kernel import SimulatedKernel
from .machine import SimMachine
from .oracle import NicSetting, plan
from .probes import SimProbes
from .scenario import PhaseSpec

log = logging.getLogger(__name__)

NAMED_STATIC = {
    "latency": "rx-usecs=0,rx-frames=1",
    "throughput": "rx-usecs=64,rx-frames=64",
    "dumazet": "defer=10,gro-flush=20",  # 6f8b12d661d0's example
    "suspend20": "defer=100,gro-flush=20,suspend=20000",  # Karsten & Damato (docs/physics.md §2.7)
}
POLICIES = ("defaults", "static:SPEC", "dim", "aim", "always-poll", "oracle", "oracle-static", "irqtune")
ALWAYS_POLL_US = 1_000_000  # busy_read long enough that a reader never sleeps


class PolicyError(ValueError):
    pass


class Control:
    """What a policy may do to the simulated host: change knobs through the engine and journal."""

    def __init__(self, sim: SimMachine, state_dir: str) -> None:
        self.sim, self.state_dir = sim, state_dir
        self.host = SimulatedKernel.for_root(sim.root)
        self.journal = Journal.open(state_dir, boot_id(self.host))
        self.changes: list[str] = []

    def set(self, knob_id: str, value: str) -> None:
        knob = make_knob(self.host, knob_id)
        prepare(knob, self.host, self.state_dir)
        result = change(knob, value, self.journal, self.state_dir)
        if result.outcome not in ("applied", "unchanged"):
            log.warning("%s", result)
        elif result.outcome == "applied":
            self.changes.append(f"t={self.sim.clock:g}s {result}")

    def close(self) -> None:
        """Release the journal's lock, so `irqtune --root TREE restore` can take it."""
        self.journal.close()

    def nic(self, name: str, setting: NicSetting, napis: bool = True) -> None:
        self.set(f"net/{name}/coalesce/use-adaptive-rx", "0")
        self.set(f"net/{name}/coalesce/rx-usecs", str(setting.usecs))
        self.set(f"net/{name}/coalesce/rx-max-frames", str(setting.frames))
        if napis:
            self.set(f"net/{name}/napi-defer-hard-irqs", str(setting.defer))
            self.set(f"net/{name}/gro-flush-timeout", str(setting.gro_flush_us * 1000))
            for entry in (e for e in self.sim.irqs if e.device == name):
                self.set(f"napi/{name}/{self.sim.napi_id(entry)}/irq-suspend-timeout", str(setting.suspend_us * 1000))

    def completion(self, nvme: str, mode: str) -> None:
        self.sim.tree.write(f"sys/block/{nvme}n1/irqtune-sim/completion", mode + "\n")
        self.changes.append(f"t={self.sim.clock:g}s {nvme}: completion {mode}")


class Policy:
    name = "defaults"
    findings: tuple[str, ...] = ()  # what an agent reported (findings and advice), each when it first appeared

    def start(self, ctl: Control) -> None:
        """Once, before the first step."""

    def interval(self, ctl: Control, index: int, phase: PhaseSpec, first: bool) -> None:
        """Before every control interval; `first` at the start of a phase."""

    def tick(self, ctl: Control) -> None:
        """Between the parts of an interval stepped in parts (run.py `substeps`): the tree shows the time since."""


def parse_static(spec: str) -> NicSetting:
    text = NAMED_STATIC.get(spec, spec)
    keys = {"rx-usecs": "usecs", "rx-frames": "frames", "defer": "defer", "gro-flush": "gro_flush_us",
            "suspend": "suspend_us"}  # fmt: skip
    values = {"usecs": 8, "frames": 32}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in keys or not value.strip().isdigit():
            raise PolicyError(f"static:{spec}: expected {', '.join(NAMED_STATIC)} or key=value with keys "
                              f"{', '.join(keys)} (whole numbers), got {item!r}")  # fmt: skip
        values[keys[key.strip()]] = int(value)
    return NicSetting(**values)


class Static(Policy):
    def __init__(self, spec: str) -> None:
        self.name, self.setting = f"static:{spec}", parse_static(spec)

    def start(self, ctl: Control) -> None:
        for nic in ctl.sim.sc.nics:
            ctl.nic(nic.name, self.setting)


class Adaptive(Policy):
    def __init__(self, algorithm: str) -> None:
        self.name = self.algorithm = algorithm

    def start(self, ctl: Control) -> None:
        for nic in ctl.sim.sc.nics:
            nic.adaptive = self.algorithm  # which algorithm the simulated driver runs
            ctl.set(f"net/{nic.name}/coalesce/use-adaptive-rx", "1")


class AlwaysPoll(Policy):
    name = "always-poll"

    def start(self, ctl: Control) -> None:
        ctl.set("sysctl/net.core.busy_read", str(ALWAYS_POLL_US))
        for nvme in ctl.sim.sc.nvmes:
            ctl.completion(nvme.name, "poll")


class Oracle(Policy):
    def __init__(self, dynamic: bool) -> None:
        self.name, self.dynamic = ("oracle" if dynamic else "oracle-static"), dynamic
        self.plan = None

    def start(self, ctl: Control) -> None:
        self.plan = plan(ctl.sim, self.dynamic)

    def interval(self, ctl: Control, index: int, phase: PhaseSpec, first: bool) -> None:
        if not first:
            return
        for device, setting in self.plan.phases[index].items():
            if isinstance(setting, NicSetting):
                ctl.nic(device, setting)
            else:
                ctl.completion(device, setting)


class Irqtune(Policy):
    """irqtune's own agent loop (`irqtune run` in tune mode) on the simulated clock: it measures the
    tree with the real parsers, decides, applies through the journal and rolls back what hurt."""

    name = "irqtune"

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config(mode="tune", interval=1.0, limits=Limits(dwell=3.0))
        self.agent: Agent | None = None
        self.findings: list[str] = []
        self._seen: set[tuple] = set()

    def start(self, ctl: Control) -> None:
        for nic in ctl.sim.sc.nics:  # what the operator would write: a NIC's goal and p99 target, the critical CPUs
            if nic.critical or nic.goal or nic.p99_target_us:
                self.config.devices.append(DeviceRule(name=nic.name, goal=nic.effective_goal,
                                                      p99_target_us=nic.p99_target_us,
                                                      cpus=nic.cpus if nic.critical else ""))  # fmt: skip
            if not nic.deferral:  # the operator's bound: no NAPI deferral on it
                self.config.bounds[f"net/{nic.name}/napi-defer-hard-irqs"] = (0, 0)
        for nvme in ctl.sim.sc.nvmes:
            if nvme.goal:
                self.config.devices.append(DeviceRule(name=nvme.name, goal=nvme.goal))
        self.config.cpus.irq_sink = self.config.cpus.irq_sink or ctl.sim.sc.host.irq_sink
        self.agent = Agent(ctl.host, self.config, ctl.state_dir, clock=lambda: ctl.sim.clock, journal=ctl.journal,
                           probes=SimProbes(ctl.sim, ctl.sim.seed).window)  # fmt: skip

    def tick(self, ctl: Control) -> None:
        self.agent.sample()  # the agent's sub-samples, as between its passes on a host (when they are due)

    def interval(self, ctl: Control, index: int, phase: PhaseSpec, first: bool) -> None:
        report = self.agent.run_pass()
        for f in report.findings:
            key = (f.get("code"), f.get("device"), f.get("irq"), f.get("cpu"))
            if key not in self._seen:
                self._seen.add(key)
                self.findings.append(f"t={ctl.sim.clock:g}s {f.get('severity')} {f.get('code')}: {f.get('message')}")
        for d in (*report.decisions, *report.rollbacks):
            if d.outcome in ("applied", "rolled-back"):
                ctl.changes.append(f"t={ctl.sim.clock:g}s {d.knob}: {d.current} -> {d.target} ({d.outcome}: "
                                   f"{d.reason})")  # fmt: skip


def make_policy(spec: str) -> Policy:
    if spec == "defaults":
        return Policy()
    if spec.startswith("static:"):
        return Static(spec[len("static:") :])
    if spec in ("dim", "aim"):
        return Adaptive(spec)
    if spec == "always-poll":
        return AlwaysPoll()
    if spec in ("oracle", "oracle-static"):
        return Oracle(spec == "oracle")
    if spec == "irqtune":
        return Irqtune()
    raise PolicyError(f"unknown policy {spec!r}; expected one of {', '.join(POLICIES)}")
