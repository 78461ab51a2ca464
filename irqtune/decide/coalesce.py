"""Choose a NIC's RX coalescing from measured packet and interrupt rates (a first policy).

The square-root rule of physics.md §3.3: trading mean latency against CPU at W µs per core,
with h the CPU one interrupt costs, coalescing does not pay below λ* = 1/√(W·h) packets/s
per queue, and above it the best window is about 0.6·√(2·W·h). Changes move at most two
powers of two per interval and only when the target differs by at least one (hysteresis),
so the NIC is not rewritten for noise. Pure: measurements in, a proposal with its reason out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GOAL_WEIGHT_US = {"latency": 20.0, "balanced": 100.0, "throughput": 500.0, "efficiency": 500.0}
WINDOWS = (0, 2, 4, 8, 16, 32, 64, 128, 256)
FRAMES = 128  # a frame cap well above a window's worth at the rates where windows pay


@dataclass(frozen=True)
class QueueLoad:
    packets: float  # per second, measured
    interrupts: float  # per second, measured
    cpu: int | None = None  # where the queue is served


@dataclass(frozen=True)
class Proposal:
    rx_usecs: int
    rx_frames: int
    reason: str


def target_window(packets: float, weight_us: float, irq_cost_us: float) -> int:
    """The window (µs, from WINDOWS) the square-root rule gives for `packets` per second per queue."""
    if packets <= 0:
        return 0
    threshold = 1.0 / math.sqrt(weight_us * 1e-6 * irq_cost_us * 1e-6)
    if packets < threshold:
        return 0
    ideal = 0.6 * math.sqrt(2 * weight_us * irq_cost_us)
    return min(WINDOWS, key=lambda w: abs(math.log2(max(w, 1)) - math.log2(ideal)) if w else math.inf)


def propose(queues: list[QueueLoad], current: tuple[int, int], goal: str = "balanced",
            irq_cost_us: float = 1.5) -> Proposal | None:  # fmt: skip
    """A new (rx-usecs, rx-frames) for the device, or None to keep what it has."""
    if not queues:
        return None
    weight = GOAL_WEIGHT_US[goal]
    busiest = max(q.packets for q in queues)
    want = target_window(busiest, weight, irq_cost_us)
    usecs, frames = current
    if want == usecs and (want == 0 or frames == FRAMES):
        return None
    here = WINDOWS.index(usecs) if usecs in WINDOWS else min(range(len(WINDOWS)), key=lambda i: abs(WINDOWS[i] - usecs))
    there = WINDOWS.index(want)
    if abs(there - here) < 1 and want != 0:
        return None
    step = max(-2, min(2, there - here))
    new = WINDOWS[max(0, min(len(WINDOWS) - 1, here + step))] if want else 0
    why = (f"busiest queue {busiest:,.0f} pkt/s: " + (f"above {1e6 / math.sqrt(weight * irq_cost_us):,.0f}, "
           f"coalescing pays; target {want} µs" if want else "too few packets for a window to pay")
           + f" ({goal}: {weight:g} µs per core, {irq_cost_us:g} µs per interrupt)")  # fmt: skip
    return Proposal(new, FRAMES if new else 1, why)
