"""The driver's adaptive-rx inside a simulation step: DIM (mlx5-like) or Intel's AIM, per queue.

Both decide far faster than a control interval: DIM once per 64 interrupts, AIM at every
interrupt. Within a step the queue is driven decision by decision against the closed form
(the settings in force give an interrupt rate and packets per interrupt; the sample between
decisions is drawn with Poisson noise), and the step's result is the time-weighted mix of
the settings it went through. DIM keeps its state across steps, as the driver does.
Decisions per step are capped (MAX_DECISIONS); the rest of the step runs at the last setting.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..model.queue import QueueResult
from .dim import NEVENTS, Dim, calc_stats
from .draws import poisson
from .workload import mix

MAX_DECISIONS = 400
AIM_EVENTS = 1  # AIM decides at every interrupt

Evaluate = Callable[[int, int], QueueResult]  # (rx-usecs µs, rx-frames) -> result at the current load


class AdaptiveQueue:
    """One queue's in-driver moderation state."""

    def __init__(self, algorithm: str, flavour: str) -> None:
        self.algorithm = algorithm
        if algorithm == "dim":
            self.state = Dim("cqe" if flavour == "timer-restart" else "eqe")
        else:
            from .aim import Aim

            self.state = Aim()

    @property
    def setting(self) -> tuple[int, int]:
        if self.algorithm == "dim":
            return self.state.profile
        return round(self.state.usecs), 0

    def run(self, seconds: float, evaluate: Evaluate, packet_bytes: int, rng: random.Random) -> QueueResult:
        cache: dict[tuple[int, int], QueueResult] = {}
        spent: dict[tuple[int, int], float] = {}
        elapsed, decisions = 0.0, 0
        events = NEVENTS if self.algorithm == "dim" else AIM_EVENTS
        while elapsed < seconds and decisions < MAX_DECISIONS:
            setting = self.setting
            result = cache.get(setting) or cache.setdefault(setting, evaluate(*setting))
            if result.irq_rate <= 0:
                break  # idle, or NAPI never re-arms: no events, no decisions
            span = min(rng.gammavariate(events, 1.0 / result.irq_rate), seconds - elapsed)
            spent[setting] = spent.get(setting, 0.0) + span
            elapsed += span
            if self.algorithm == "dim":
                packets = poisson(rng, result.delivered * span)
                self.state.decide(calc_stats(packets, packets * packet_bytes, span * 1e6))
            else:  # the interrupt was raised by a packet: 1 + Poisson(the rest)
                packets = 1 + poisson(rng, max(0.0, result.packets_per_irq - 1.0))
                self.state.update(packets, packets * packet_bytes)
            decisions += 1
        setting = self.setting
        last = cache.get(setting) or cache.setdefault(setting, evaluate(*setting))
        spent[setting] = spent.get(setting, 0.0) + max(0.0, seconds - elapsed)
        return mix([(t, cache[s]) for s, t in spent.items() if t > 0]) if spent else last
