"""Choose a NIC's interrupt moderation (coalescing and NAPI deferral) by searching the knobs with the model.

For the measured packet rate of the device's busiest queue, the queueing model of docs/physics.md §9
(`model/queue.py`: coalescing window, interrupt cost, NAPI, deferral timer polls) predicts mean latency and
CPU; the setting with the lowest latency + W * CPU wins, W being the goal's price of a core (latency 20 µs,
balanced 100, throughput/efficiency 500). The setting is searched, not picked from a list: rx-usecs,
rx-frames, napi_defer_hard_irqs and gro_flush_timeout on coarse log grids (coalescing alone, deferral alone,
the best of each combined), then a pattern search around the best (steps of 2x down to 1.19x), within the
config's [bounds] and the values the driver takes as a delay, so a bounded optimum is found rather than an
unbounded one clamped (docs/physics.md §10.5). A search costs about 70-130 predictions; it is cached per
rate and cost rounded to 2 % (`SNAP`), and each pass weighs only the best few again at the measured inputs.
The current setting is kept unless the winner is better by more than HYSTERESIS, so noise does not rewrite
the NIC. A device's p99 target (config `p99_target_us`) is a constraint before the price: settings whose
predicted p99 (docs/physics.md §9.6) exceed it rank after every one that meets it; where none meets it, the
lowest p99 is chosen and the reason says so. A bursty window (the agent's sub-samples saw a peak well above the
mean: measure/bursts.py) is weighed over its rate levels rather than at its mean (`forecast_levels`,
docs/physics.md §9.8): latency per packet and CPU over the alternation, and the p99 at the worst level, so the
choice holds up in the bursts. Per-packet and per-interrupt costs are estimated from the host
(softirq time per packet) or taken from the config. When a busy-polling application takes the packets
(TcpExt BusyPollRxPackets), every setting is predicted with that application polling, and IRQ suspension
(irq-suspend-timeout 20 ms with deferral as its safety net, docs/physics.md §2.7; the model sees only
whether it is on) is searched too where the kernel has it: it is chosen only where the model says it pays.
Where the driver gives small rx-usecs values another meaning (Intel's adaptive ITR modes, values it refuses:
model/coalesce.py `DRIVER_USECS`), only values it takes as a delay are searched, and a current adaptive mode
is not predicted at all. Under the min-gap flavour rx-frames means nothing and is left as it is. Pure:
measurements in, a proposal with its reason out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

from ..model.coalesce import FRAMES, GOAL_WEIGHT_US, rx_usecs_mode, target_window, writable_usecs
from ..model.queue import Napi, nic_queue

HYSTERESIS = 0.05  # relative gain needed to change
SUSPEND_US = 20_000  # irq-suspend-timeout where suspension is searched: an application batch (§2.7)
# The search: a coarse grid (steps of 4x) per knob, then pattern search around the best few (2x, 1.41x, 1.19x)
USECS_GRID = (1, 4, 16, 64, 256, 1000)  # rx-usecs, besides 0 (off)
FRAMES_GRID = (4, 16, 64, 256)  # rx-max-frames with a window (1: off)
DEFER_GRID = (1, 4, 16, 64, 256, 1000)  # napi_defer_hard_irqs, besides 0 (off)
GRO_GRID = (2, 8, 32, 128, 512, 1000)  # gro_flush_timeout µs with deferral
RANGES = {  # what the search covers, within the config's [bounds]
    "rx_usecs": (0, 1000), "rx_frames": (1, 256), "defer": (0, 1000), "gro_flush_us": (0, 1000),
    "suspend_us": (0, SUSPEND_US),
}  # fmt: skip
STEPS = (2.0, 2**0.5, 2**0.25)  # refinement ratios
RIVAL = 0.1  # a coarse setting of another kind this close to the best in J is refined too
MAX_SEARCHED = 400  # settings predicted per search at most
KEPT = 3  # the best searched settings choose() weighs at the measured inputs
SNAP = 0.02  # log step the packet rate and cost are rounded to for the search (cached per rounded inputs)


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
             flavour: str = "timer-from-first", busy_polled: bool = False, scale: float = 1.0,
             floor_us: float = 0.0) -> Forecast:  # fmt: skip
    """One queue at `rate` packets/s under `setting`, by the model; `busy_polled`: the consumer is an epoll
    application with prefer_busy_poll. `scale` and `floor_us`: the device's identified timer scale and interrupt
    floor (model/identify.py): the window is `scale` x rx-usecs long, and where the device would interrupt more
    often than once per floor it keeps that gap as Intel's ITR does (the min-gap flavour at the floor)."""
    usecs = setting.rx_usecs * scale  # µs of real delay (a float where the scale is fitted)
    f = _forecast(rate, replace(setting, rx_usecs=usecs), service_us, irq_cost_us, flavour, busy_polled)
    if floor_us and f.irq_rate > 1e6 / floor_us:
        gap = max(usecs, math.ceil(floor_us))
        f = _forecast(rate, replace(setting, rx_usecs=gap, rx_frames=0), service_us, irq_cost_us, "min-gap",
                      busy_polled)  # fmt: skip
    return f


