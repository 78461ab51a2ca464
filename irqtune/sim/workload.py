"""What one NIC queue does under one phase's load: Poisson, bursty (MMPP) or closed-loop clients.

All three reduce to the closed form (`model.nic_queue`) at one or two arrival rates:
- poisson: the closed form at the offered rate.
- bursty: a two-state MMPP whose states last milliseconds, far longer than an interrupt
  cycle, so each state is quasi-stationary: the result is the time-weighted mix of the two
  rates. A burst above the queue's capacity fills the ring; what the ring cannot hold is
  dropped, and the backlog drains in the quiet state (its wait is added to the burst's latency).
- closed-loop: `clients` requests outstanding per queue, each resubmitted `think_us` after
  its response, so the rate X solves X = clients / (think + T(X)) (T rises with X: bisection).
  This is what lets a coalescing window cost throughput, the feedback DIM relies on.

A bursty load whose bursts last at least two simulation steps is resolved in time instead (`resolves`,
`during`): its bursts are periodic, one every burst_every_ms from the phase's start, and each step runs at
the quiet rate, the burst rate, or the mix of the part of a burst it holds. So the counters read between
steps (the agent's sub-samples) see bursts shorter than a control interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields, replace

from ..model.queue import QueueResult
from .scenario import LoadSpec

Evaluate = Callable[[float], QueueResult]  # arrival rate -> the queue's closed-form result
CLOSED_LOOP_TOLERANCE = 1e-3  # relative width at which the closed-loop rate is found (about 10 evaluations)


def queue_load(load: LoadSpec, queues: int, ring: int, evaluate: Evaluate) -> tuple[float, QueueResult]:
    """(offered packets/s, result) for one queue of a NIC with `queues` queues."""
    if load.arrivals == "closed-loop":
        return closed_loop(load.clients, load.think_us * 1e-6, evaluate)
    rate = load.rate_pps / queues
    if load.arrivals != "bursty":
        return rate, evaluate(rate)
    burst, on = load.burst_pps / queues, load.burst_ms / load.burst_every_ms
    quiet, loud = evaluate(rate), evaluate(burst)
    offered = (1 - on) * rate + on * burst
    if not loud.overloaded:
        return offered, mix([(1 - on, quiet), (on, loud)])
    # the burst exceeds capacity: the ring takes up to `ring` packets, the rest is dropped
    capacity = loud.delivered
    excess = (burst - capacity) * load.burst_ms * 1e-3  # packets per burst beyond capacity
    kept = min(excess, ring)
    spare = max(0.0, capacity - rate) * (load.burst_every_ms - load.burst_ms) * 1e-3
    kept = min(kept, spare) if spare > 0 else 0.0  # a backlog the quiet state cannot drain is lost too
    per_burst_in = burst * load.burst_ms * 1e-3
    delivered_in_burst = (capacity * load.burst_ms * 1e-3 + kept) / (load.burst_ms * 1e-3)
    backlog_wait = kept / 2 / capacity if capacity else 0.0  # the kept packets wait, on average, half the backlog
    drained = replace(loud, irq_rate=0.0, mean_latency=backlog_wait + 1.0 / capacity, delivered=delivered_in_burst)
    result = mix([(1 - on, quiet), (on, drained)])
    dropped = on * (per_burst_in - capacity * load.burst_ms * 1e-3 - kept) / (load.burst_ms * 1e-3)
    return offered, replace(result, delivered=max(0.0, offered - dropped))


def resolves(load: LoadSpec | None, seconds: float) -> bool:
    """Whether steps of `seconds` see this load's bursts one by one: bursty, each burst at least two steps long."""
    return load is not None and load.arrivals == "bursty" and load.burst_ms * 1e-3 >= 2 * seconds - 1e-12


def burst_time(load: LoadSpec, t: float) -> float:
    """Seconds of burst in the first `t` seconds of the phase: periodic bursts, one every burst_every_ms from its
    start, each burst_ms long."""
    every, burst = load.burst_every_ms * 1e-3, load.burst_ms * 1e-3
    periods = math.floor(t / every + 1e-9)
    return periods * burst + min(max(0.0, t - periods * every), burst)


def burst_share(load: LoadSpec, start: float, seconds: float) -> float:
    """The share of [start, start + seconds) (seconds into the phase) that the periodic bursts take."""
    return (burst_time(load, start + seconds) - burst_time(load, start)) / seconds if seconds > 0 else 0.0


