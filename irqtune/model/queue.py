"""Closed form of one NIC RX queue: coalescing window, hard IRQ, exhaustive NAPI (docs/physics.md §9.2).

One cycle: the IRQ is armed and idle; the first packet opens the coalescing window Δ
(TIMER_FROM_FIRST, as mlx5's EQE mode: fire at min(U after the first packet, the F-th
packet)); the interrupt costs h; NAPI then serves packets (s each) until the ring is
empty and re-arms. That is an M/G/1 queue with setup times V = Δ + h:

    E[Δ]   = (1/λ) Σ_{j=0}^{F-2} P[Pois(λU) > j]              (F = 0: Δ = U; F = 1: Δ = 0)
    E[Δ²]  = (2/λ²) Σ_{j=0}^{F-2} (j+1) P[Pois(λU) ≥ j+2]
    E[N0]  = 1 + E[min(Pois(λU), F-1)]                         packets waiting when the IRQ fires
    E[Bsy] = (h + E[N0] s)/(1 - ρ),  E[Cyc] = 1/λ + E[Δ] + E[Bsy],  irq_rate = 1/E[Cyc]
    CPU    = ρ + h irq_rate
    E[T]   by renewal reward over a cycle (see _mean_latency): exact for deterministic s, also when
           the frame limit ends the window (where the M/G/1-with-setup formula of §9.2 is off by 5-13 %)

Times are in seconds. Overload (ρ ≥ 1) returns the saturated limits: no re-arm, CPU 1.

With `napi` (the Napi knobs: deferral, busy polling, IRQ suspension, the softirq budget) or the
"min-gap" flavour (Intel ITR) the same renewal-reward argument runs in napi.py, over cycles that
start where a poll leaves the ring empty; napi=None keeps this plain model exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .tail import p99_latency


@dataclass(frozen=True)
class QueueResult:
    irq_rate: float  # interrupts per second
    packets_per_irq: float
    cpu: float  # fraction of one CPU (softirq + hard IRQ + timer polls + busy-poll spinning)
    mean_latency: float  # seconds, arrival to end of service
    delivered: float  # packets per second actually served
    overloaded: bool = False
    timer_polls: float = 0.0  # NAPI polls from the deferral hrtimer, per second
    squeeze_rate: float = 0.0  # time_squeeze per second (net_rx_action runs that stopped with work left)
    spin_cpu: float = 0.0  # fraction of a CPU spent busy-polling (included in cpu)
    ksoftirqd: float = 0.0  # fraction of the packets handed to ksoftirqd (§2.3), each waiting KSOFTIRQD_DELAY more
    p99_latency: float = 0.0  # seconds: an upper estimate of the 99th percentile (tail.py, §9.6)


@dataclass(frozen=True)
class Napi:
    """The NAPI knobs of one queue (docs/physics.md §2.1-2.7). The defaults are the kernel's: no deferral."""

    defer: int = 0  # napi_defer_hard_irqs
    gro_flush: float = 0.0  # gro_flush_timeout, seconds
    suspend: float = 0.0  # irq_suspend_timeout, seconds (only acts when app_busy_poll is True)
    app_busy_poll: bool = False  # the consumer is an epoll app with prefer_busy_poll (Karsten/Damato setup)
    busy_poll: float = 0.0  # net.core.busy_read spin of a blocked reader, seconds
    timer_cost: float = 0.4e-6  # CPU per hrtimer-driven poll (c_t)
    budget: int = 300  # net.core.netdev_budget
    budget_usecs: float = 2e-3  # net.core.netdev_budget_usecs (enforced in jiffies: see §2.1)
    hz: int = 1000


KSOFTIRQD_DELAY = 1.5e-3  # mean wait of a packet handed to ksoftirqd: half a ~3 ms CFS/EEVDF slice (§9.2)
SOFTIRQ_RESTARTS = 10  # MAX_SOFTIRQ_RESTART: __do_softirq runs net_rx_action at most this often, then ksoftirqd
SOFTIRQ_TIME = 2e-3  # MAX_SOFTIRQ_TIME = msecs_to_jiffies(2)
RESTART_NEVER = 1e-12  # e^(-λU) below this: a restarting timer without a frame limit never expires


def jiffy_limit(seconds: float, hz: int) -> float:
    """Mean real length of a limit written as jiffies + usecs_to_jiffies(t): the count rounds up and the
    current jiffy is on average half gone (HZ=1000, 2 ms: 1-2 ms, mean 1.5 ms)."""
    ticks = max(1, math.ceil(seconds * hz - 1e-9))
    return (ticks - 0.5) / hz


