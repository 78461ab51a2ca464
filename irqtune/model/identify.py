"""Which moderation a NIC queue really does, fitted to what was measured, starting from its driver's prior.

A driver's name says how its hardware usually reads rx-usecs (`coalesce.DRIVER_FLAVOUR`), but the same
driver can work otherwise: mlx5 in CQE mode restarts its timer on every completion (docs/physics.md §1.6),
firmware and virtual NICs differ. Each window the agent measures one queue's packet rate and interrupt rate
under the setting it holds; every flavour of the queueing model (model/queue.py) predicts that interrupt rate
for the same packets, setting and costs, and the flavour whose predictions stay closest to the measurements
(mean absolute log-ratio over the recent windows) is the one in use. The prior keeps the device unless another
flavour fits clearly better (by IDENTIFY_MARGIN), and windows where the flavours cannot differ (no coalescing
window, no load, deferral on, an overloaded queue) teach nothing. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from .queue import nic_queue

FLAVOURS = ("timer-from-first", "timer-restart", "min-gap")
IDENTIFY_MARGIN = 0.3  # log-ratio: another flavour must fit about 35 % better than the prior to replace it
MIN_SPREAD = 0.2  # log-ratio between the flavours' predictions below which a window cannot tell them apart
MIN_WINDOWS = 2  # informative windows needed before the prior can be replaced


@dataclass(frozen=True)
class Window:
    """One measured window of a queue: packets/s and interrupts/s, under rx-usecs/rx-frames, with the per-packet
    and per-interrupt costs (µs) estimated for it."""

    packets: float
    interrupts: float
    rx_usecs: int
    rx_frames: int
    service_us: float
    irq_cost_us: float


@dataclass(frozen=True)
class Identified:
    flavour: str
    prior: str
    windows: int  # informative windows behind it
    errors: dict[str, float]  # flavour -> mean |log(predicted / measured)| interrupt rate

    def describe(self) -> str:
        if not self.windows:
            return f"{self.flavour} (the driver's usual; no window yet tells the flavours apart)"
        own = f"interrupt-rate error {math.expm1(self.errors[self.flavour]):.0%}"
        if self.flavour == self.prior:
            return f"{self.flavour} (the driver's usual, confirmed by {self.windows} windows: {own})"
        return (f"{self.flavour} (identified from {self.windows} windows: {own}, against "
                f"{math.expm1(self.errors[self.prior]):.0%} for the driver's usual {self.prior})")  # fmt: skip


@lru_cache(maxsize=4096)  # a window is fitted again every pass it stays among the recent ones
def predicted_interrupts(window: Window, flavour: str) -> float | None:
    """The model's interrupt rate for this window under `flavour`; None where it has none (overload)."""
    result = nic_queue(window.packets, window.service_us * 1e-6, window.irq_cost_us * 1e-6, window.rx_usecs * 1e-6,
                       window.rx_frames, flavour)  # fmt: skip
    return None if result.overloaded or result.irq_rate <= 0 else result.irq_rate


def informative(window: Window) -> dict[str, float] | None:
    """Each flavour's predicted interrupt rate, when the flavours predict differently enough for a measurement to
    choose between them; None otherwise."""
    if window.rx_usecs <= 0 or window.packets <= 0 or window.interrupts <= 0:
        return None
    predicted = {f: predicted_interrupts(window, f) for f in FLAVOURS}
    if any(p is None for p in predicted.values()):
        return None
    logs = [math.log(p) for p in predicted.values()]
    return predicted if max(logs) - min(logs) >= MIN_SPREAD else None  # type: ignore[return-value]


def identify(windows: list[Window], prior: str) -> Identified:
    """The flavour that explains the measured interrupt rates best, the prior unless another is clearly better."""
    errors = {f: 0.0 for f in FLAVOURS}
    used = 0
    for window in windows:
        predicted = informative(window)
        if predicted is None:
            continue
        used += 1
        for flavour, rate in predicted.items():
            errors[flavour] += abs(math.log(rate / window.interrupts))
    if used == 0:
        return Identified(prior, prior, 0, {})
    errors = {f: e / used for f, e in errors.items()}
    best = min(errors, key=errors.get)
    if used < MIN_WINDOWS or prior not in errors or errors[prior] - errors[best] <= IDENTIFY_MARGIN:
        best = prior if prior in errors else best
    return Identified(best, prior, used, errors)