def _forecast(rate: float, setting: Moderation, service_us: float, irq_cost_us: float, flavour: str,
              busy_polled: bool) -> Forecast:  # fmt: skip
    """One run of the queue model."""
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
                    flavour: str = "timer-from-first", busy_polled: bool = False, scale: float = 1.0,
                    floor_us: float = 0.0) -> Forecast:  # fmt: skip
    """One queue whose rate alternates between `levels` ((share of the time, packets/s)) under one setting: mean
    latency per packet, CPU and interrupts over the time, and the p99 of the worst level (a setting must hold up
    in the bursts, not on average); overloaded at any level is overloaded. One level is `forecast` itself."""
    if len(levels) == 1:
        return forecast(levels[0][1], setting, service_us, irq_cost_us, flavour, busy_polled, scale, floor_us)
    parts = [(share, rate, forecast(rate, setting, service_us, irq_cost_us, flavour, busy_polled, scale, floor_us))
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


@dataclass(frozen=True)
class Bounds:
    """The config's [bounds] of one device's moderation knobs, in Moderation's units (µs); None: unbounded."""

    rx_usecs: tuple[int, int] | None = None
    rx_frames: tuple[int, int] | None = None
    defer: tuple[int, int] | None = None
    gro_flush_us: tuple[int, int] | None = None
    suspend_us: tuple[int, int] | None = None

    def holds(self, setting: Moderation) -> bool:
        """Whether every bounded knob of `setting` is within its bounds."""
        return all(b is None or b[0] <= getattr(setting, name) <= b[1]
                   for name, b in vars(self).items())  # fmt: skip


def choose(rate: float, current: Moderation, goal: str, service_us: float, irq_cost_us: float,
           deferral: bool = True, flavour: str = "timer-from-first", queues: int = 1,
           coalescing: bool = True, busy_polled: bool = False, suspension: bool = False,
           driver: str | None = None, p99_target_us: float = 0.0, frames: bool = True,
           bounds: Bounds | None = None, scale: float = 1.0, floor_us: float = 0.0,
           unsure: tuple[str, ...] = (), levels: list[tuple[float, float]] | None = None) -> Choice | None:  # fmt: skip
    """The setting to move to, or None to keep `current`. The setting is device-wide, so its CPU counts
    once per queue (`queues` alike queues) while latency is per packet. `deferral`/`coalescing`/`frames`
    False: the device lacks that knob, so it stays as it is. `busy_polled`: an application polls the
    queues; `suspension`: per-NAPI irq-suspend-timeout can be set (6.13+). `driver`: its rx-usecs rules
    (model/coalesce.py): only values it reads as a delay are searched, and a current adaptive mode, which
    the model cannot predict, is left for the best setting (the agent's verification judges the change).
    `bounds`: the config's, searched within (not clamped after); a current setting outside them is left.
    `p99_target_us` > 0: only settings predicted within it are weighed, the lowest p99 where none is. `scale`,
    `floor_us`: the device's identified timer scale and interrupt floor (see `forecast`). `unsure`: flavours the
    measurements cannot rule out yet (model/identify.py): a setting is weighed at its worst J and p99 among them and
    `flavour`, so an unconfirmed flavour never buys a window that another would make ruinous (a long window under a
    restarting timer); predictions shown are `flavour`'s. `levels`: a bursty window's rate levels of the queue
    ((share of the time, packets/s), their mean `rate`), each setting weighed over them (`forecast_levels`)."""
    weight = GOAL_WEIGHT_US[goal]
    space = _space(current, coalescing, frames, deferral, busy_polled and suspension and deferral, driver,
                   flavour == "min-gap", bounds or Bounds())  # fmt: skip
    problem = Problem(_snap(rate), _snap(service_us), irq_cost_us, flavour, busy_polled, weight, queues,
                      p99_target_us, space, scale, floor_us, tuple(unsure),
                      tuple((round(share, 2), _snap(level)) for share, level in levels or ()))  # fmt: skip
    searched = search(problem)
    candidates = set(searched.best)
    mode = rx_usecs_mode(driver, current.rx_usecs) if coalescing else None
    outside = not (bounds or Bounds()).holds(current)  # the operator's bounds exclude it: moved in whatever J says
    if mode is None and not outside:
        candidates.add(current)
    exact = replace(problem, rate=rate, service_us=service_us, levels=tuple(levels or ()))
    scored = {s: exact.score(s) for s in candidates}
    best, met = _best(scored, p99_target_us)
    now, win = scored.get(current), scored[best]
    polled = "; a busy-polling application takes them" if busy_polled else ""
    hedge = f"; each candidate weighed at its worst under {', '.join(unsure)} until one is identified" if unsure else ""
    costs = (f"({goal}: {weight:g} µs per core; {service_us:.2f} µs per packet, {irq_cost_us:g} µs per interrupt"
             f"{hedge})")  # fmt: skip
    head = (f"{queues} queues, busiest {rate:,.0f} pkt/s{_bursts_note(levels or [(1.0, rate)])}{polled}: "
            f"predicted {win.latency:.1f} µs")  # fmt: skip
    target = _target_note(p99_target_us, met, win, now)
    found = f"; best of {searched.count} settings searched"
    if outside:
        reason = (
            f"{head} and {win.cpu:.2f} CPU{target}{found}; the current setting is outside the config's bounds {costs}"
        )
        return Choice(best, win.latency, win.cpu, reason, win.irq_rate, win.p99)
    if mode is not None:
        reason = (f"{head} and {win.cpu:.2f} CPU{target}{found}; the driver's adaptive mode {current.rx_usecs} "
                  f"({mode}) is not predicted; the measurement after the change decides (rolled back if worse) "
                  f"{costs}")  # fmt: skip
        return Choice(best, win.latency, win.cpu, reason, win.irq_rate, win.p99)
    if best == current or not _worth(now, win, p99_target_us, met):
        return None
    reason = (f"{head} and {win.cpu:.2f} CPU, against {now.latency:.1f} µs and {now.cpu:.2f} now{target}{found} "
              f"{costs}")  # fmt: skip
    return Choice(best, win.latency, win.cpu, reason, win.irq_rate, win.p99)


def _snap(value: float) -> float:
    """`value` rounded to a SNAP log step: inputs that differ by noise share one cached search."""
    return math.exp(round(math.log(value) / SNAP) * SNAP) if value > 0 else value


@dataclass(frozen=True)
class Space:
    """What the search may set: per knob (a Moderation field) the range it varies in, None where the device
    lacks the knob and `fixed`'s value stays; `driver`: whose rx-usecs rules apply; `gap`: the min-gap
    flavour, where rx-frames changes nothing."""

    fixed: Moderation
    ranges: tuple[tuple[str, tuple[int, int] | None], ...]
    driver: str | None
    gap: bool

    def range(self, knob: str) -> tuple[int, int] | None:
        return dict(self.ranges)[knob]

    def fit(self, setting: Moderation) -> Moderation:
        """`setting` with every knob in its range (the knobs the device lacks at their fixed value), rx-usecs
        one the driver takes as a delay; where no such value is in range, 0 (off) if that is, else as it is."""
        values = {}
        for knob, span in self.ranges:
            value = getattr(self.fixed if span is None else setting, knob)
            values[knob] = value if span is None else min(span[1], max(span[0], value))
        usecs, span = values["rx_usecs"], self.range("rx_usecs")
        if span is not None:
            usecs = writable_usecs(self.driver, usecs)
            if not span[0] <= usecs <= span[1]:  # no delay the driver takes in range: off if allowed, else as is
                usecs = 0 if span[0] == 0 else self.fixed.rx_usecs
            values["rx_usecs"] = usecs
        return Moderation(**values)


def _space(current: Moderation, coalescing: bool, frames: bool, deferral: bool, suspension: bool,
           driver: str | None, gap: bool, bounds: Bounds) -> Space:  # fmt: skip
    """The search space: each knob the device has, within the config's bounds or else RANGES (None: not searched);
    IRQ suspension only where it can act (a busy-polling application, 6.13+, deferral as its safety net)."""
    has = {"rx_usecs": coalescing, "rx_frames": coalescing and frames and not gap, "defer": deferral,
           "gro_flush_us": deferral, "suspend_us": suspension}  # fmt: skip
    ranges = []
    for knob, default in RANGES.items():  # the operator's bounds where given (they may reach past ours)
        ranges.append((knob, (getattr(bounds, knob) or default) if has[knob] else None))
    fixed = current if suspension else replace(current, suspend_us=0)  # (rx-frames: nothing to a min-gap window)
    return Space(fixed, tuple(ranges), driver, gap)


@dataclass(frozen=True)
class Problem:
    """One search: a queue at `rate` packets/s, its costs (µs), the model's flavour, the price of a core
    (`weight` µs), the p99 target, and the space. Settings rank by J among those within the target, else by p99."""

    rate: float
    service_us: float
    irq_cost_us: float
    flavour: str
    busy_polled: bool
    weight: float
    queues: int
    target: float
    space: Space
    scale: float = 1.0  # the device's identified timer scale and interrupt floor (model/identify.py)
    floor_us: float = 0.0
    unsure: tuple[str, ...] = ()  # other flavours not ruled out yet: a setting counts at its worst among them
    levels: tuple[tuple[float, float], ...] = ()  # a bursty window's (share, packets/s): weighed over them

    def predict(self, setting: Moderation, flavour: str) -> Forecast:
        if self.levels:
            return forecast_levels(list(self.levels), setting, self.service_us, self.irq_cost_us, flavour,
                                   self.busy_polled, self.scale, self.floor_us)  # fmt: skip
        return forecast(self.rate, setting, self.service_us, self.irq_cost_us, flavour, self.busy_polled, self.scale,
                        self.floor_us)  # fmt: skip

    def score(self, setting: Moderation) -> Score:
        f = self.predict(setting, self.flavour)
        cpu = f.cpu * self.queues
        worst = [self.predict(setting, other) for other in self.unsure]
        cost = max(
            [f.latency_us + self.weight * cpu, *(g.latency_us + self.weight * g.cpu * self.queues for g in worst)]
        )
        return Score(cost, f.latency_us, cpu, f.irq_rate, max([f.p99_us, *(g.p99_us for g in worst)]))

    def rank(self, setting: Moderation, score: Score) -> tuple:
        """Lower is better: within the target by J, else by p99; ties to the lower-latency, fewer-knob setting."""
        if _within(score, self.target):
            return (0, _level(score.cost), *_ties(setting))
        return (1, _level(score.p99), _level(score.cost), *_ties(setting))


@dataclass(frozen=True)
class Searched:
    best: tuple[Moderation, ...]  # the KEPT best, best first
    count: int  # settings predicted


@lru_cache(maxsize=512)  # every pass asks again; loads that differ by noise share a search (SNAP)
def search(problem: Problem) -> Searched:
    """The best settings of the space by the model: a coarse grid of each family (coalescing alone, deferral
    alone, with IRQ suspension, the best of each combined), then pattern search from the best (`_starts`), at
    most MAX_SEARCHED settings predicted. Deterministic."""
    scores: dict[Moderation, Score] = {}

    def ranked() -> list[Moderation]:
        return sorted(scores, key=lambda s: problem.rank(s, scores[s]))

    def family(settings: list[Moderation], keep: int = 2) -> list[Moderation]:
        fitted = list(dict.fromkeys(problem.space.fit(s) for s in settings))
        for s in fitted:
            if s not in scores:
                scores[s] = problem.score(s)
        return sorted(fitted, key=lambda s: problem.rank(s, scores[s]))[:keep]

    space = problem.space
    off = Moderation(0, 1)
    window = target_window(problem.rate, problem.weight, problem.irq_cost_us)
    coalesced = family([off, Moderation(window, FRAMES if window else 1)]
                       + [Moderation(u, f) for u in USECS_GRID for f in _frames(space)])  # fmt: skip
    deferred = family([Moderation(0, 1, d, g) for d in DEFER_GRID for g in GRO_GRID])
    if space.range("suspend_us") is not None:
        deferred += family([Moderation(0, 1, d, g, SUSPEND_US) for d in DEFER_GRID for g in GRO_GRID])
    family([replace(c, defer=d.defer, gro_flush_us=d.gro_flush_us, suspend_us=d.suspend_us)
            for c in coalesced for d in deferred])  # fmt: skip
    for start in _starts(problem, ranked(), scores):
        _refine(problem, start, scores)
    return Searched(tuple(ranked()[:KEPT]), len(scores))


def _kind(s: Moderation) -> tuple[bool, bool]:
    """Interrupts only (with or without a window), deferral, or suspension: where a search may find separate optima."""
    return s.defer > 0 and s.gro_flush_us > 0, s.suspend_us > 0


def _starts(problem: Problem, ranked: list[Moderation], scores: dict[Moderation, Score]) -> list[Moderation]:
    """Where refinement starts: the best coarse setting, and the best of another kind (`_kind`) within RIVAL of
    it in J, as refining may reorder them."""
    best = ranked[0]
    rival = next((s for s in ranked if _kind(s) != _kind(best)), None)
    close = rival is not None and problem.rank(rival, scores[rival])[0] == problem.rank(best, scores[best])[0]
    if close and scores[rival].cost <= (1 + RIVAL) * scores[best].cost:
        return [best, rival]
    return [best]


def _frames(space: Space) -> tuple[int, ...]:
    return FRAMES_GRID if space.range("rx_frames") is not None else (space.fixed.rx_frames,)


def _refine(problem: Problem, start: Moderation, scores: dict[Moderation, Score]) -> None:
    """Pattern search from `start`: move to any better neighbour (each knob in use times r and over r, and the
    deferral's count against its period), for r in STEPS, until none is; every setting predicted lands in `scores`."""
    best = start
    for ratio in STEPS:
        moved = True
        while moved and len(scores) < MAX_SEARCHED:
            moved = False
            for s in _neighbours(best, ratio, problem.space):
                if s not in scores:
                    scores[s] = problem.score(s)
                if problem.rank(s, scores[s]) < problem.rank(best, scores[best]):
                    best, moved = s, True


def _neighbours(s: Moderation, ratio: float, space: Space) -> list[Moderation]:
    """The settings one step of `ratio` away from `s`, in the space: only knobs that act (a window's usecs and
    frames, a deferral's count and period) move; turning one on or off is the coarse grid's part."""
    knobs = []
    if s.rx_usecs > 0 and (s.rx_frames != 1 or space.gap):
        knobs += ["rx_usecs"] + (["rx_frames"] if s.rx_frames > 1 and not space.gap else [])
    if s.defer > 0 and s.gro_flush_us > 0:
        knobs += ["defer", "gro_flush_us"]
    out = []
    for knob in knobs:
        for r in (ratio, 1 / ratio):
            out.append(replace(s, **{knob: _scaled(getattr(s, knob), r)}))
    if s.defer > 0 and s.gro_flush_us > 0:  # the same hold time D·G in shorter or longer periods
        for r in (ratio, 1 / ratio):
            out.append(replace(s, defer=_scaled(s.defer, r), gro_flush_us=_scaled(s.gro_flush_us, 1 / r)))
    fitted = (space.fit(n) for n in out)
    return [n for n in dict.fromkeys(fitted) if n != s]


def _scaled(value: int, ratio: float) -> int:
    """`value` times `ratio` as a whole number, at least one step from `value`, and at least 1."""
    scaled = round(value * ratio)
    if scaled == value:
        scaled += 1 if ratio > 1 else -1
    return max(1, scaled)


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
    """(the lowest J among the settings within the p99 target, True), or where none is within it (the lowest p99,
    False): a target is a constraint, the price of a core only ranks what meets it. Settings within TIE of the
    lowest are equal to the model (deferral long past the last packet, say): the safest of them (`_ties`) wins."""
    feasible = [s for s in scored if _within(scored[s], target)]
    if feasible:
        return min(_close(feasible, lambda s: scored[s].cost), key=_ties), True
    lowest = _close(list(scored), lambda s: scored[s].p99)
    return min(_close(lowest, lambda s: scored[s].cost), key=_ties), False


TIE = 1e-6  # relative: predictions this close are the same to the model


def _close(settings: list[Moderation], value) -> list[Moderation]:
    """The settings whose `value` is within TIE of the lowest."""
    low = min(value(s) for s in settings)
    return [s for s in settings if value(s) == low or value(s) <= low + TIE * abs(low)]


def _level(value: float) -> float:
    """A cost or p99 (µs) to a millionth of a µs, for ranking in the search: ties go to `_ties`."""
    return round(value, 6) if math.isfinite(value) else value


def _ties(s: Moderation) -> tuple[int, ...]:
    """Between settings of equal cost: the lower-latency, fewer-knob one (no suspension, less deferral, ...)."""
    return s.suspend_us, s.defer, s.gro_flush_us, s.rx_usecs, s.rx_frames


def _worth(now: Score, win: Score, target: float, met: bool) -> bool:
    """Whether moving from `now` to `win` pays: out of the target to within it always; else by more than
    HYSTERESIS, in J (or, where no candidate meets the target, in p99). From overloaded to overloaded pays
    nothing: on a CPU-bound queue every candidate is, and rewriting the knobs there only churns them."""
    if met and not _within(now, target):
        return True
    old, new = (now.cost, win.cost) if met else (now.p99, win.p99)
    if not math.isfinite(new):
        return False
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
