"""`irqtune simulate`: run a scenario under a policy on a simulated clock and summarise each phase.

Each control interval (1 s of simulated time) the policy acts on the tree, then the host
steps. Where a bursty load's bursts last long enough to be seen inside an interval, the interval is
stepped in parts (`substeps`: at least 8, each at most half a burst) and the policy looks between
them (`Policy.tick`: the agent's sub-samples). Rates, CPU and mean latency come from the closed form;
latency percentiles from the event simulation of one queue per loaded NIC, sampled every interval
with the settings and load in force then, and pooled over the phase. The tree is rendered under `--tree`, so
irqtune's own commands can be pointed at it with `--root` while or after it runs.
Results are reproducible for a given seed.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

from .events import simulate_queue
from .interference import delays
from .machine import NvmeStep, QueueStep, SimMachine
from .nvme import simulate_nvme
from .objective import cost, nic_weights
from .policy import Control, Policy
from .scenario import OPEN_LOOP_DEPTH, LoadSpec, PhaseSpec, Scenario
from .workload import burst_share, mmpp_arrivals, resolves

SAMPLE_PACKETS = 20_000  # per phase and NIC, spread over its intervals: p99.9 within a few percent
MIN_SAMPLE = 500  # per interval
MIN_SUBSTEPS = 8  # parts of an interval where bursts are resolved: 1/8 of the interval or finer ...
MAX_SUBSTEPS = 64  # ... and no finer than this: bursts shorter than two such parts are mixed within each
WAITS_PER_SAMPLE = 16  # interference waits drawn per sampled packet (`_interfered`): a quarter of one's noise


@dataclass
class Interval:
    t: float  # simulated seconds at the end of the interval
    phase: str
    offered_pps: float
    delivered_pps: float
    irq_rate: float
    cpu: float
    mean_latency_us: float
    settings: dict[str, str]
    overhead_cpu: float = 0.0  # as PhaseResult.overhead_cpu: what the objective prices, per interval
    p99_us: float = 0.0  # of this interval's event-simulation sample alone (a few hundred packets: noisy)
    cost: float = 0.0  # J of this interval, per NIC at its goal's price of a core, summed (objective.py)


@dataclass
class PhaseResult:
    name: str
    seconds: float
    offered_pps: float
    delivered_pps: float
    dropped_pps: float
    irq_rate: float
    cpu: float  # CPUs used by packet processing in softirq and interrupt handling (sum over NIC queues)
    overhead_cpu: float  # the part of cpu spent on interrupts, timer polls and spinning, not on packets
    mean_latency_us: float  # packet-weighted over queues
    p50_us: float  # event simulation, sampled every interval, pooled
    p99_us: float
    p999_us: float
    time_squeeze: float  # per second, all CPUs
    timer_polls: float  # per second: NAPI polls from the deferral hrtimer
    settings: dict  # per NIC at the end of the phase
    nics: dict = field(default_factory=dict)  # device -> offered, delivered, interrupts, CPU, mean latency
    nvme: dict = field(default_factory=dict)  # device -> mode, iops, latency, CPU, interrupts
    rho_max: float = 0.0  # the busiest IRQ CPU's offered load (ρ, may exceed 1): the health goal's scope
    time_squeeze_cpu_max: float = 0.0  # per second on the CPU that squeezes most (the goal is per CPU)
    settled_from: int = 0  # the phase's first interval after the policy's first change in it (else its second)
    settled_p99_us: float = 0.0  # p99 pooled over the intervals from settled_from on (nics/nvme: settled_*)


def run_scenario(scenario: Scenario, tree: str, seed: int = 1, step: float = 1.0, policy: Policy | None = None,
                 state_dir: str | None = None, on_interval: Callable[[Interval], None] | None = None,
                 ) -> tuple[list[PhaseResult], list[Interval], list[str]]:  # fmt: skip
    """Results per phase, the per-interval trace, and the changes the policy made."""
    host = SimMachine(scenario, tree, seed=seed)
    ctl = Control(host, state_dir or os.path.join(tree, ".irqtune-state"))  # in the tree: removed with it
    try:
        return _run(scenario, host, ctl, policy or Policy(), seed, step, on_interval)
    finally:
        ctl.close()


def substeps(scenario: Scenario, step: float) -> int:
    """Parts per control interval: 1 unless some bursty load has bursts of at least two 1/MAX_SUBSTEPS of an
    interval; then enough that each such burst spans two parts, at least MIN_SUBSTEPS."""
    needed = [math.ceil(2 * step / (load.burst_ms * 1e-3) - 1e-9) for phase in scenario.phases
              for load in phase.loads if load.arrivals == "bursty"]  # fmt: skip
    needed = [n for n in needed if n <= MAX_SUBSTEPS]
    return max(MIN_SUBSTEPS, *needed) if needed else 1


def _step(host: SimMachine, phase: PhaseSpec, dt: float, elapsed: float, parts: int, policy: Policy,
          ctl: Control) -> list[QueueStep]:  # fmt: skip
    """One control interval of `dt` seconds, `elapsed` into the phase: one step, or `parts` steps with the policy
    looking between them; what each queue did over the whole interval."""
    if parts == 1:
        return host.step(dt, phase)
    steps = []
    for part in range(parts):
        steps.append(host.step(dt / parts, phase, start=elapsed + part * dt / parts, carry=part < parts - 1))
        if part < parts - 1:
            policy.tick(ctl)
    return [_mean(list(q)) for q in zip(*steps)]


def _mean(parts: list[QueueStep]) -> QueueStep:
    """One queue's equal parts of an interval as one step: rates and CPU averaged, latency per delivered packet,
    the CPU and setting of the last part."""
    n, last = len(parts), parts[-1]
    delivered = sum(q.delivered for q in parts) / n
    served = [q for q in parts if q.delivered > 0]
    latency = sum(q.delivered * q.latency for q in served) / (delivered * n) if served else last.latency
    return replace(last, rate=sum(q.rate for q in parts) / n, irq_rate=sum(q.irq_rate for q in parts) / n,
                   cpu_used=sum(q.cpu_used for q in parts) / n, latency=latency, delivered=delivered,
                   timer_polls=sum(q.timer_polls for q in parts) / n, squeezes=sum(q.squeezes for q in parts) / n,
                   overhead=sum(q.overhead for q in parts) / n)  # fmt: skip


def _run(scenario, host, ctl, policy, seed, step, on_interval):
    policy.start(ctl)
    parts = substeps(scenario, step)
    rng = random.Random(seed * 7919 + 1)
    waits = random.Random(seed * 7919 + 2)  # interference's own stream: the packets' draws stay as without it
    results, trace = [], []
    for index, phase in enumerate(scenario.phases):
        intervals = max(1, math.ceil(phase.seconds / step - 1e-9))
        sample = max(MIN_SAMPLE, SAMPLE_PACKETS // intervals)
        steps, nvme_steps, nic_lat, nvme_lat, elapsed, changed = [], [], [], [], 0.0, None
        while elapsed < phase.seconds - 1e-9:
            dt = min(step, phase.seconds - elapsed)
            before = len(ctl.changes)
            policy.interval(ctl, index, phase, elapsed == 0.0)
            if changed is None and len(ctl.changes) > before:
                changed = len(steps)  # this interval is the first to run with the policy's change
            queues = _step(host, phase, dt, elapsed, parts, policy, ctl)
            steps.append((dt, queues))
            nvme_steps.append((dt, host.last_nvme))
            fresh = _sample_nic(host, phase, queues, sample, rng, waits,
                                (elapsed, dt, dt / parts) if parts > 1 else None)  # fmt: skip
            nic_lat.append(fresh)
            nvme_lat.append(_sample_nvme(host, phase, host.last_nvme, sample // 4, rng, waits))
            elapsed += dt
            record = _interval(host, phase, dt, queues, _percentiles([x for v in fresh.values() for x in v])[1])
            trace.append(record)
            if on_interval:
                on_interval(record)
        settled = changed if changed is not None else min(1, len(steps) - 1)
        results.append(_phase_result(host, phase, index, steps, nvme_steps, nic_lat, nvme_lat, settled))
    return results, trace, ctl.changes


def _interval(host: SimMachine, phase: PhaseSpec, dt: float, queues: list[QueueStep], p99_us: float) -> Interval:
    delivered = sum(q.delivered for q in queues)
    latency = sum(q.delivered * q.latency for q in queues if q.delivered) / delivered if delivered else 0.0
    settings = {q.device: f"{q.setting[0]}us/{q.setting[1]}" for q in queues if q.queue == 0}
    return Interval(host.clock, phase.name, sum(q.rate for q in queues), delivered,
                    sum(q.irq_rate for q in queues), sum(q.cpu_used for q in queues), latency * 1e6,
                    settings, sum(q.overhead for q in queues), p99_us, _interval_cost(host, queues))  # fmt: skip


def _interval_cost(host: SimMachine, queues: list[QueueStep]) -> float:
    """The objective over one interval, device by device as the oracle prices them."""
    total, weights = 0.0, nic_weights(host.sc)
    for device in {q.device for q in queues}:
        mine = [q for q in queues if q.device == device]
        delivered = sum(q.delivered for q in mine)
        latency = sum(q.delivered * q.latency for q in mine if q.delivered) / delivered if delivered else 0.0
        total += cost(latency, sum(q.overhead for q in mine), sum(q.rate for q in mine), delivered, weights[device])
    return total


def _phase_result(host, phase, index, steps, nvme_steps, nic_lat, nvme_lat, settled: int) -> PhaseResult:
    """The phase's numbers over all its intervals, and the settled ones from interval `settled` on."""
    total = sum(dt for dt, _ in steps)
    queues = [(dt, q) for dt, qs in steps for q in qs]
    offered = sum(dt * q.rate for dt, q in queues) / total
    delivered = sum(dt * q.delivered for dt, q in queues) / total
    weight = sum(dt * q.delivered for dt, q in queues if q.delivered)
    mean = sum(dt * q.delivered * q.latency for dt, q in queues if q.delivered) / weight if weight else 0.0
    pooled, calm = _pool(nic_lat), _pool(nic_lat[settled:])
    p50, p99, p999 = _percentiles([x for values in pooled.values() for x in values])
    nics = {nic.name: _per_nic(queues, nic.name, total, pooled.get(nic.name, [])) for nic in host.sc.nics}
    nvme = _nvme_result(host, nvme_steps, total, _pool(nvme_lat))
    _add_settled(host, nics, nvme, steps[settled:], nvme_steps[settled:], calm, _pool(nvme_lat[settled:]))
    return PhaseResult(
        name=phase.name or f"phase{index}",
        seconds=total,
        offered_pps=offered,
        delivered_pps=delivered,
        dropped_pps=max(0.0, offered - delivered),
        irq_rate=sum(dt * q.irq_rate for dt, q in queues) / total,
        cpu=sum(dt * q.cpu_used for dt, q in queues) / total,
        overhead_cpu=sum(dt * q.overhead for dt, q in queues) / total,
        mean_latency_us=mean * 1e6,
        p50_us=p50,
        p99_us=p99,
        p999_us=p999,
        time_squeeze=sum(dt * q.squeezes for dt, q in queues) / total,
        timer_polls=sum(dt * q.timer_polls for dt, q in queues) / total,
        settings={nic.name: _nic_settings(host, nic) for nic in host.sc.nics},
        nics=nics,
        nvme=nvme,
        settled_from=settled,
        settled_p99_us=_percentiles([x for values in calm.values() for x in values])[1],
        **_per_cpu(host, phase, queues, total),
    )


