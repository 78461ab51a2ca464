"""`irqtune simulate`: run a scenario on a simulated clock and summarise each phase.

The tree is rendered under `--tree` (a temporary directory by default), so irqtune's
own commands can be pointed at it with `--root` while or after it runs. Results are
reproducible for a given seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .host import SimHost
from .scenario import Scenario


@dataclass
class PhaseResult:
    name: str
    seconds: float
    offered_pps: float
    delivered_pps: float
    irq_rate: float
    cpu: float  # CPUs used by interrupt handling (sum over queues)
    mean_latency_us: float  # packet-weighted over queues
    settings: dict


def run_scenario(scenario: Scenario, tree: str, seed: int = 1, step: float = 1.0) -> list[PhaseResult]:
    host = SimHost(scenario, tree, seed=seed)
    results = []
    for phase in scenario.phases:
        steps, elapsed = [], 0.0
        while elapsed < phase.seconds - 1e-9:
            dt = min(step, phase.seconds - elapsed)
            steps.append((dt, host.step(dt, phase)))
            elapsed += dt
        total = sum(dt for dt, _ in steps)
        queues = [(dt, q) for dt, qs in steps for q in qs]
        delivered = sum(dt * q.rate for dt, q in queues) / total
        weight = sum(dt * q.rate for dt, q in queues) or 1.0
        results.append(
            PhaseResult(
                name=phase.name or f"phase{len(results)}",
                seconds=total,
                offered_pps=phase.rate_pps,
                delivered_pps=delivered,
                irq_rate=sum(dt * q.irq_rate for dt, q in queues) / total,
                cpu=sum(dt * q.cpu_used for dt, q in queues) / total,
                mean_latency_us=sum(dt * q.rate * q.latency for dt, q in queues) / weight * 1e6,
                settings={nic.name: {"rx_usecs": nic.rx_usecs, "rx_frames": nic.rx_frames} for nic in scenario.nics},
            )
        )
    return results


def to_json(results: list[PhaseResult], seed: int) -> dict:
    return {"schema": 1, "seed": seed, "phases": [asdict(r) for r in results]}
