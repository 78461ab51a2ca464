"""Closed form of one NIC RX queue with the NAPI knobs (docs/physics.md §2.1-2.7, §9.2) and Intel's min-gap ITR.

The end of a poll that found packets (the ring just ran empty, time e) is a regeneration point:
what follows depends only on the next arrivals (Poisson). The first packet arrives Y ~ Exp(λ) later
and is picked up by one of (checked in this order):

    spin    Y < b          a blocked reader spinning `busy_poll` = b takes it at once: no overhead, CPU += Y
    timer   Y ≤ D·P        deferral (D = defer > 0 and G = gro_flush > 0): timer polls every P = G + c_t
                           (each costs c_t and sees the ring at its end); the k-th, at kP, takes it (k = ⌈Y/P⌉)
    irq     otherwise      after D empty timer polls the IRQ is re-armed; the coalescing window opens
                           at Y (any flavour), the IRQ costs h

The packets found then start an exhaustive busy period (M/D/1, started by the work o + N0·s, o = h
for an IRQ, 0 otherwise), which ends at the next regeneration point. Renewal reward over the cycle
gives rates, CPU and the mean latency exactly (deterministic s, as in model.py). Modelling choices:

* defer = 0 with gro_flush > 0: the IRQ is re-armed at once and GRO holding is not modelled
  (it holds only TCP segments of flows being merged; small-packet traffic sees no delay).
* busy poll: the reader blocks when the ring runs empty and spins b; a packet it takes does not
  raise the IRQ (the spinner owns the NAPI) and costs no h and no wake-up.
* IRQ suspension (suspend > 0 with app_busy_poll, and deferral on, else it is base: §2.7 FAQ):
  the application's epoll loop polls at the end of each batch, so a busy period runs in the app,
  not in softirq (no time_squeeze, no ksoftirqd); the poll that comes back empty costs one more
  c_t and hands back to deferral. With one server (s includes the app) batch-by-batch pickup has
  the same departures as exhaustive NAPI, so at moderate load suspend ≈ defer with a little more
  CPU (Karsten/Damato 200K row); near saturation base/defer busy periods outlast __do_softirq's
  limits and hand packets to ksoftirqd (+1.5 ms each) while suspension stays fast (1000K row).
* budget: a softirq busy period of P packets runs ⌈P/B⌉ net_rx_action rounds (B = min(budget,
  budget_usecs in jiffies / s)), each but the last a time_squeeze; packets past min(10·B, 2 ms / s)
  go to ksoftirqd. These need the tail of P, computed from Takács' busy-period law
  P[K = k | x] = x/(x+ks)·Pois(λ(x+ks); k) with the packets found at pickup approximated by at most
  five points (the only approximation for the timer flavours).

Min-gap (rx-usecs U = least time between IRQs, rx-frames ignored) is not regenerative at e: the
next IRQ fires at max(first packet, τ + U) where τ was the last one. Without spin/deferral it is a
Markov chain on N0 = packets found at the IRQ: the busy period serves m ≥ N0 packets (Takács),
a = (U − h − m·s)⁺ of the gap is left after it, and N0' = max(1, Pois(λa)) (exact). When a is
never clipped (ρ < 0.4, λa large) E[N0] and Var[N0] solve two linear equations; otherwise the
stationary law is iterated, on bins of ~√(λU)/3 packets when λU > 36 (0.5-30 ms, memoised).
With deferral the IRQ is re-armed D·P after the last poll: if that covers U the window is never
open (exact); otherwise, and with busy polling, the spin/timer cycles between two IRQs are
summed as 0 or an exponential of their mean (Rényi) — an approximation (within ~10 %).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate

from .queue import KSOFTIRQD_DELAY, Napi, QueueResult, _poisson_pmf_terms, _restart_window, _window, softirq_limits

Pmf = list[tuple[int, float]]  # (packets found at pickup, probability)


@dataclass
class _Sums:
    """Expectations over one cycle, summed over the ways its first packet is picked up."""

    t: float = 0.0  # from the end of the last busy period to the pickup
    wait: float = 0.0  # sojourn area before the pickup
    n0: float = 0.0  # packets found at the pickup
    n02: float = 0.0
    init: float = 0.0  # setup o before the first of them, times their number
    x: float = 0.0  # work that starts the busy period, o + N0·s
    x2: float = 0.0
    irqs: float = 0.0
    timers: float = 0.0
    spin: float = 0.0
    over: float = 0.0  # CPU beyond s per packet, spinning excluded
    s: float = 0.0  # per-packet service
    softirq: list[tuple[float, float, Pmf]] = field(default_factory=list)  # (weight, o, N0 law) of softirq pickups

    def add(self, p: float, t: float, wait: float, n0: float, n02: float, o: float) -> None:
        """One pickup case: probability p and its E[·; case] (t, wait, n0, n02 already weighted by p)."""
        s = self.s
        self.t, self.wait, self.n0, self.n02 = self.t + t, self.wait + wait, self.n0 + n0, self.n02 + n02
        self.init += o * n0
        self.x += o * p + s * n0
        self.x2 += o * o * p + 2 * o * s * n0 + s * s * n02


def napi_queue(lam: float, s: float, h: float, usecs: float, frames: int, flavour: str, napi: Napi | None
               ) -> QueueResult:  # fmt: skip
    """The queue with `napi` knobs (None: none, and no budget accounting); ρ = λs < 1 is checked by the caller."""
    budgeted = napi is not None
    napi = napi or Napi()
    defer = napi.defer if napi.defer > 0 and napi.gro_flush > 0 else 0
    suspend = bool(defer and napi.suspend > 0 and napi.app_busy_poll)
    period, b, c = napi.gro_flush + napi.timer_cost, napi.busy_poll, napi.timer_cost
    sums = _Sums(s=s)
    _spin_case(sums, lam, b, defer, period, c)
    _timer_cases(sums, lam, b, defer, period, c)
    _irq_case(sums, lam, s, h, usecs, frames, flavour, max(b, defer * period), defer, c, b)
    if suspend:
        sums.over += c  # the app's empty poll at the end of every busy period
    return _result(sums, lam, s, napi, suspend, budgeted)


def _spin_case(sums: _Sums, lam: float, b: float, defer: int, period: float, c: float) -> None:
    if b <= 0:
        return
    p = -math.expm1(-lam * b)
    t = p / lam - b * math.exp(-lam * b)  # E[Y; Y < b]
    sums.add(p, t, 0.0, p, p, 0.0)
    sums.spin += t
    empties = sum(max(0.0, math.exp(-lam * k * period) - math.exp(-lam * b)) for k in range(1, defer + 1)
                  if k * period < b)  # fmt: skip
    sums.timers += empties
    sums.over += c * empties


def _f1(z: float) -> float:
    """z - 1 + e^{-z}, accurate for small z."""
    return z * z / 2 * (1 - z / 3 + z * z / 12 - z**3 / 60) if z < 1e-2 else z + math.expm1(-z)


def _f2(z: float) -> float:
    """z² - 2z + 2 - 2e^{-z}, accurate for small z."""
    return z**3 / 3 * (1 - z / 4 + z * z / 20) if z < 1e-2 else z * z - 2 * z - 2 * math.expm1(-z)


def _timer_cases(sums: _Sums, lam: float, b: float, defer: int, period: float, c: float) -> None:
    """Y in ((k-1)P, kP] (and Y ≥ b): the k-th timer poll, at kP, finds 1 + Pois(λr) packets, r = kP - Y.
    Intervals not cut by b all have the same shape, scaled by e^{-λ(k-1)P}: summed in closed form."""
    if not defer:
        return
    weight = mean = 0.0
    cut = min(defer, math.floor(b / period) + 1) if b > 0 else 0  # the interval that holds b, if any
    if cut and b < cut * period:
        weight, mean = _timer_interval(sums, lam, b, cut, period, c, b, 1.0, float(cut))
    if cut < defer:
        s0, s1 = _geometric(math.exp(-lam * period), cut + 1, defer)
        w, m = _timer_interval(sums, lam, 0.0, 1, period, c, b, s0, s1)
        weight, mean = weight + w, mean + m
    if weight > 0:
        sums.softirq.append((weight, 0.0, _shifted_poisson(mean / weight)))


def _timer_interval(sums: _Sums, lam: float, lo: float, k: int, period: float, c: float, b: float, s0: float,
                    s1: float) -> tuple[float, float]:  # fmt: skip
    """Add Y in (lo, kP] for the k-th poll, times s0 (for the weights) and s1 (for what grows with k: the
    pickup time kP and the k polls); with lo = 0, k = 1 and s0 = Σ q^{k-1}, s1 = Σ k q^{k-1} this sums
    all the whole intervals. Returns (probability, E[λr])."""
    hi = k * period
    base = math.exp(-lam * lo) if lo > 0 else 1.0
    z = lam * (hi - lo)
    p = -base * math.expm1(-z)
    er, er2 = base * _f1(z) / lam, base * _f2(z) / (lam * lam)
    if lo > 0:  # a single interval: its own pickup time and poll count
        t, polls = hi * p, k * p
    else:  # k-th interval: pickup at kP, k polls; shifted copies of the first, weighted q^{k-1}
        t, polls = period * p * s1, p * s1
    sums.add(p * s0, t, s0 * (er + lam * er2 / 2), s0 * (p + lam * er), s0 * (p + 3 * lam * er + lam * lam * er2), 0.0)
    sums.timers += polls
    sums.over += c * polls
    sums.spin += b * p * s0
    return p * s0, s0 * lam * er


def _geometric(q: float, first: int, last: int) -> tuple[float, float]:
    """(Σ q^{k-1}, Σ k·q^{k-1}) for k = first..last."""
    if last - first < 16 or q > 1 - 1e-4:
        terms = [(k, q ** (k - 1)) for k in range(first, last + 1)]
        return sum(t for _, t in terms), sum(k * t for k, t in terms)

    def upto(n: int) -> tuple[float, float]:
        qn = q**n
        return (1 - qn) / (1 - q), (1 - (n + 1) * qn + n * qn * q) / (1 - q) ** 2

    a0, a1 = upto(first - 1)
    b0, b1 = upto(last)
    return b0 - a0, b1 - a1


def _irq_case(sums: _Sums, lam: float, s: float, h: float, usecs: float, frames: int, flavour: str, after: float,
              defer: int, c: float, b: float) -> None:  # fmt: skip
    """No spin and no timer poll took it: the IRQ, armed `after` the end of the busy period, fires."""
    p = math.exp(-lam * after)
    if p <= 0:
        return
    if flavour == "min-gap":
        # Between two IRQs come a geometric number of spin/timer cycles (none with probability p), of
        # mean total E[C | spin or timer]/p given at least one (approximation, see _min_gap).
        between = (sums.t + sums.x / (1 - lam * s)) / p if p < 1 else 0.0
        t, wait, n0, n02, law = _min_gap(lam, s, h, usecs, after, round(p, 12), between)
        sums.add(p, p * (after + t), p * wait, p * n0, p * n02, h)
    else:
        window = _restart_window if flavour == "timer-restart" else _window
        e_delta, area, e_m, e_m2 = window(lam, usecs, frames)
        sums.add(p, p * (after + 1 / lam + e_delta), p * (e_delta + area), p * (1 + e_m), p * (1 + 2 * e_m + e_m2), h)
        law = _window_law(lam, usecs, frames, flavour)
    sums.irqs += p
    sums.timers += defer * p
    sums.over += p * (h + defer * c)
    sums.spin += b * p
    sums.softirq.append((p, h, law))


def _shifted_poisson(mean: float) -> Pmf:
    """1 + Pois(mean), truncated where negligible."""
    upto = int(mean + 12 * math.sqrt(mean) + 12)
    return [(1 + j, q) for j, q in enumerate(_poisson_pmf_terms(mean, upto)) if q > 1e-16]


def _window_law(lam: float, usecs: float, frames: int, flavour: str) -> Pmf:
    """Law of N0 = 1 + the packets that joined the first one before the IRQ fired."""
    if frames == 1 or usecs <= 0:
        return [(1, 1.0)]
    if flavour == "timer-restart":  # K ~ Geometric: P[K ≥ k] = (1-q)^k, capped at F-1
        q = math.exp(-lam * usecs)
        if not frames and q < 1e-3:  # windows of ~e^{λU}/λ: 16 equal-mass quantiles of K
            return [(1 + int(math.log1p(-(j + 0.5) / 16) / math.log1p(-q)), 1 / 16) for j in range(16)]
        cap = frames - 1 if frames else int(math.log(1e-16) / math.log1p(-q)) + 1
        probs = [(1 - q) ** k * q for k in range(cap)] + ([(1 - q) ** cap] if frames else [])
        return [(1 + k, p) for k, p in enumerate(probs) if p > 1e-16]
    m = lam * usecs
    if frames == 0:
        return _shifted_poisson(m)
    pmf = _poisson_pmf_terms(m, frames - 1)
    law = [(1 + k, p) for k, p in enumerate(pmf[:-1])]
    return [*law, (frames, max(0.0, 1.0 - sum(pmf[:-1])))]


def _result(sums: _Sums, lam: float, s: float, napi: Napi, suspend: bool, budgeted: bool) -> QueueResult:
    rho = lam * s
    busy = sums.x / (1 - rho)
    cycle = sums.t + busy
    packets = sums.n0 + lam * busy
    area = (sums.wait + sums.init + s * (sums.n02 + sums.n0) / 2 + s * lam * busy
            + lam * (sums.x2 / (2 * (1 - rho)) + lam * s * s * sums.x / (2 * (1 - rho) ** 2)))  # fmt: skip
    squeezes = ksoft = 0.0
    if budgeted:
        squeezes, ksoft = _budget(lam, s, sums.softirq, softirq_limits(napi, s), suspend)
    irq_rate = sums.irqs / cycle
    return QueueResult(
        irq_rate=irq_rate,
        packets_per_irq=lam / irq_rate if irq_rate > 0 else math.inf,
        cpu=rho + (sums.over + sums.spin) / cycle,
        mean_latency=area / packets + ksoft / packets * KSOFTIRQD_DELAY,
        delivered=lam,
        timer_polls=sums.timers / cycle,
        squeeze_rate=squeezes / cycle,
        spin_cpu=sums.spin / cycle,
        ksoftirqd=ksoft / packets,
    )


# -- the softirq budget ---------------------------------------------------------------------


def _budget(lam: float, s: float, groups: list[tuple[float, float, Pmf]], limits: tuple[float, int], suspend: bool
            ) -> tuple[float, float]:  # fmt: skip
    """E[time_squeeze] and E[packets to ksoftirqd] per cycle over the softirq pickups."""
    per_run, handoff = limits
    rho = lam * s
    decay = rho - 1 - math.log(rho)  # busy-period sizes have tails ~ e^{-k·decay}
    squeezes = ksoft = 0.0
    for weight, o, law in groups:
        if not suspend and decay * (min(per_run, handoff) - law[-1][0] - lam * (o + law[-1][0] * s) / (1 - rho)) > 45:
            continue  # even the largest pickup's busy period is far too short to reach the budget
        for n0, q in _nodes(law):
            if suspend:  # the softirq only delivers what it found
                sq, ks = math.ceil(n0 / per_run) - 1, max(0, n0 - handoff)
            else:
                sq, ks = _busy_excess(lam, s, o + n0 * s, n0, per_run, handoff)
            squeezes += weight * q * sq
            ksoft += weight * q * ks
    return squeezes, ksoft


def _nodes(law: Pmf, most: int = 5) -> Pmf:
    """At most `most` points of equal mass (as far as the law allows), each at the mean of what it stands for."""
    if len(law) <= most:
        return law
    mass = list(accumulate(q for _, q in law))
    moment = list(accumulate(n * q for n, q in law))
    out, below, lo = [], (0.0, 0.0), 0
    for j in range(1, most + 1):
        hi = len(law) - 1 if j == most else min(len(law) - 1, bisect_left(mass, mass[-1] * j / most))
        if hi < lo:
            continue
        m, first = mass[hi] - below[0], moment[hi] - below[1]
        if m > 0:
            out.append((round(first / m), m))
        below, lo = (mass[hi], moment[hi]), hi + 1
    return out


@lru_cache(maxsize=8192)  # the same pickups recur across the settings a moderation search predicts at one rate
def _busy_excess(lam: float, s: float, x: float, n0: int, per_run: float, handoff: int) -> tuple[float, float]:
    """E[⌈P/B⌉ - 1] and E[(P - L)⁺] for P = n0 + K, K the arrivals served in a busy period started by work x.

    A trapezoid sum over Takács' law, P[K = k] ~ k^{-3/2} e^{-k(ρ - 1 - ln ρ)} in the tail: steps of 1/8 of
    its sd around the mean, 1/4 of its local decay length in the tail, and at most B/8 while the floor
    matters; a few runs past the limits ⌈P/B⌉ - 1 ≈ P/B - 1/2."""
    rho = lam * s
    mean_k = lam * x / (1 - rho)
    if n0 > max(per_run, handoff):  # past both limits whatever K is
        return max(0.0, (n0 + mean_k) / per_run - 0.5), n0 + mean_k - handoff
    start = max(0, min(math.floor(per_run), handoff) + 1 - n0)
    near = max(start, handoff - n0) + 4 * per_run  # beyond this the fractional part of P/B averages out
    sd_k = math.sqrt(lam * x / (1 - rho) ** 3)
    bulk, decay = mean_k + 4 * sd_k, rho - 1 - math.log(rho)
    lx = math.log(lam * x) if x > 0 else -math.inf
    sq = ks = peak = 0.0
    k, prev, last = start, -1, (0.0, 0.0)
    while True:
        z = lam * (x + k * s)
        # a probability: an exponent above 0 is rounding far in the tail (ρ near 1), never a real mass above 1
        p = math.exp(min(0.0, lx - z + (k - 1) * math.log(z) - math.lgamma(k + 1))) if z > 0 else float(k == 0)
        total = n0 + k
        g = (math.ceil(total / per_run) - 1) if k <= near else total / per_run - 0.5
        terms = (g * p, max(0, total - handoff) * p)
        if prev < 0:  # Euler-Maclaurin: Σ_{k≥a} f ≈ ∫_a f + f(a)/2, the integral by trapezoids
            sq, ks = terms[0] / 2, terms[1] / 2
        else:
            sq += (k - prev) * (last[0] + terms[0]) / 2
            ks += (k - prev) * (last[1] + terms[1]) / 2
        peak = max(peak, p)
        if k > mean_k and (p < 1e-10 * peak or p < 1e-13):  # what is left is below 1e-9 of a squeeze per cycle
            break
        prev, last = k, terms
        step = sd_k / 8 if k < bulk else 1 / (decay + 1.5 / max(k, 1)) / 4
        k += max(1, int(min(step, per_run / 8) if k < near else step))
    return sq, ks


# -- min-gap (Intel ITR) ------------------------------------------------------------------------


def _takacs_row(lam: float, s: float, x: float, upto: int) -> tuple[int, list[float]]:
    """P[K = k] for k < upto as (first k, probabilities), leaving out terms below 1e-14:
    K = arrivals served in an M/D/1 busy period started by work x (Takács: x/(x+ks)·Pois(λ(x+ks); k))."""
    out, lx, first = [], math.log(lam * x), 0
    mean = lam * x / (1 - lam * s)
    for k in range(upto):
        z = lam * (x + k * s)
        p = math.exp(lx - z + (k - 1) * math.log(z) - math.lgamma(k + 1))
        if p < 1e-14:
            if not out and k < mean:
                first = k + 1
                continue
            if k > mean:
                break
        out.append(p)
    return first, out


_QUANTILES = [-math.log(1 - (j + 0.5) / 4) for j in range(4)]
_RENYI = tuple(q * len(_QUANTILES) / sum(_QUANTILES) for q in _QUANTILES)  # Exp(1) in 4 atoms of equal weight, mean 1


@lru_cache(maxsize=4096)
def _min_gap(lam: float, s: float, h: float, usecs: float, dead: float, direct: float = 1.0, between: float = 0.0
             ) -> tuple[float, float, float, float, Pmf]:  # fmt: skip
    """Stationary min-gap cycle: E[time to the IRQ], E[wait area], E[N0], E[N0²], law of N0, all counted
    from `dead` after the last busy period (no IRQ can be armed before).

    After an IRQ whose busy period served m packets, the next one may fire a = (U - h - m·s - dead - Σ)⁺
    after `dead` at the earliest, where Σ is the time taken by spin/timer cycles in between: 0 with
    probability `direct`, else a geometric sum, taken as exponential with mean `between` (Rényi);
    N0 = max(1, Pois(λa))."""
    gap = usecs - h - dead
    if gap <= s:  # every busy period outlasts the gap: the IRQ fires at the first packet
        return 1 / lam, 0.0, 1.0, 1.0, [(1, 1.0)]
    spread = [((1 - direct) / len(_RENYI), between * q) for q in _RENYI]
    atoms = tuple((w, shift) for w, shift in [(direct, 0.0), *spread] if w > 0)
    return (direct == 1 and _min_gap_linear(lam, s, h, gap)) or _min_gap_chain(lam, s, h, gap, atoms)


def _min_gap_linear(lam: float, s: float, h: float, gap: float) -> tuple[float, float, float, float, Pmf] | None:
    """Exact moments when a > 0 and N0 ≥ 1 hold with certainty (to ~10 sd): N0 = Pois(λa) is then linear
    in m, and E[N0], Var[N0] solve two linear equations. None when that does not hold (or ρ ≥ 0.4:
    the map N0 -> N0' has slope -ρ/(1-ρ), near -1 the variance blows up and the gap gets clipped)."""
    rho = lam * s
    if rho >= 0.4:
        return None
    mean = lam * gap * (1 - rho) - rho * lam * h  # E[N0] = λ E[a], E[a] = gap - s E[m], E[m] = (N0 + λh)/(1-ρ)
    if mean <= 0:
        return None
    var = (mean + rho * rho * lam * (h + mean * s) / (1 - rho) ** 3) / (1 - (rho / (1 - rho)) ** 2)
    e_a = mean / lam
    var_a = s * s * (var / (1 - rho) ** 2 + lam * (h + mean * s) / (1 - rho) ** 3)
    clipped = math.exp(min(0.0, -lam * e_a + lam * lam * var_a / 2))  # ≈ E[e^{-λa}] = P[Pois(λa) = 0]
    if e_a < 10 * math.sqrt(var_a) or clipped > 1e-7:
        return None
    e_a2 = e_a * e_a + var_a
    law = _normal_law(mean, var)
    return e_a, lam * e_a2 / 2, mean, var + mean * mean, law


def _normal_law(mean: float, var: float) -> Pmf:
    """A discretised normal law on the integers ≥ 1 (only used for the budget tails)."""
    sd = math.sqrt(var)
    lo, hi = max(1, math.floor(mean - 8 * sd)), math.ceil(mean + 8 * sd)
    weights = [(n, math.exp(-((n - mean) ** 2) / (2 * var))) for n in range(lo, hi + 1)]
    total = sum(w for _, w in weights)
    return [(n, w / total) for n, w in weights]


def _min_gap_chain(lam: float, s: float, h: float, gap: float, atoms: tuple[tuple[float, float], ...]
                   ) -> tuple[float, float, float, float, Pmf]:  # fmt: skip
    """The Markov chain N0 -> m -> N0' iterated to its stationary law.

    Exact for λU ≲ 36; beyond, N0 and m are lumped in bins of w ≈ √(λU)/3 (odd) packets, each
    represented by its centre (the laws are smooth on that scale; their spread within a bin is
    added back to the second moments). Damped by α (the map has a mode near -ρ/(1-ρ)) and
    extrapolated along the slowest mode when successive steps shrink by a steady ratio r."""
    nu = lam * (gap - s)
    w = 2 * int(math.sqrt(nu) / 6) + 1
    limit = math.ceil(gap / s)  # m ≥ limit leaves no gap
    top = int(nu + 10 * math.sqrt(nu) + 10)
    reps = [1, *range(2 + w // 2, top + w, w)]  # N0 bins: {1}, then w at a time
    rows = [_binned_row(lam, s, h, n, w, limit) for n in reps]
    # m groups of w, by their centre, as far as any busy period reaches (a few hundred packets, where `limit`,
    # gap / s, can be tens of thousands: a floor of 15 ms at 0.8 µs a packet)
    extent = max((lo + len(out) for lo, out, _ in rows), default=1)
    groups = [g * w + w // 2 for g in range(min((limit - 1) // w + 1, max(1, extent)))]
    gaps = [[(q, max(0.0, gap - m * s - shift)) for q, shift in atoms] for m in groups]
    cols: dict[int, tuple[int, list[float]]] = {}  # m group -> law of the next N0 bins; built when first reached:
    # the groups a busy period can end in are a few hundred packets, where `limit` (gap / s) can be ten thousand

    def col(g: int) -> tuple[int, list[float]]:
        if g not in cols:
            cols[g] = _mixed([(q, _binned_found(lam * a, w, len(reps))) for q, a in gaps[g]])
        return cols[g]

    alpha = max(0.5, min(0.8, 1 - lam * s))
    pi = [0.0] * len(reps)
    pi[0] = 1.0
    last = ratio = 0.0
    mu, rest = _step(pi, rows, len(groups))
    for _ in range(1000):
        new = [0.0] * len(reps)
        new[0] = rest
        for g, wg in enumerate(mu):
            if wg >= 1e-15:
                start, law = col(g)
                end = start + len(law)
                new[start:end] = [a + wg * q for a, q in zip(new[start:end], law, strict=True)]
        step = [alpha * (a - b) for a, b in zip(new, pi, strict=True)]
        size = sum(abs(d) for d in step)
        r = size / last if last else 0.0
        if ratio and 0.3 < r < 0.999 and abs(r - ratio) < 0.01 * r:  # extrapolate along the slow mode
            pi = [max(0.0, b + d / (1 - r)) for b, d in zip(pi, step, strict=True)]
            total = sum(pi)
            pi, last, ratio = [b / total for b in pi], 0.0, 0.0
        else:
            pi = [b + d for b, d in zip(pi, step, strict=True)]
            last, ratio = size, r
        mu, rest = _step(pi, rows, len(groups))
        if size < 1e-9:
            break
    spread = s * s * (w * w - 1) / 12  # variance of a within an m group
    t = rest / lam + sum(wg * q * (a + math.exp(-lam * a) / lam) for wg, mix in zip(mu, gaps, strict=True)
                         for q, a in mix)  # fmt: skip
    wait = sum(wg * q * lam * (a * a + spread * (a > 0)) / 2 for wg, mix in zip(mu, gaps, strict=True) for q, a in mix)
    law = [(n, q) for n, q in zip(reps, pi, strict=True) if q > 1e-16]
    n02 = sum(n * n * q for n, q in law) + (1 - pi[0]) * (w * w - 1) / 12
    return t, wait, sum(n * q for n, q in law), n02, law


def _step(pi: list[float], rows: list[tuple[int, list[float], float]], groups: int) -> tuple[list[float], float]:
    """Law of the m groups (packets served in the busy period) from the law of the N0 bins, and the
    mass that left no gap."""
    mu, rest = [0.0] * groups, 0.0
    for wn, (start, row, lump) in zip(pi, rows, strict=True):
        if wn >= 1e-15:
            end = start + len(row)
            mu[start:end] = [a + wn * p for a, p in zip(mu[start:end], row, strict=True)]
            rest += wn * lump
    return mu, rest


def _binned_row(lam: float, s: float, h: float, n: int, w: int, limit: int
                ) -> tuple[int, list[float], float]:  # fmt: skip
    """Takács law of m = n + K for a busy period started by h + n·s, summed into m groups:
    (first group, probabilities, mass with m ≥ limit)."""
    first, row = _takacs_row(lam, s, h + n * s, max(0, limit - n))
    if not row:
        return 0, [], 1.0
    lo = (n + first) // w
    out = [0.0] * ((n + first + len(row) - 1) // w - lo + 1)
    for k, p in enumerate(row, start=n + first):
        out[k // w - lo] += p
    return lo, out, max(0.0, 1.0 - sum(row))


def _binned_found(mean: float, w: int, bins: int) -> tuple[int, list[float]]:
    """max(1, Pois(mean)) summed into the N0 bins ({1}, then w values each): (first bin, probabilities)."""
    lo, pmf = _poisson_window(mean)

    def index(n: int) -> int:
        return 0 if n <= 1 else min(bins - 1, 1 + (n - 2) // w)

    first = index(lo)
    out = [0.0] * (index(lo + len(pmf) - 1) - first + 1)
    for n, p in enumerate(pmf, start=lo):
        out[index(n) - first] += p
    return first, out


def _mixed(parts: list[tuple[float, tuple[int, list[float]]]]) -> tuple[int, list[float]]:
    """Weighted sum of (first index, probabilities) pieces."""
    if len(parts) == 1 and parts[0][0] == 1.0:
        return parts[0][1]
    lo = min(start for _, (start, _col) in parts)
    hi = max(start + len(col) for _, (start, col) in parts)
    out = [0.0] * (hi - lo)
    for q, (start, col) in parts:
        for j, p in enumerate(col, start=start - lo):
            out[j] += q * p
    return lo, out


def _poisson_window(mean: float) -> tuple[int, list[float]]:
    """Pois(mean) where it exceeds 1e-15, as (first value, probabilities), by recursion from the mode."""
    mode = int(mean)
    if mean <= 0:
        return 0, [1.0]
    peak = math.exp(-mean + mode * math.log(mean) - math.lgamma(mode + 1))
    down, p, j = [], peak, mode
    while j > 0:
        p *= j / mean
        j -= 1
        if p < 1e-15:
            break
        down.append(p)
    up, p, j = [], peak, mode
    while True:
        j += 1
        p *= mean / j
        if p < 1e-15:
            break
        up.append(p)
    return mode - len(down), [*reversed(down), peak, *up]
