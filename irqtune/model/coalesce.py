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
class UsecsRules:
    """What a driver's set_coalesce does with an rx-usecs value (docs/physics.md §1.6): small values select an
    adaptive mode (`modes`), fixed delays take `fixed` (low, high) µs, 0 turns moderation off, anything else is
    refused with EINVAL. Why it matters: writing 8 to e1000e is refused, and 3 is not 3 µs."""

    modes: dict[int, str]
    fixed: tuple[int, int]

    def rejected(self, usecs: int) -> bool:
        return usecs != 0 and usecs not in self.modes and not self.fixed[0] <= usecs <= self.fixed[1]


# From the kernel (drivers/net/ethernet/intel/...), the rx-usecs checks of each driver's set_coalesce:
DRIVER_USECS = {
    # e1000e/ethtool.c e1000_set_coalesce: EINVAL above E1000_MAX_ITR_USECS (10000), for 5..E1000_MIN_ITR_USECS-1
    # (10, e1000.h) and for 2; 1, 3 and 4 keep itr_setting as a mode (e1000_get_coalesce reads them back as is).
    # Names: e1000e/param.c e1000e_check_options (InterruptThrottleRate; 4: "simplified (2000-8000 ints)"; 3 is the
    # driver's default).
    "e1000e": UsecsRules({1: "dynamic", 3: "dynamic conservative", 4: "simplified"}, (10, 10000)),
    # igb/igb_ethtool.c igb_set_coalesce: EINVAL above IGB_MAX_ITR_USECS (10000, igb.h), for 4..IGB_MIN_ITR_USECS-1
    # (10) and for 2; 1 and 3 are rx_itr_setting modes (igb_main.c igb_set_itr: "conservative mode (itr 3)
    # eliminates the lowest_latency setting"); IGB_DEFAULT_ITR is 3.
    "igb": UsecsRules({1: "dynamic", 3: "dynamic conservative"}, (10, 10000)),
    # igc/igc_ethtool.c igc_ethtool_set_coalesce: the same checks with IGC_MIN/MAX_ITR_USECS (10, 10000, igc.h).
    "igc": UsecsRules({1: "dynamic", 3: "dynamic conservative"}, (10, 10000)),
    # ixgbe/ixgbe_ethtool.c ixgbe_set_coalesce: EINVAL above IXGBE_MAX_EITR >> 2 (0xFF8 >> 2 = 1022, ixgbe_type.h);
    # 1 is dynamic ITR (rx_itr_setting 1, starting at IXGBE_20K_ITR), 2 and up are stored << 2 as a fixed gap.
    "ixgbe": UsecsRules({1: "dynamic"}, (2, 1022)),
}


def usecs_rules(driver: str | None) -> UsecsRules | None:
    return DRIVER_USECS.get(driver or "")


def rx_usecs_mode(driver: str | None, usecs: int) -> str | None:
    """The name of the adaptive mode `usecs` selects on this driver; None where it is a delay (or unknown)."""
    rules = usecs_rules(driver)
    return rules.modes.get(usecs) if rules else None


def writable_usecs(driver: str | None, usecs: int) -> int:
    """The nearest rx-usecs the driver takes as a fixed delay: 0 stays 0 (moderation off), values below its
    fixed range rise to its minimum, values above fall to its maximum. Drivers without rules: unchanged."""
    rules = usecs_rules(driver)
    if rules is None or usecs <= 0:
        return usecs
    return min(rules.fixed[1], max(rules.fixed[0], usecs))


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