def _pool(per_interval: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Each device's samples over the given intervals, in one list."""
    out: dict[str, list[float]] = {}
    for fresh in per_interval:
        for name, values in fresh.items():
            out.setdefault(name, []).extend(values)
    return out


def _add_settled(host, nics: dict, nvme: dict, steps, nvme_steps, nic_lat, nvme_lat) -> None:
    """Each device's settled p99, CPU and objective (its goal's price of a core): judged after the policy acted,
    so a controller's first interval of a new load does not hide where it settled."""
    total, weights = sum(dt for dt, _ in steps), nic_weights(host.sc)
    queues = [(dt, q) for dt, qs in steps for q in qs]
    for name, whole in nics.items():
        calm = _per_nic(queues, name, total, nic_lat.get(name, []))
        whole.update(settled_p99_us=calm["p99_us"], settled_overhead_cpu=calm["overhead_cpu"],
                     settled_cost=cost(calm["mean_latency_us"] * 1e-6, calm["overhead_cpu"], calm["offered_pps"],
                                       calm["delivered_pps"], weights[name]))  # fmt: skip
    calm_nvme = _nvme_result(host, nvme_steps, total, nvme_lat)
    for name, whole in nvme.items():
        calm = calm_nvme.get(name)
        if calm is None:
            continue
        whole.update(
            settled_p99_us=calm["p99_us"],
            settled_cpu=calm["cpu"],
            settled_cost=cost(calm["mean_latency_us"] * 1e-6, calm["cpu"], calm["iops"], calm["iops"]),
        )


def _per_cpu(host: SimMachine, phase: PhaseSpec, queues: list[tuple[float, QueueStep]], total: float) -> dict:
    """The busiest CPU's ρ and the worst CPU's time_squeeze rate: the health goal is per CPU, at ρ < 0.8.
    ρ prices the offered packets at what each delivered one cost its CPU, interrupts included (a saturated
    queue's exceeds 1; without NAPI the interrupts are most of it; spinning counts, so judge a run
    that does not busy-poll); a bursty load at its burst rate, since
    a burst is what the ring and the softirq budget must absorb."""
    rho: dict[int, float] = {}
    squeeze: dict[int, float] = {}
    queue_count = {nic.name: nic.queues for nic in host.sc.nics}
    for dt, q in queues:
        load = phase.load_for(q.device)
        rate = load.burst_pps / queue_count[q.device] if load and load.arrivals == "bursty" else q.rate
        rho[q.cpu] = rho.get(q.cpu, 0.0) + dt * (q.cpu_used * rate / q.delivered if q.delivered else float(rate > 0))
        squeeze[q.cpu] = squeeze.get(q.cpu, 0.0) + dt * q.squeezes
    return {"rho_max": max(rho.values(), default=0.0) / total,
            "time_squeeze_cpu_max": max(squeeze.values(), default=0.0) / total}  # fmt: skip


def _per_nic(queues: list[tuple[float, QueueStep]], name: str, total: float, samples: list[float]) -> dict:
    mine = [(dt, q) for dt, q in queues if q.device == name]
    delivered = sum(dt * q.delivered for dt, q in mine)
    latency = sum(dt * q.delivered * q.latency for dt, q in mine if q.delivered) / delivered if delivered else 0.0
    return {"offered_pps": sum(dt * q.rate for dt, q in mine) / total, "delivered_pps": delivered / total,
            "irq_rate": sum(dt * q.irq_rate for dt, q in mine) / total, "cpu": sum(dt * q.cpu_used for dt, q in mine)
            / total, "overhead_cpu": sum(dt * q.overhead for dt, q in mine) / total,
            "mean_latency_us": latency * 1e6, "p99_us": _percentiles(samples)[1]}  # fmt: skip


def _nic_settings(host: SimMachine, nic) -> dict:
    s = host.nic_settings(nic)
    napi = next(iter(s.napi.values()), {})
    return {"rx_usecs": s.usecs, "rx_frames": s.frames, "adaptive_rx": s.adaptive,
            "defer_hard_irqs": napi.get("defer_hard_irqs", 0), "gro_flush_timeout": napi.get("gro_flush_timeout", 0),
            "irq_suspend_timeout": napi.get("irq_suspend_timeout", 0), "busy_read": s.sysctl["busy_read"]}  # fmt: skip


def _nvme_result(host: SimMachine, nvme_steps, total: float, latencies: dict[str, list[float]]) -> dict:
    out = {}
    for nvme in host.sc.nvmes:
        rows = [(dt, q) for dt, qs in nvme_steps for q in qs if q.device == nvme.name]
        if not rows:
            continue
        iops = sum(dt * q.iops for dt, q in rows) / total
        p50, p99, p999 = _percentiles(latencies.get(nvme.name, []))
        out[nvme.name] = {
            "mode": rows[-1][1].mode,
            "iops": iops,
            "mean_latency_us": sum(dt * q.iops * q.latency for dt, q in rows) / (iops * total) * 1e6 if iops else 0.0,
            "p50_us": p50, "p99_us": p99, "p999_us": p999,
            "cpu": sum(dt * q.cpu_used for dt, q in rows) / total,
            "irq_rate": sum(dt * q.irq_rate for dt, q in rows) / total,
        }  # fmt: skip
    return out


def _sample_nic(host: SimMachine, phase: PhaseSpec, queues: list[QueueStep], packets: int, rng,
                waits: random.Random, window: tuple[float, float, float] | None = None) -> dict[str, list]:  # fmt: skip
    """Latencies of the busiest queue of each loaded NIC in this interval, by the event simulation, with each
    packet's wait for other devices' work on its CPU (`_interfered`). `window`: (seconds into the phase, seconds,
    part length) of an interval stepped in parts; a load whose bursts the parts resolve is sampled at its quiet
    and at its burst rate, in proportion to the packets each brought."""
    out: dict[str, list[float]] = {}
    for nic in host.sc.nics:
        load = phase.load_for(nic.name)
        mine = [q for q in queues if q.device == nic.name and q.rate > 0]
        if load is None or not mine:
            continue
        q = max(mine, key=lambda q: q.rate)
        if not math.isfinite(q.latency):
            out[nic.name] = [math.inf] * packets
            continue
        entry = next(e for e in host.irqs if e.device == nic.name and e.queue == q.queue)
        settings = host.nic_settings(nic)
        napi = host.napi_for(settings, entry.irq, load)
        flavour = "min-gap" if settings.adaptive and nic.algorithm == "aim" else nic.flavour
        resolved = window is not None and resolves(load, window[2])
        rates = _by_rate(load, nic.queues, burst_share(load, window[0], window[1]), packets) if resolved else [
            (q.rate, packets)]  # fmt: skip
        out[nic.name] = []
        for rate, count in rates:
            arrivals = None
            if load.arrivals == "bursty" and not resolved:
                arrivals = mmpp_arrivals(load.rate_pps / nic.queues, load.burst_pps / nic.queues,
                                         load.burst_ms * 1e-3, load.burst_every_ms * 1e-3, count, rng)  # fmt: skip
            result = simulate_queue(rate, host.service_time(nic, entry), nic.irq_cost_us * 1e-6,
                                    q.setting[0] * nic.timer_scale * 1e-6, q.setting[1], packets=count,
                                    seed=rng.getrandbits(32), flavour=flavour, napi=napi, arrivals=arrivals,
                                    ring=nic.ring, samples=True)  # fmt: skip
            out[nic.name] += _interfered(list(result.samples), [q], waits)
    return out


def _by_rate(load: LoadSpec, queues: int, on: float, packets: int) -> list[tuple[float, int]]:
    """(packets/s of a queue, packets to sample) for the quiet and the burst part of an interval whose share
    `on` is burst: each part's sample in proportion to the packets it brought."""
    quiet, loud = load.rate_pps / queues, load.burst_pps / queues
    brought = on * loud + (1 - on) * quiet
    in_burst = round(packets * on * loud / brought) if brought > 0 else 0
    return [(rate, n) for rate, n in ((quiet, packets - in_burst), (loud, in_burst)) if rate > 0 and n > 0]


def _interfered(samples: list[float], steps: list, waits: random.Random) -> list[float]:
    """`samples` with each arrival's wait for other devices' work on its CPU added (interference.py), for one of
    `steps` (the sampled device's queues) in turn. Each sample is paired with WAITS_PER_SAMPLE waits and the sums
    thinned back to one per sample by rank, so the result follows the sum's distribution without the noise of
    one draw per packet. `waits` is a stream of its own: arrivals and service are drawn as without the neighbour
    (common random numbers)."""
    if not any(s.interference > 0 for s in steps):
        return samples
    sums: list[float] = []
    for k, step in enumerate(steps):
        mine = samples[k :: len(steps)]
        drawn = delays(step.interference, step.shared, len(mine) * WAITS_PER_SAMPLE, waits)
        sums += [x + d for i, x in enumerate(mine) for d in drawn[i * WAITS_PER_SAMPLE : (i + 1) * WAITS_PER_SAMPLE]]
    sums.sort()
    return [sums[i * WAITS_PER_SAMPLE + WAITS_PER_SAMPLE // 2] for i in range(len(samples))]


def _sample_nvme(host: SimMachine, phase: PhaseSpec, steps: list[NvmeStep], ios: int, rng,
                 waits: random.Random) -> dict[str, list[float]]:  # fmt: skip
    out = {}
    for nvme in host.sc.nvmes:
        load = phase.load_for(nvme.name)
        if load is None or not steps:
            continue
        mode = host.completion_mode(nvme)
        result = simulate_nvme(mode, host.nvme_media(nvme), iodepth=load.iodepth or OPEN_LOOP_DEPTH,
                           rate=load.iops / nvme.queues,
                               ios=max(ios, 200), seed=rng.getrandbits(32), cstate=nvme.cstate_us * 1e-6,
                               samples=True)  # fmt: skip
        out[nvme.name] = _interfered(list(result.samples), [q for q in steps if q.device == nvme.name], waits)
    return out


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    if not samples:
        return 0.0, 0.0, 0.0
    ordered = sorted(samples)
    return tuple(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1e6 for p in (0.5, 0.99, 0.999))


def to_json(results: list[PhaseResult], seed: int, policy: str = "defaults", trace: list[Interval] | None = None,
            changes: list[str] | None = None) -> dict:  # fmt: skip
    out = {"schema": 2, "seed": seed, "policy": policy, "phases": [asdict(r) for r in results]}
    if trace is not None:
        out["intervals"] = [asdict(i) for i in trace]
    if changes is not None:
        out["changes"] = changes
    return out
