"""Choose a NIC's interrupt moderation (coalescing and NAPI deferral) by predicting each candidate.

For the measured packet rate of the device's busiest queue, the queueing model of
docs/physics.md §9 (`model/queue.py`: coalescing window, interrupt cost, NAPI, deferral timer
polls) predicts mean latency and CPU for a handful of candidates; the one with the lowest
latency + W * CPU wins, W being the goal's price of a core (latency 20 µs, balanced 100,
throughput/efficiency 500). The current setting is kept unless the winner is better by
more than HYSTERESIS, so noise does not rewrite the NIC. A device's p99 target (config
`p99_target_us`) is a constraint before the price: candidates whose predicted p99 (docs/physics.md §9.6)
exceeds it are not weighed; where none meets it, the one with the lowest p99 is chosen and the reason says so.
A bursty window (the agent's sub-samples saw a peak well above the mean: measure/bursts.py) is weighed
over its rate levels rather than at its mean (`forecast_levels`, docs/physics.md §9.7): latency per packet and
CPU over the alternation, and the p99 at the worst level, so the choice holds up in the bursts.
Per-packet and per-interrupt costs are estimated from the host (softirq time per packet) or taken from the
config. When a busy-polling application takes the packets (TcpExt BusyPollRxPackets), every candidate is
predicted with that application polling, and IRQ suspension (irq-suspend-timeout 20 ms with
deferral as its safety net, docs/physics.md §2.7) is one more candidate where the kernel has it:
suspension is chosen only where the model says it pays. Where the driver gives small rx-usecs values
another meaning (Intel's adaptive ITR modes, values it refuses: model/coalesce.py `DRIVER_USECS`), every
candidate's rx-usecs is one it takes as a delay, and a current adaptive mode is not predicted at all.
Pure: measurements in, a proposal with its reason out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..model.coalesce import FRAMES, GOAL_WEIGHT_US, rx_usecs_mode, target_window, writable_usecs
from ..model.queue import Napi, nic_queue

HYSTERESIS = 0.05  # relative gain needed to change
CANDIDATES = [  # rx-usecs, rx-frames, napi_defer_hard_irqs, gro_flush_timeout µs
    (0, 1, 0, 0), (8, 32, 0, 0), (16, 64, 0, 0), (32, 128, 0, 0), (64, 128, 0, 0),
    (0, 1, 10, 20), (0, 1, 100, 20), (0, 1, 100, 50),
]  # fmt: skip
SUSPEND_US = 20_000  # irq-suspend-timeout of the suspension candidates: an application batch (§2.7)
SUSPENSION = [(0, 1, 100, 10), (0, 1, 100, 20), (8, 32, 100, 20)]  # with suspension: deferral as the safety net


@dataclass(frozen=True)
class Moderation:
    rx_usecs: int
    rx_frames: int
    defer: int = 0
    gro_flush_us: int = 0
    suspend_us: int = 0  # irq-suspend-timeout; acts only while a busy-polling application is served


@dataclass(frozen=True)
class Choice:
    setting: Moderation
    predicted_latency_us: float
    predicted_cpu: float  # all `queues` together
    reason: str
    predicted_irq_rate: float = 0.0  # interrupts/s of the busiest queue: what the agent compares with the measured
    predicted_p99_us: float = 0.0  # the upper p99 estimate (docs/physics.md §9.6)


@dataclass(frozen=True)
class Forecast:
    latency_us: float  # mean, per packet
    cpu: float  # interrupts, polls and spinning: the overhead, not the packets' own processing
    irq_rate: float  # interrupts per second on the queue
    p99_us: float = 0.0  # an upper estimate of the 99th percentile latency (docs/physics.md §9.6)


def forecast(rate: float, setting: Moderation, service_us: float, irq_cost_us: float,
             flavour: str = "timer-from-first", busy_polled: bool = False) -> Forecast:  # fmt: skip
    """One queue at `rate` packets/s under `setting`, by one run of the model; `busy_polled`: the consumer is
    an epoll application with prefer_busy_poll."""
    napi = None
    if setting.defer or busy_polled:
        napi = Napi(defer=setting.defer, gro_flush=setting.gro_flush_us * 1e-6, suspend=setting.suspend_us * 1e-6,
                    app_busy_poll=busy_polled)  # fmt: skip
    r = nic_queue(rate, service_us * 1e-6, irq_cost_us * 1e-6, setting.rx_usecs * 1e-6, setting.rx_frames, flavour,
                  napi=napi)  # fmt: skip
    if r.overloaded:
        return Forecast(math.inf, 1.0, r.irq_rate, math.inf)
    return Forecast(r.mean_latency * 1e6, max(0.0, r.cpu - rate * service_us * 1e-6), r.irq_rate, r.p99_latency * 1e6)


def forecast_levels(levels: list[tuple[float, float]], setting: Moderation, service_us: float, irq_cost_us: float,
                    flavour: str = "timer-from-first", busy_polled: bool = False) -> Forecast:  # fmt: skip
    """One queue whose rate alternates between `levels` ((share of the time, packets/s)) under one setting: mean
    latency per packet, CPU and interrupts over the time, and the p99 of the worst level (a setting must hold up
    in the bursts, not on average); overloaded at any level is overloaded. One level is `forecast` itself."""
    if len(levels) == 1:
        return forecast(levels[0][1], setting, service_us, irq_cost_us, flavour, busy_polled)
    parts = [(share, rate, forecast(rate, setting, service_us, irq_cost_us, flavour, busy_polled))
             for share, rate in levels]  # fmt: skip
    irq_rate = sum(share * f.irq_rate for share, _, f in parts)
    if any(not math.isfinite(f.latency_us) for _, _, f in parts):
        return Forecast(math.inf, 1.0, irq_rate, math.inf)
    packets = sum(share * rate for share, rate, _ in parts)
    latency = sum(share * rate * f.latency_us for share, rate, f in parts) / packets if packets else 0.0
    return Forecast(latency, sum(share * f.cpu for share, _, f in parts), irq_rate,
                    max(f.p99_us for _, rate, f in parts if rate > 0) if packets else 0.0)  # fmt: skip


def predict(rate: float, setting: Moderation, service_us: float, irq_cost_us: float,
            flavour: str = "timer-from-first", busy_polled: bool = False) -> tuple[float, float]:  # fmt: skip
    """(mean latency µs, CPU overhead) of one queue: `forecast` without the interrupt rate."""
    f = forecast(rate, setting, service_us, irq_cost_us, flavour, busy_polled)
    return f.latency_us, f.cpu


def choose(rate: float, current: Moderation, goal: str, service_us: float, irq_cost_us: float,
           deferral: bool = True, flavour: str = "timer-from-first", queues: int = 1,
           coalescing: bool = True, busy_polled: bool = False, suspension: bool = False,
           driver: str | None = None, p99_target_us: float = 0.0,
           levels: list[tuple[float, float]] | None = None) -> Choice | None:  # fmt: skip
    """The candidate to move to, or None to keep `current`. The setting is device-wide, so its CPU counts
    once per queue (`queues` alike queues) while latency is per packet. `deferral`/`coalescing` False: the
    device cannot do that, so only candidates without it are weighed. `busy_polled`: an application polls
    the queues; `suspension`: per-NAPI irq-suspend-timeout can be set (6.13+). `driver`: its rx-usecs rules
    (model/coalesce.py): candidates only take values it reads as a delay, and a current adaptive mode, which
    the model cannot predict, is left for the best candidate (the agent's verification judges the change).
    `p99_target_us` > 0: only candidates predicted within it are weighed, the lowest p99 where none is.
    `levels`: a bursty window's rate levels of the queue ((share of the time, packets/s), their mean `rate`),
    each candidate weighed over them (`forecast_levels`), the window for the peak a candidate too."""
    weight = GOAL_WEIGHT_US[goal]
    levels = levels or [(1.0, rate)]
    usable = [c for c in CANDIDATES if (deferral or not c[2]) and (coalescing or c[:2] == (0, 1))]
    candidates = {Moderation(*c) for c in usable}
    if coalescing:
        for level in {rate, max(r for _, r in levels)}:
            window = target_window(level, weight, irq_cost_us)
            candidates.add(Moderation(window, FRAMES if window else 1))
    if busy_polled and suspension and deferral:
        candidates |= {Moderation(*c, SUSPEND_US) for c in SUSPENSION if coalescing or c[:2] == (0, 1)}
    candidates = {replace(c, rx_usecs=writable_usecs(driver, c.rx_usecs)) for c in candidates}
    mode = rx_usecs_mode(driver, current.rx_usecs) if coalescing else None
    if mode is None:
        candidates.add(current)

    def cost(setting: Moderation) -> Score:
        f = forecast_levels(levels, setting, service_us, irq_cost_us, flavour, busy_polled)
        return Score(f.latency_us + weight * f.cpu * queues, f.latency_us, f.cpu * queues, f.irq_rate, f.p99_us)

    scored = {s: cost(s) for s in candidates}
    best, met = _best(scored, p99_target_us)
    now, win = scored.get(current), scored[best]
    polled = "; a busy-polling application takes them" if busy_polled else ""
    costs = f"({goal}: {weight:g} µs per core; {service_us:.2f} µs per packet, {irq_cost_us:g} µs per interrupt)"
    head = f"{queues} queues, busiest {rate:,.0f} pkt/s{_bursts_note(levels)}{polled}: predicted {win.latency:.1f} µs"
    target = _target_note(p99_target_us, met, win, now)
    if mode is not None:
        reason = (f"{head} and {win.cpu:.2f} CPU{target}; the driver's adaptive mode {current.rx_usecs} ({mode}) "
                  f"is not predicted; the measurement after the change decides (rolled back if worse) "
                  f"{costs}")  # fmt: skip
        return Choice(best, win.latency, win.cpu, reason, win.irq_rate, win.p99)
    if best == current or not _worth(now, win, p99_target_us, met):
        return None
    reason = (f"{head} and {win.cpu:.2f} CPU, against {now.latency:.1f} µs and {now.cpu:.2f} now{target} "
              f"{costs}")  # fmt: skip
    return Choice(best, win.latency, win.cpu, reason, win.irq_rate, win.p99)


@dataclass(frozen=True)
class Score:
    """One candidate as choose() weighs it: J (µs), mean latency µs, CPU (all queues), interrupts/s, p99 µs."""

    cost: float
    latency: float
    cpu: float
    irq_rate: float
    p99: float


def _within(score: Score, target: float) -> bool:
    return not target or score.p99 <= target


def _best(scored: dict[Moderation, Score], target: float) -> tuple[Moderation, bool]:
    """(the lowest J among the candidates within the p99 target, True), or where none is within it
    (the lowest p99, False): a target is a constraint, the price of a core only ranks what meets it."""
    feasible = [s for s in scored if _within(scored[s], target)]
    if feasible:
        return min(feasible, key=lambda s: (scored[s].cost, s.suspend_us, s.defer, s.rx_usecs)), True
    return min(scored, key=lambda s: (scored[s].p99, scored[s].cost, s.suspend_us, s.defer, s.rx_usecs)), False


def _worth(now: Score, win: Score, target: float, met: bool) -> bool:
    """Whether moving from `now` to `win` pays: out of the target to within it always; else by more than
    HYSTERESIS, in J (or, where no candidate meets the target, in p99)."""
    if met and not _within(now, target):
        return True
    old, new = (now.cost, win.cost) if met else (now.p99, win.p99)
    return not math.isfinite(old) or old - new > HYSTERESIS * old


def _bursts_note(levels: list[tuple[float, float]]) -> str:
    """The reason's word on a bursty window: its peak level and how much of the time it took."""
    if len(levels) == 1:
        return ""
    share, peak = max(levels, key=lambda level: level[1])
    return f" on average, bursts of {peak:,.0f} pkt/s {share:.0%} of the time (weighed level by level)"


def _target_note(target: float, met: bool, win: Score, now: Score | None) -> str:
    """The reason's word on the p99 target: met, or that no candidate meets it, with the numbers."""
    if not target:
        return ""
    if met:
        was = f" (now {now.p99:.1f} µs)" if now is not None else ""
        return f"; p99 {win.p99:.1f} µs within the {target:g} µs target{was}"
    was = f", now {now.p99:.1f} µs" if now is not None else ""
    return (
        f"; the p99 target of {target:g} µs cannot be met: the lowest predicted p99 is {win.p99:.1f} µs{was}, "
        f"so the lowest-p99 setting is taken"
    )


LOWER_IS_SAFER = ("/coalesce/rx-usecs", "/coalesce/rx-max-frames", "/napi-defer-hard-irqs", "/gro-flush-timeout",
                  "/irq-suspend-timeout")  # fmt: skip


def safer(knob: str, a: str, b: str) -> str | None:
    """Of two values a flapping moderation knob alternates between, the one to freeze it at: the smaller, the
    lower-latency one (a shorter coalescing window, fewer deferred polls, interrupts back sooner), which at
    worst costs CPU in the bursts where the larger would add delay to every packet between them. None for
    any other knob (placement, budget): no value is safer by itself, it stays where it is."""
    if not knob.endswith(LOWER_IS_SAFER) or not (a.isdigit() and b.isdigit()):
        return None
    return min(a, b, key=int)
