"""An event simulation of one NIC RX queue, independent of the closed form (docs/physics.md §9.3).

Packet by packet: Poisson arrivals (or explicit ones, e.g. bursty MMPP); the IRQ, when armed,
fires at min(first packet + U, arrival of the F-th packet) (timer-from-first), U after the
last packet of a run of gaps ≤ U (timer-restart), or at max(first packet, last IRQ + U)
(min-gap, Intel ITR); the hard IRQ takes h of CPU; NAPI then serves every queued packet
(s each, arrivals during service included) until the ring is empty, and re-arms.

With `napi` (see model.Napi) the end of a poll that found packets, at time e, is followed by:
a blocked reader spinning for `busy_poll` (an arrival in that time is taken at once, by the
reader, at no per-packet overhead: the spin is CPU); else, with deferral, hrtimer polls every
`gro_flush` (each costs `timer_cost`, finds the ring at its end) until `defer` of them in a row
found nothing, and only then the IRQ is re-armed. IRQ suspension turns the busy period after a
pickup into the application's work (no softirq, no time_squeeze) and costs one more empty poll.
Softirq busy periods count time_squeeze (one per `net_rx_action` run that stops with work left)
and hand the packets past the `__do_softirq` limit to ksoftirqd, whose packets wait
KSOFTIRQD_DELAY more (latency only). Gives what the closed form cannot: latency percentiles and
ring drops. Seeded, so runs reproduce.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, replace

from ..model.queue import KSOFTIRQD_DELAY, Napi, softirq_limits


@dataclass(frozen=True)
class EventResult:
    irq_rate: float
    cpu: float
    mean_latency: float
    p50: float
    p99: float
    p999: float
    packets: int  # served
    timer_polls: float = 0.0  # per second
    squeezes: float = 0.0  # time_squeeze per second
    dropped: int = 0  # arrivals that found the ring full
    spin_cpu: float = 0.0  # fraction of a CPU spent busy-polling (included in cpu)
    ksoftirqd: float = 0.0  # fraction of the served packets handed to ksoftirqd
    samples: tuple[float, ...] = ()  # every served packet's latency, when asked for (to pool windows)


@dataclass
class _Tally:
    """Running totals of one simulation."""

    overhead: float = 0.0  # CPU beyond s per packet: hard IRQs, timer polls, spinning
    spin: float = 0.0
    irqs: int = 0
    timers: int = 0
    squeezes: int = 0
    ksoft: int = 0
    dropped: int = 0


def poisson_arrivals(rate: float, packets: int, seed: int) -> list[float]:
    """The arrival times the simulation uses by default (same stream as before: reproducible)."""
    rng = random.Random(seed)
    out, t = [], 0.0
    for _ in range(packets):
        t += rng.expovariate(rate)
        out.append(t)
    return out


def simulate_queue(
    rate: float,
    service: float,
    irq_cost: float,
    usecs: float,
    frames: int,
    packets: int = 200_000,
    seed: int = 1,
    flavour: str = "timer-from-first",
    *,
    napi: Napi | None = None,
    arrivals: list[float] | None = None,
    ring: int = 0,
    samples: bool = False,
) -> EventResult:
    """`arrivals` (sorted, seconds) replaces the Poisson stream; `ring` > 0 drops an arrival that finds
    `ring` packets waiting (not yet taken by a poll)."""
    arr = poisson_arrivals(rate, packets, seed) if arrivals is None else arrivals
    sim = _Sim(arr, service, irq_cost, usecs, frames, flavour, napi, ring)
    sim.run()
    result = sim.result()
    return replace(result, samples=tuple(sim.lat)) if samples else result


class _Sim:
    """One run: a loop over cycles, each from the end of a poll that found packets to the next one."""

    def __init__(self, arr: list[float], service: float, irq_cost: float, usecs: float, frames: int, flavour: str,
                 napi: Napi | None, ring: int) -> None:  # fmt: skip
        self.arr, self.s, self.h, self.u, self.f = arr, service, irq_cost, usecs, frames
        self.flavour, self.ring, self.budgeted = flavour, ring, napi is not None  # napi=None: as before, no budget
        self.napi = napi = napi or Napi()
        self.defer = napi.defer if napi.defer > 0 and napi.gro_flush > 0 else 0
        self.period = napi.gro_flush + napi.timer_cost  # timer poll to timer poll when they find nothing
        self.spin_for = napi.busy_poll
        self.suspend = bool(self.defer and napi.suspend > 0 and napi.app_busy_poll)
        self.round_pkts, self.handoff = softirq_limits(napi, service)
        self.lat: list[float] = []
        self.t = _Tally()
        self.free_at = 0.0

    def run(self) -> None:
        arr, n, t, s, h = self.arr, len(self.arr), self.t, self.s, self.h
        spin_for, defer, period, cost = self.spin_for, self.defer, self.period, self.napi.timer_cost
        after = defer * period  # the IRQ is re-armed this long after the last poll that found packets
        quiet = min(self.round_pkts, self.handoff) if self.budgeted else n + 1  # a busy period this short: no budget
        lat = self.lat
        i, e, last_irq, started = 0, 0.0, -math.inf, False
        while i < n:
            y = arr[i]
            gap = y - e
            if started and gap < spin_for:  # the spinning reader takes it
                t.spin += gap
                k = min(defer, int(gap // period)) if defer else 0
                pickup = start = y
                kind = "app"
            elif started and defer and gap <= after:  # a deferral timer poll takes it
                k = math.ceil(gap / period)
                t.spin += spin_for
                pickup = start = e + k * period
                kind = "softirq"
            else:  # the IRQ, re-armed after `defer` empty timer polls
                k = defer if started else 0
                t.spin += spin_for if started else 0.0
                pickup = last_irq = self._fire(i, y, last_irq)
                start, kind = pickup + h, "softirq"
                t.irqs += 1
                t.overhead += h
            t.timers += k
            t.overhead += k * cost + (cost if self.suspend else 0.0)  # suspension: the app's empty poll
            started = True
            first = len(lat)
            if self.ring:
                i, e, found = self._serve_ring(i, pickup, start)
            else:
                found = bisect_right(arr, pickup, i) - i if self.suspend else 0
                clock = start
                while i < n and arr[i] <= clock:
                    clock += s
                    lat.append(clock - arr[i])
                    i += 1
                e = clock
            if kind == "softirq" and len(lat) - first > quiet:
                self._softirq(first, found)
        self.free_at = e

    def _fire(self, i: int, first: float, last_irq: float) -> float:
        """When the armed IRQ fires, given its first packet `first` = arr[i]."""
        arr, u, f = self.arr, self.u, self.f
        if self.flavour == "min-gap":
            return max(first, last_irq + u)
        if f == 1 or u <= 0:
            return first
        if self.flavour == "timer-restart":  # every completion restarts the timer; the F-th fires at once
            last, count, j = first, 1, i + 1
            while j < len(arr) and arr[j] - last <= u:
                if not self.ring or count < self.ring:  # a dropped packet writes no completion
                    last, count = arr[j], count + 1
                    if f and count == f:
                        return last
                j += 1
            return last + u
        fire = first + u
        if f > 1 and (not self.ring or f <= self.ring) and i + f - 1 < len(arr) and arr[i + f - 1] < fire:
            fire = max(first, arr[i + f - 1])
        return fire

    def _serve_ring(self, i: int, pickup: float, clock: float) -> tuple[int, float, int]:
        """Exhaustive service from `clock` with a finite ring: an arrival that finds `ring` packets not yet
        taken by a poll is dropped. Returns the next packet, when the ring ran empty, and how many of the
        served packets had arrived by the pickup."""
        arr, s, lat, n = self.arr, self.s, self.lat, len(self.arr)
        waiting: deque[float] = deque()  # service start times of the accepted packets, in order
        found = 0
        while i < n and arr[i] <= clock:
            a = arr[i]
            while waiting and waiting[0] <= a:
                waiting.popleft()
            if len(waiting) >= self.ring:
                self.t.dropped += 1
            else:
                found += a <= pickup
                waiting.append(clock)
                clock += s
                lat.append(clock - a)
            i += 1
        return i, clock, found

    def _softirq(self, first: int, found: int) -> None:
        """time_squeeze and the ksoftirqd hand-off for the softirq busy period whose latencies start at `first`."""
        served = len(self.lat) - first
        if self.suspend:  # the softirq delivers what the poll found; the app polls for the rest itself
            served = min(served, found)
        if served <= 0:
            return
        self.t.squeezes += math.ceil(served / self.round_pkts) - 1
        for j in range(first + self.handoff, first + served):
            self.lat[j] += KSOFTIRQD_DELAY
            self.t.ksoft += 1

    def result(self) -> EventResult:
        arr, lat, t = self.arr, self.lat, self.t
        span = max(self.free_at, arr[-1]) if arr else 1.0
        served = len(lat)
        ordered = sorted(lat)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0

        busy = served * self.s + t.overhead + t.spin
        return EventResult(t.irqs / span, busy / span, sum(lat) / max(1, served), pct(0.5), pct(0.99), pct(0.999),
                           served, t.timers / span, t.squeezes / span, t.dropped, t.spin / span,
                           t.ksoft / max(1, served))  # fmt: skip
