"""Closed form of one NIC RX queue: coalescing window, hard IRQ, exhaustive NAPI (physics.md §9.2).

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class QueueResult:
    irq_rate: float  # interrupts per second
    packets_per_irq: float
    cpu: float  # fraction of one CPU (softirq + hard IRQ)
    mean_latency: float  # seconds, arrival to end of service
    delivered: float  # packets per second actually served
    overloaded: bool = False


def _poisson_pmf_terms(mean: float, upto: int) -> list[float]:
    """P[Pois(mean) = j] for j = 0..upto, computed in log space (stable for large means)."""
    if mean <= 0:
        return [1.0] + [0.0] * upto
    log_mean = math.log(mean)
    return [math.exp(-mean + j * log_mean - math.lgamma(j + 1)) for j in range(upto + 1)]


def nic_queue(
    rate: float, service: float, irq_cost: float, usecs: float, frames: int, flavour: str = "timer-from-first"
) -> QueueResult:
    """One RX queue at `rate` packets/s, `service` s per packet, `irq_cost` s per interrupt,
    coalescing rx-usecs `usecs` (seconds) and rx-frames `frames` (0 = no frame limit).

    `flavour`: "timer-from-first" (the window starts at the first packet, mlx5 EQE mode) or
    "timer-restart" (every packet restarts it, CQE mode: fire after a gap longer than U)."""
    if rate <= 0:
        return QueueResult(0.0, 0.0, 0.0, 0.0, 0.0)
    rho = rate * service
    if rho >= 1.0:
        return QueueResult(0.0, math.inf, 1.0, math.inf, 1.0 / service, overloaded=True)
    lam, s, h = rate, service, irq_cost
    window = _restart_window if flavour == "timer-restart" else _window
    e_delta, e_wait_area, e_m, e_m2 = window(lam, usecs, frames)
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