def during(load: LoadSpec | None, start: float, seconds: float) -> LoadSpec | None:
    """The load one step of `seconds` from `start` (seconds into the phase) sees: a bursty load its `resolves`
    sees at its quiet rate, at its burst rate, or as one burst of the part it holds; any other load as it is."""
    if load is None or not resolves(load, seconds):
        return load
    on = burst_share(load, start, seconds)
    if on <= 1e-9:
        return replace(load, arrivals="poisson")
    if on >= 1 - 1e-9:
        return replace(load, arrivals="poisson", rate_pps=load.burst_pps)
    return replace(load, burst_ms=on * seconds * 1e3, burst_every_ms=seconds * 1e3)


def closed_loop(clients: int, think: float, evaluate: Evaluate) -> tuple[float, QueueResult]:
    """The rate at which `clients` outstanding requests run: X (think + T(X)) = clients."""
    low, high = 0.0, clients / think if think > 0 else 1e9
    best = evaluate(high)
    if not best.overloaded and high * (think + best.mean_latency) <= clients:
        return high, best
    while high - low > CLOSED_LOOP_TOLERANCE * high:
        mid = (low + high) / 2
        result = evaluate(mid)
        if result.overloaded or mid * (think + result.mean_latency) > clients:
            high = mid
        else:
            low, best = mid, result
    if low == 0.0:
        best = evaluate(low)
    return low, best


def mix(parts: list[tuple[float, QueueResult]]) -> QueueResult:
    """Time-weighted mean of results; latency weighted by delivered packets; packets per IRQ recomputed."""
    total = sum(w for w, _ in parts) or 1.0
    values = {}
    for f in fields(QueueResult):
        items = [(w, getattr(r, f.name)) for w, r in parts]
        if f.name == "overloaded":
            values[f.name] = any(v for w, v in items if w > 0)
        elif f.name == "mean_latency":
            weight = sum(w * r.delivered for w, r in parts)
            finite = all(math.isfinite(r.mean_latency) for w, r in parts if w > 0 and r.delivered > 0)
            values[f.name] = (sum(w * r.delivered * r.mean_latency for w, r in parts if w > 0 and r.delivered > 0)
                              / weight if weight and finite else (math.inf if weight else 0.0))  # fmt: skip
        else:
            values[f.name] = sum(w * v for w, v in items if w > 0) / total
    values["packets_per_irq"] = values["delivered"] / values["irq_rate"] if values["irq_rate"] else math.inf
    return QueueResult(**values)


def mmpp_arrivals(rate: float, burst: float, burst_s: float, every_s: float, packets: int, rng) -> list[float]:
    """`packets` arrival times of the two-state MMPP: quiet at `rate`, bursts at `burst` lasting
    `burst_s` on average, one every `every_s` on average (exponential sojourns)."""
    out: list[float] = []
    t, loud = 0.0, rng.random() < burst_s / every_s
    while len(out) < packets:
        state_rate = burst if loud else rate
        end = t + rng.expovariate(1.0 / (burst_s if loud else every_s - burst_s))
        if state_rate > 0:
            arrival = t + rng.expovariate(state_rate)
            while arrival < end and len(out) < packets:
                out.append(arrival)
                arrival += rng.expovariate(state_rate)
        t, loud = end, not loud
    return out


def interrupt_per_packet(rate: float, service: float, irq_cost: float) -> QueueResult:
    """A receive path without NAPI (Mogul & Ramakrishnan, docs/physics.md §3.2): every packet interrupts, and
    its input half (h + s/2) runs at interrupt priority, above the other half (s/2, protocol and delivery).
    Delivery peaks at 1/(h + s), then falls as input starves delivery, to nothing at 1/(h + s/2): livelock."""
    if rate <= 0:
        return QueueResult(0.0, 0.0, 0.0, 0.0, 0.0)
    first, second = irq_cost + service / 2, service / 2
    interrupt_load = rate * first
    delivered = min(rate, max(0.0, (1.0 - interrupt_load) / second))
    work = rate * (first + second)
    latency = first + second + rate * (first + second) ** 2 / (2 * (1 - work)) if work < 1.0 else math.inf  # M/D/1
    return QueueResult(min(rate, 1.0 / first), 1.0, min(1.0, interrupt_load + delivered * second), latency,
                       delivered, overloaded=work >= 1.0)  # fmt: skip
