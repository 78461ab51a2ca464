"""The square-root rule for RX coalescing (docs/physics.md §3.3), and what a queue's load looks like.

Trading mean latency against CPU at W µs per core, with h the CPU one interrupt costs,
coalescing does not pay below λ* = 1/√(W·h) packets/s per queue, and above it the best
window is about 0.6·√(2·W·h). `decide/moderation.py` offers this window as one of the
candidates it predicts. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GOAL_WEIGHT_US = {"latency": 20.0, "balanced": 100.0, "throughput": 500.0, "efficiency": 500.0}
WINDOWS = (0, 2, 4, 8, 16, 32, 64, 128, 256)
FRAMES = 128  # a frame cap well above a window's worth at the rates where windows pay

# What rx-usecs means to a driver (docs/physics.md §1.6, §3): Intel's ITR is a minimum gap between interrupts
# (rx-frames ignored); mlx5 (EQE mode, its default without the rx_cqe_moder flag), ENA and most others
# start the window at the first packet. A driver not listed is taken as timer-from-first.
DRIVER_FLAVOUR = {
    "ice": "min-gap", "i40e": "min-gap", "iavf": "min-gap", "igb": "min-gap", "igc": "min-gap",
    "ixgbe": "min-gap", "ixgbevf": "min-gap", "e1000e": "min-gap", "idpf": "min-gap",
    "mlx5_core": "timer-from-first", "mlx4_en": "timer-from-first", "ena": "timer-from-first",
    "bnxt_en": "timer-from-first", "virtio_net": "timer-from-first",
}  # fmt: skip


def driver_flavour(driver: str | None) -> str:
    return DRIVER_FLAVOUR.get(driver or "", "timer-from-first")


@dataclass(frozen=True)
class QueueLoad:
    packets: float  # per second, measured
    interrupts: float  # per second, measured
    cpu: int | None = None  # where the queue is served


def target_window(packets: float, weight_us: float, irq_cost_us: float) -> int:
    """The window (µs, from WINDOWS) the square-root rule gives for `packets` per second per queue."""
    if packets <= 0:
        return 0
    threshold = 1.0 / math.sqrt(weight_us * 1e-6 * irq_cost_us * 1e-6)
    if packets < threshold:
        return 0
    ideal = 0.6 * math.sqrt(2 * weight_us * irq_cost_us)
    return min(WINDOWS, key=lambda w: abs(math.log2(max(w, 1)) - math.log2(ideal)) if w else math.inf)
