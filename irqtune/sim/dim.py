"""Linux DIM (lib/dim/net_dim.c, dim.c), ported decision for decision, as a baseline policy.

One decision per 64 interrupts from (bytes, packets, events) per millisecond, compared with
the previous sample at a 10 % significance; one profile step left or right; parking on
top and when tired. Profile tables as in net_dim.c (EQE and CQE modes, RX).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..model.queue import nic_queue

NEVENTS = 64
PROFILES = {  # RX (usecs, frames)
    "eqe": ((1, 256), (8, 256), (64, 256), (128, 256), (256, 256)),
    "cqe": ((2, 256), (8, 128), (16, 64), (32, 64), (64, 64)),
}
PARKING_ON_TOP, PARKING_TIRED, GOING_RIGHT, GOING_LEFT = range(4)
SAME, BETTER, WORSE = range(3)
STEPPED, TOO_TIRED, ON_EDGE = range(3)


@dataclass(frozen=True)
class Stats:
    ppms: int = 0
    bpms: int = 0
    epms: int = 0


def significant(val: int, ref: int) -> bool:
    return bool(ref) and (100 * abs(val - ref)) // ref > 10


def compare(curr: Stats, prev: Stats) -> int:
    if not prev.bpms:
        return BETTER if curr.bpms else SAME
    if significant(curr.bpms, prev.bpms):
        return BETTER if curr.bpms > prev.bpms else WORSE
    if not prev.ppms:
        return BETTER if curr.ppms else SAME
    if significant(curr.ppms, prev.ppms):
        return BETTER if curr.ppms > prev.ppms else WORSE
    if not prev.epms:
        return SAME
    if significant(curr.epms, prev.epms):
        return BETTER if curr.epms < prev.epms else WORSE
    return SAME


def calc_stats(packets: int, nbytes: int, delta_us: float) -> Stats:
    """dim_calc_stats: per-millisecond rates, rounded up."""
    delta = max(1, int(delta_us))
    return Stats(math.ceil(packets * 1000 / delta), math.ceil(nbytes * 1000 / delta), math.ceil(NEVENTS * 1000 / delta))


class Dim:
    """`struct dim` of one channel; zero-initialised like drivers do, profile set by the driver."""

    def __init__(self, mode: str = "eqe", profile_ix: int = 1) -> None:
        self.profiles = PROFILES[mode]
        self.profile_ix = profile_ix
        self.tune_state = PARKING_ON_TOP
        self.steps_left = self.steps_right = self.tired = 0
        self.prev = Stats()

    @property
    def profile(self) -> tuple[int, int]:
        return self.profiles[self.profile_ix]

    def _step(self) -> int:
        if self.tired == len(self.profiles) * 2:
            return TOO_TIRED
        if self.tune_state == GOING_RIGHT:
            if self.profile_ix == len(self.profiles) - 1:
                return ON_EDGE
            self.profile_ix += 1
            self.steps_right += 1
        elif self.tune_state == GOING_LEFT:
            if self.profile_ix == 0:
                return ON_EDGE
            self.profile_ix -= 1
            self.steps_left += 1
        self.tired += 1
        return STEPPED

    def _exit_parking(self) -> None:
        self.tune_state = GOING_LEFT if self.profile_ix else GOING_RIGHT
        self._step()

    def _on_top(self) -> bool:
        if self.tune_state in (PARKING_ON_TOP, PARKING_TIRED):
            return True
        if self.tune_state == GOING_RIGHT:
            return self.steps_left > 1 and self.steps_right == 1
        return self.steps_right > 1 and self.steps_left == 1

    def _turn(self) -> None:
        if self.tune_state == GOING_RIGHT:
            self.tune_state, self.steps_left = GOING_LEFT, 0
        elif self.tune_state == GOING_LEFT:
            self.tune_state, self.steps_right = GOING_RIGHT, 0

    def _park_on_top(self) -> None:
        self.steps_right = self.steps_left = self.tired = 0
        self.tune_state = PARKING_ON_TOP

    def _park_tired(self) -> None:
        self.steps_right = self.steps_left = 0
        self.tune_state = PARKING_TIRED

    def decide(self, curr: Stats) -> bool:
        """net_dim_decision: True when the profile changed."""
        prev_state, prev_ix = self.tune_state, self.profile_ix
        if self.tune_state == PARKING_ON_TOP:
            if compare(curr, self.prev) != SAME:
                self._exit_parking()
        elif self.tune_state == PARKING_TIRED:
            self.tired -= 1
            if not self.tired:
                self._exit_parking()
        else:
            if compare(curr, self.prev) != BETTER:
                self._turn()
            if self._on_top():
                self._park_on_top()
            else:
                result = self._step()
                if result == ON_EDGE:
                    self._park_on_top()
                elif result == TOO_TIRED:
                    self._park_tired()
        if prev_state != PARKING_ON_TOP or self.tune_state != PARKING_ON_TOP:
            self.prev = curr
        return self.profile_ix != prev_ix


def run_dim_open_loop(
    rate: float,
    service: float,
    irq_cost: float,
    decisions: int,
    packet_bytes: int = 64,
    seed: int = 1,
    mode: str = "eqe",
) -> list[int]:
    """DIM driving the closed-form queue under open-loop Poisson load: the profile index per decision.

    Each sample spans 64 interrupt cycles; a cycle is an idle gap until the next packet
    (exponential, mean 1/λ) plus the window and the busy period (their means, from the model),
    and the packets in the span are Poisson.
    """
    rng, dim, trace = random.Random(seed), Dim(mode), []
    flavour = "timer-from-first" if mode == "eqe" else "timer-restart"
    for _ in range(decisions):
        usecs, frames = dim.profile
        result = nic_queue(rate, service, irq_cost, usecs * 1e-6, frames, flavour)
        fixed = max(0.0, 1.0 / result.irq_rate - 1.0 / rate) if result.irq_rate > 0 else 1.0
        span = rng.gammavariate(NEVENTS, 1.0 / rate) + NEVENTS * fixed
        mean = rate * span
        packets = max(0, round(rng.gauss(mean, math.sqrt(mean))))
        dim.decide(calc_stats(packets, packets * packet_bytes, span * 1e6))
        trace.append(dim.profile_ix)
    return trace
