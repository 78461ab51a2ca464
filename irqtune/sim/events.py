"""An event simulation of one NIC RX queue, independent of the closed form (physics.md §9.3).

Packet by packet: Poisson arrivals; the IRQ, when armed, fires at min(first packet + U,
arrival of the F-th packet); the hard IRQ takes h of CPU; NAPI then serves every queued
packet (s each, arrivals during service included) until the ring is empty, and re-arms.
Gives what the closed form cannot: latency percentiles. Seeded, so runs reproduce.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class EventResult:
    irq_rate: float
    cpu: float
    mean_latency: float
    p50: float
    p99: float
    p999: float
    packets: int


def simulate_queue(
    rate: float,
    service: float,
    irq_cost: float,
    usecs: float,
    frames: int,
    packets: int = 200_000,
    seed: int = 1,
    flavour: str = "timer-from-first",
) -> EventResult:
    rng = random.Random(seed)
    arrivals = []
    t = 0.0
    for _ in range(packets):
        t += rng.expovariate(rate)
        arrivals.append(t)
    latencies = [0.0] * packets
    busy = 0.0
    irqs = 0
    i = 0
    free_at = 0.0  # when NAPI finished its last busy period (the IRQ is armed again from then)
    while i < packets:
        first = max(arrivals[i], free_at)  # the first packet after re-arm opens the window
        if frames == 1 or usecs <= 0:
            fire = first
        elif flavour == "timer-restart":  # every packet restarts the timer; the F-th packet fires at once
            last, count, j, fire = first, 1, i + 1, None
            while j < packets and arrivals[j] - last <= usecs:
                last, count, j = arrivals[j], count + 1, j + 1
                if frames and count == frames:
                    fire = last
                    break
            fire = last + usecs if fire is None else fire
        else:
            fire = first + usecs
            if frames > 1 and i + frames - 1 < packets and arrivals[i + frames - 1] < fire:
                fire = max(first, arrivals[i + frames - 1])
        irqs += 1
        clock = fire + irq_cost
        busy += irq_cost
        # exhaustive service: every packet that has arrived by the time the previous one is done
        while i < packets and arrivals[i] <= clock:
            clock = max(clock, arrivals[i]) + service
            busy += service
            latencies[i] = clock - arrivals[i]
            i += 1
        free_at = clock
    span = max(free_at, arrivals[-1])
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return EventResult(irqs / span, busy / span, sum(latencies) / packets, pct(0.5), pct(0.99), pct(0.999), packets)
