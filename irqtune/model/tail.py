"""A p99 latency estimate for one NIC RX queue, to hold a latency target against (docs/physics.md §9.6).

The closed form (queue.py, napi.py) gives the mean; a target is on the tail. A packet's latency is
a batching delay (waiting for the interrupt or the timer poll that picks its batch up), a fixed
pickup cost (h for an interrupt, plus its own service s) and queueing behind work already there.
The p99 is estimated as the sum of each part's own p99:

    p99 ≈ B99 + h + s + W99 (+ a ksoftirqd slice when over 1 % of packets go there)

B99, the batching delay of a batch's first packet: the window's p99 (timer-from-first:
min(U, the (F−1)-th later arrival); timer-restart: U plus the gaps that extend it; min-gap: U) or
the deferral period G when timer polls take the packets. W99: the M/D/1 waiting time with its
exponential tail, P[W > x] ≈ ρ·exp(−x/E[W | W > 0]), E[W | W > 0] = s/(2(1−ρ)). Adding the parts'
p99s over-estimates (they rarely peak together): an upper estimate, which is what a target needs.
"""

from __future__ import annotations

import math
from functools import lru_cache

P = 0.99
KSOFTIRQD_SLICE = 3e-3  # a packet handed to ksoftirqd waits up to a ~3 ms CFS/EEVDF slice (queue.KSOFTIRQD_DELAY)


def p99_latency(lam: float, s: float, h: float, usecs: float, frames: int, flavour: str = "timer-from-first",
                timer_period: float = 0.0, ksoftirqd: float = 0.0, rearm_after: float = 0.0) -> float:  # fmt: skip
    """p99 sojourn (seconds) of a packet at `lam` packets/s, `s` s each, `h` s per interrupt, coalescing
    `usecs` s / `frames`; `timer_period`: the deferral's gro_flush_timeout where it is engaged (0: none);
    `ksoftirqd`: the share of packets handed to ksoftirqd; `rearm_after`: how long after the last poll the
    deferral re-arms the interrupt (a min-gap window that has run out by then never holds a packet)."""
    rho = lam * s
    if lam <= 0:
        return 0.0
    if rho >= 1.0:
        return math.inf
    batching = window_p99(lam, usecs, frames, flavour, rearm_after) + h
    if timer_period > 0:
        batching = max(batching, timer_period)
    tail = KSOFTIRQD_SLICE if ksoftirqd > 1 - P else 0.0
    return batching + s + queueing_p99(rho, s) + tail


def queueing_p99(rho: float, s: float) -> float:
    """p99 of the M/D/1 wait behind other packets: P[W > 0] = ρ, and beyond that exponential with mean
    s/(2(1−ρ)) (Pollaczek-Khinchine's E[W] = ρs/(2(1−ρ)) over P[W > 0])."""
    if rho <= 1 - P:
        return 0.0
    return s / (2 * (1 - rho)) * math.log(rho / (1 - P))


def window_p99(lam: float, usecs: float, frames: int, flavour: str, rearm_after: float = 0.0) -> float:
    """p99 of the time from a batch's first packet to the interrupt."""
    if usecs <= 0 or (frames == 1 and flavour != "min-gap"):
        return 0.0
    if flavour == "min-gap":  # max(first packet, last IRQ + U): at most U, less what passed before re-arming
        return max(0.0, usecs - rearm_after)
    frame_bound = erlang_p99(frames - 1, lam) if frames > 1 else math.inf
    if flavour == "timer-restart":
        return min(frame_bound, _restart_p99(lam, usecs))
    return min(frame_bound, usecs)


def _restart_p99(lam: float, usecs: float) -> float:
    """U after the last of K joiners: K geometric (a gap joins with probability 1 − q, q = e^(−λU)), its
    p99 taken, each joining gap its mean g = 1/λ − Uq/(1−q) (queue.py `_restart_window`)."""
    q = math.exp(-lam * usecs)
    if q >= 1.0:
        return usecs
    if q <= 0.0:
        return math.inf  # every gap joins: only the frame limit ends the window
    expected = math.log(1 - P) / math.log1p(-q)
    if not math.isfinite(expected) or expected > 1e12:  # q so small that (nearly) every gap joins: as q = 0
        return math.inf
    joiners = max(0, math.ceil(expected))
    return usecs + joiners * (1.0 / lam - usecs * q / (1.0 - q))


def erlang_p99(k: int, lam: float) -> float:
    """p99 of the time to k more Poisson arrivals: the x where P[Pois(λx) < k] = 1 − P."""
    return _erlang_unit_p99(k) / lam


@lru_cache(maxsize=1024)  # scale-free: depends on k alone, and the moderation search asks for few k, often
def _erlang_unit_p99(k: int) -> float:
    """erlang_p99 at one arrival per second, by bisection."""
    lo, hi = 0.0, k + 10 * math.sqrt(k) + 10
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _poisson_cdf(mid, k - 1) > 1 - P else (lo, mid)
    return hi


def _poisson_cdf(mean: float, upto: int) -> float:
    """P[Pois(mean) <= upto], summed in log space."""
    if mean <= 0:
        return 1.0
    log_mean = math.log(mean)
    return min(1.0, sum(math.exp(-mean + j * log_mean - math.lgamma(j + 1)) for j in range(upto + 1)))
