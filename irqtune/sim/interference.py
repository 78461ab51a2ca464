"""Devices that share an IRQ CPU delay each other below saturation (docs/physics.md §9.9).

Each queue's closed form (model/queue.py, nvme.py) prices its own work only. On a shared CPU a packet or
completion that arrives while another device's interrupt or NAPI poll runs waits for the rest of that
poll first, and for the work queued ahead of it meanwhile: a two-class M/G/1 queue, whose mean wait
(Pollaczek–Khinchine) splits into a term per class. The other devices' term is added here:

    W_other = R_other / (1 − ρ),   R_other = Σ_o ρ_o · E[X_o²] / (2·E[X_o])

ρ_o is device o's busy fraction of the CPU, X_o the work of one of its activations (a hard IRQ and the
NAPI poll it schedules, a deferral timer poll, an NVMe completion), ρ everything that runs there.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

NAPI_WEIGHT = 64  # packets one NAPI poll takes before net_rx_action turns to the next NAPI (napi.rst)


@dataclass(frozen=True)
class Work:
    """One queue's interrupt-side work on its CPU."""

    cpu: int
    busy: float  # fraction of the CPU
    residual: float  # seconds: E[X²]/(2E[X]), what is left of an activation an arrival finds running


def nic_work(cpu: int, busy: float, activations: float, service: float, irq_cost: float) -> Work:
    """A NIC queue: `activations` interrupts and timer polls per second, each a poll of X̄ = busy/activations
    (at most one NAPI weight of packets, then the poll list moves on). The packets in a poll come in a Poisson
    number, so E[X²] ≈ X̄² + s·X̄ and the residual is (X̄ + s)/2."""
    if busy <= 0 or activations <= 0:
        return Work(cpu, max(busy, 0.0), 0.0)
    mean = min(busy / activations, irq_cost + NAPI_WEIGHT * service)
    return Work(cpu, busy, (mean + service) / 2)


def nvme_work(cpu: int, busy: float, iops: float) -> Work:
    """An NVMe queue completing by interrupt: one fixed-size piece of work per I/O, residual half of it."""
    if busy <= 0 or iops <= 0:
        return Work(cpu, max(busy, 0.0), 0.0)
    return Work(cpu, busy, busy / iops / 2)


def extra_wait(works: Sequence[Work], index: int) -> tuple[float, float]:
    """(mean extra wait in seconds, the others' busy fraction) of `works[index]` from the others on its CPU;
    inf when the CPU has no capacity left (the host's saturation rule then takes over)."""
    mine = works[index]
    others = [w for i, w in enumerate(works) if i != index and w.cpu == mine.cpu]
    busy_other = sum(w.busy for w in others)
    if busy_other <= 0:
        return 0.0, 0.0
    rho = mine.busy + busy_other
    if rho >= 1.0:
        return math.inf, busy_other
    return sum(w.busy * w.residual for w in others) / (1.0 - rho), busy_other


def delays(mean: float, busy_other: float, count: int, rng: random.Random) -> list[float]:
    """`count` per-arrival extra waits with mean `mean`: none for an arrival that finds the CPU free of the others'
    work (probability 1 − busy_other, PASTA), else exponential with mean `mean`/busy_other (the usual exponential
    approximation of the M/G/1 wait, as docs/physics.md §9.6). Stratified: the waits are the distribution's
    quantiles at (k + ½)/count, shuffled, so an interval's few hundred packets carry the tail itself rather
    than a draw of it, and a p99 does not jump from interval to interval with the draws."""
    share = min(1.0, busy_other)
    if mean <= 0 or share <= 0 or count <= 0:
        return [0.0] * max(count, 0)
    scale = mean / share
    out = [
        0.0 if u <= 1 - share else -scale * math.log((1 - u) / share) for u in ((k + 0.5) / count for k in range(count))
    ]
    rng.shuffle(out)
    return out