def softirq_limits(napi: Napi, service: float) -> tuple[float, int]:
    """(packets per net_rx_action run, packets of one softirq busy period before the rest goes to ksoftirqd).

    A run stops at `budget` packets or when `budget_usecs` (in jiffies) ran out, whichever first
    (the 64-packet poll granularity is ignored); __do_softirq gives up after 10 runs or 2 ms."""
    per_run = max(1.0, min(float(napi.budget), jiffy_limit(napi.budget_usecs, napi.hz) / service))
    handoff = max(1, math.floor(min(SOFTIRQ_RESTARTS * per_run, jiffy_limit(SOFTIRQ_TIME, napi.hz) / service)))
    return per_run, handoff


def _poisson_pmf_terms(mean: float, upto: int) -> list[float]:
    """P[Pois(mean) = j] for j = 0..upto, computed in log space (stable for large means)."""
    if mean <= 0:
        return [1.0] + [0.0] * upto
    log_mean = math.log(mean)
    return [math.exp(-mean + j * log_mean - math.lgamma(j + 1)) for j in range(upto + 1)]


def nic_queue(
    rate: float,
    service: float,
    irq_cost: float,
    usecs: float,
    frames: int,
    flavour: str = "timer-from-first",
    *,
    napi: Napi | None = None,
) -> QueueResult:
    """One RX queue at `rate` packets/s, `service` s per packet, `irq_cost` s per interrupt,
    coalescing rx-usecs `usecs` (seconds) and rx-frames `frames` (0 = no frame limit).

    `flavour`: "timer-from-first" (the window starts at the first packet, mlx5 EQE mode),
    "timer-restart" (every packet restarts it, CQE mode: fire after a gap longer than U) or
    "min-gap" (Intel ITR: fire at max(first packet, last IRQ + U); rx-frames ignored).
    `napi`: deferral, busy polling, IRQ suspension and the softirq budget (see napi.py);
    None is the plain model without budget accounting. The p99 comes from tail.py."""
    result = _queue(rate, service, irq_cost, usecs, frames, flavour, napi)
    if result.overloaded or rate <= 0:
        return replace(result, p99_latency=result.mean_latency)
    deferred = napi is not None and napi.defer > 0 and napi.gro_flush > 0
    period = napi.gro_flush if deferred else 0.0
    rearm = napi.defer * (napi.gro_flush + napi.timer_cost) if deferred else 0.0
    p99 = p99_latency(rate, service, irq_cost, usecs, frames, flavour, period, result.ksoftirqd, rearm)
    return replace(result, p99_latency=max(p99, result.mean_latency))


def _queue(rate: float, service: float, irq_cost: float, usecs: float, frames: int, flavour: str,
           napi: Napi | None) -> QueueResult:  # fmt: skip
    """nic_queue without the p99."""
    if rate <= 0:
        return QueueResult(0.0, 0.0, 0.0, 0.0, 0.0)
    rho = rate * service
    if rho >= 1.0:
        if napi is None:
            return QueueResult(0.0, math.inf, 1.0, math.inf, 1.0 / service, overloaded=True)
        per_run = softirq_limits(napi, service)[0]  # NAPI never completes: every run stops with work left
        return QueueResult(0.0, math.inf, 1.0, math.inf, 1.0 / service, overloaded=True,
                           squeeze_rate=1.0 / (service * per_run), ksoftirqd=1.0)  # fmt: skip
    if napi is not None or flavour == "min-gap":
        from .napi import napi_queue  # napi.py builds on this module

        return napi_queue(rate, service, irq_cost, usecs, frames, flavour, napi)
    lam, s, h = rate, service, irq_cost
    window = _restart_window if flavour == "timer-restart" else _window
    e_delta, e_wait_area, e_m, e_m2 = window(lam, usecs, frames)
    if not math.isfinite(e_delta):  # the window never closes: no interrupt, the packets wait for ever
        return QueueResult(0.0, math.inf, rho, math.inf, 0.0, overloaded=True)
    e_n0, e_n02 = 1.0 + e_m, 1.0 + 2 * e_m + e_m2
    busy = (h + e_n0 * s) / (1.0 - rho)
    cycle = 1.0 / lam + e_delta + busy
    irq_rate = 1.0 / cycle
    return QueueResult(irq_rate, lam * cycle, rho + h * irq_rate, _mean_latency(lam, s, h, e_delta, e_wait_area,
                       e_n0, e_n02), lam)  # fmt: skip


