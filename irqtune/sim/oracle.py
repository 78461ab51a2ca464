"""The oracle (docs/physics.md §10.2): the best static setting by grid search, and the dynamic oracle by DP.

For every device and phase the closed form prices each setting of a grid with the
objective; devices are independent in the model, so each is optimised on its own.
- best static: argmin over the grid of Σ_phases seconds × cost.
- dynamic oracle: the cheapest sequence of settings over the phases (Viterbi), paying
  SWITCH_COST for each change; it knows the future, so it bounds any controller.
The oracle knows the offered load of every phase, which no real controller does.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.coalesce import GOAL_WEIGHT_US
from .kernel import kernel_at_least
from .machine import NicSettings, SimMachine
from .nvme import nvme_queue
from .objective import cost
from .scenario import OPEN_LOOP_DEPTH, NicSpec, NvmeSpec, PhaseSpec

SWITCH_COST = 1.0  # µs·s: enough to keep equal-cost settings from flapping


@dataclass(frozen=True)
class NicSetting:
    usecs: int = 8
    frames: int = 32
    defer: int = 0
    gro_flush_us: int = 0
    suspend_us: int = 0

    def __str__(self) -> str:
        text = f"rx-usecs={self.usecs},rx-frames={self.frames}"
        if self.defer or self.gro_flush_us:
            text += f",defer={self.defer},gro-flush={self.gro_flush_us}"
        return text + (f",suspend={self.suspend_us}" if self.suspend_us else "")


COALESCE = [(0, 1)] + [(u, f) for u in (2, 4, 8, 16, 32, 64, 128, 256) for f in (0, 8, 32, 128)]
DEFERRAL = [(0, 0), (2, 20), (10, 20), (100, 10), (100, 20), (100, 50), (100, 200)]
SUSPEND_US = 20_000  # Karsten & Damato's suspend20 setting (docs/physics.md §2.7)


def nic_grid(kernel: str, busy_polling_app: bool) -> list[NicSetting]:
    grid = [NicSetting(u, f, d, g) for u, f in COALESCE for d, g in DEFERRAL]
    if busy_polling_app and kernel_at_least(kernel, 6, 13):  # irq-suspend-timeout is 6.13 and needs such an app
        grid += [NicSetting(u, f, 100, g, SUSPEND_US) for u, f in COALESCE for g in (10, 20, 50)]
    return grid


def nic_cost(sim: SimMachine, nic: NicSpec, phase: PhaseSpec, setting: NicSetting) -> float:
    """The objective for one NIC in one phase at one setting (closed form, no adaptive-rx)."""
    load = phase.load_for(nic.name)
    if load is None:
        return 0.0
    entries = [e for e in sim.irqs if e.device == nic.name]
    napi = {"defer_hard_irqs": setting.defer, "gro_flush_timeout": setting.gro_flush_us * 1000,
            "irq_suspend_timeout": setting.suspend_us * 1000}  # fmt: skip
    settings = NicSettings(setting.usecs, setting.frames, False, {e.irq: napi for e in entries},
                           {"netdev_budget": 300, "netdev_budget_usecs": 2000, "busy_read": 0})  # fmt: skip
    per_queue, demand = [], {}
    for entry in entries:
        rate, r = sim.queue_evaluator(nic, entry, load, settings)(setting.usecs, setting.frames)
        cpu = sim.effective_cpu(entry)
        demand[cpu] = demand.get(cpu, 0.0) + r.cpu
        per_queue.append((cpu, rate, r, sim.service_time(nic, entry)))
    offered = delivered = cpus = weighted = 0.0
    for cpu, rate, r, service in per_queue:
        got = min(rate, r.delivered)
        if demand[cpu] > 1.0:  # queues sharing a saturated CPU, as the host steps them: no bound on latency
            got, latency, overhead = got / demand[cpu], float("inf"), 0.0
        else:
            latency, overhead = r.mean_latency, max(0.0, r.cpu - got * service)
        offered, delivered, cpus = offered + rate, delivered + got, cpus + overhead
        weighted += got * latency
    return cost(weighted / delivered if delivered else 0.0, cpus, offered, delivered,
                GOAL_WEIGHT_US[nic.effective_goal])  # fmt: skip


def nvme_cost(sim: SimMachine, nvme: NvmeSpec, phase: PhaseSpec, mode: str) -> float:
    load = phase.load_for(nvme.name)
    if load is None:
        return 0.0
    r = nvme_queue(mode, sim.nvme_media(nvme), iodepth=load.iodepth or OPEN_LOOP_DEPTH,
                           rate=load.iops / nvme.queues,
                   cstate=nvme.cstate_us * 1e-6)  # fmt: skip
    iops = r.iops * nvme.queues
    return cost(r.mean_latency, r.cpu * nvme.queues, iops, iops, GOAL_WEIGHT_US[nvme.effective_goal])


def choose(costs: list[list[float]], seconds: list[float], dynamic: bool) -> list[int]:
    """Indices of the chosen setting per phase: one for all (static) or Viterbi with SWITCH_COST."""
    n = len(costs[0])
    if not dynamic:
        totals = [sum(s * c[i] for s, c in zip(seconds, costs)) for i in range(n)]
        best = min(range(n), key=totals.__getitem__)
        return [best] * len(costs)
    total, back = [seconds[0] * c for c in costs[0]], []
    for s, row in zip(seconds[1:], costs[1:]):
        stay_best = min(range(n), key=total.__getitem__)
        prev, step = [], []
        for i in range(n):
            j = i if total[i] <= total[stay_best] + SWITCH_COST else stay_best
            prev.append(j)
            step.append(total[j] + (SWITCH_COST if j != i else 0.0) + s * row[i])
        total, back = step, [*back, prev]
    path = [min(range(n), key=total.__getitem__)]
    for prev in reversed(back):
        path.append(prev[path[-1]])
    return path[::-1]


@dataclass
class OraclePlan:
    """The settings per phase: NIC name -> setting, NVMe name -> completion mode."""

    phases: list[dict[str, NicSetting | str]]


def plan(sim: SimMachine, dynamic: bool) -> OraclePlan:
    phases = sim.sc.phases
    seconds = [p.seconds for p in phases]
    chosen: list[dict[str, NicSetting | str]] = [{} for _ in phases]
    for nic in sim.sc.nics:
        busy_app = any(load.app_busy_poll for p in phases for load in p.loads if load.device == nic.name)
        grid = [s for s in nic_grid(sim.sc.host.kernel, busy_app) if nic.deferral or not (s.defer or s.gro_flush_us)]
        costs = [[nic_cost(sim, nic, phase, s) for s in grid] for phase in phases]
        for p, i in enumerate(choose(costs, seconds, dynamic)):
            chosen[p][nic.name] = grid[i]
    for nvme in sim.sc.nvmes:
        modes = ("irq", "poll", "hybrid")
        costs = [[nvme_cost(sim, nvme, phase, m) for m in modes] for phase in phases]
        for p, i in enumerate(choose(costs, seconds, dynamic)):
            chosen[p][nvme.name] = modes[i]
    return OraclePlan(chosen)