def _window(lam: float, usecs: float, frames: int) -> tuple[float, float, float, float]:
    """Coalescing window: E[Δ], E[∫_0^Δ A(t) dt] (packets after the first, waiting), E[M], E[M²]
    with M = min(Pois(λU), F-1) the packets that joined the first one before the IRQ fired."""
    if frames == 1 or usecs <= 0:
        return 0.0, 0.0, 0.0, 0.0
    m = lam * usecs
    if frames == 0:
        return usecs, lam * usecs * usecs / 2, m, m + m * m
    pmf = _poisson_pmf_terms(m, frames)
    sf, acc = [], 0.0  # sf[j] = P[Pois(λU) > j]
    for p in pmf:
        acc += p
        sf.append(max(0.0, 1.0 - acc))
    cap = frames - 1
    e_m = sum(sf[j] for j in range(cap))
    e_m2 = sum(k * k * pmf[k] for k in range(cap)) + cap * cap * sf[cap - 1] if cap > 0 else 0.0
    area = sum(j * sf[j] for j in range(1, cap)) / lam
    return e_m / lam, area, e_m, e_m2


def _restart_window(lam: float, usecs: float, frames: int) -> tuple[float, float, float, float]:
    """TIMER_RESTART: the window grows by every gap shorter than U and ends U after the last packet,
    or at the F-th packet. K, the packets that join, is geometric with q = e^{-λU}, capped at F-1;
    each joining gap has mean g = E[X | X ≤ U] = 1/λ - U q/(1-q)."""
    if frames == 1 or usecs <= 0:
        return 0.0, 0.0, 0.0, 0.0
    q = math.exp(-lam * usecs)
    if q >= 1.0:
        return usecs, 0.0, 0.0, 0.0
    if frames == 0 and q < RESTART_NEVER:  # no cap and a gap longer than U almost never comes: the window does
        return math.inf, math.inf, math.inf, math.inf  # not close (E[K] = (1-q)/q past 1e12 packets)
    g = 1.0 / lam - usecs * q / (1.0 - q)
    if frames == 0:  # no cap: K ~ Geometric, every window ends by the timer
        e_k = (1 - q) / q
        e_k2 = e_k + 2 * ((1 - q) / q) ** 2  # E[K²] = E[K] + E[K(K-1)]
        timeout, e_k_timeout = 1.0, e_k
    else:
        cap = frames - 1
        probs = [(1 - q) ** k * q for k in range(cap)] + [(1 - q) ** cap]
        e_k = sum(k * p for k, p in enumerate(probs))
        e_k2 = sum(k * k * p for k, p in enumerate(probs))
        timeout = sum(probs[:cap])
        e_k_timeout = sum(k * p for k, p in enumerate(probs[:cap]))
    e_delta = e_k * g + usecs * timeout
    area = g * (e_k2 - e_k) / 2 + usecs * e_k_timeout  # each joiner waits the later gaps, and U if timed out
    return e_delta, area, e_k, e_k2


def _mean_latency(lam: float, s: float, h: float, e_delta: float, area: float, e_n0: float, e_n02: float) -> float:
    """Renewal reward over one cycle: total sojourn of its packets / its packets.

    Service times are all s, so the number in system does not depend on the order of service,
    and the busy period after the IRQ is one started by the work X = h + N0·s. For a busy
    period started by work x, E[∫V dt] = x²/(2(1-ρ)) + λE[S²]x/(2(1-ρ)²) (Wald on V², V creeps to 0);
    packets arriving in it stay V + s (FIFO, PASTA).
    """
    rho = lam * s
    e_x = h + s * e_n0
    e_x2 = h * h + 2 * h * s * e_n0 + s * s * e_n02
    window = e_delta + area  # the first packet and those after it, waiting for the IRQ
    initial = h * e_n0 + s * (e_n02 + e_n0) / 2  # the N0 waiting packets go first after the IRQ
    arrivals = lam * (e_x2 / (2 * (1 - rho)) + lam * s * s * e_x / (2 * (1 - rho) ** 2)) + s * lam * e_x / (1 - rho)
    packets = e_n0 + lam * e_x / (1 - rho)
    return (window + initial + arrivals) / packets
