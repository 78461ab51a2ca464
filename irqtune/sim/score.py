"""The scorecard (physics.md §10.3): every scenario under the baselines, the oracles and irqtune.

For each scenario and policy: worst-phase p99, mean CPU on interrupt handling, interrupts/s,
drops/s and the objective J (`objective.py`); the normalised score is
(J_defaults − J_policy) / (J_defaults − J_oracle): 1 = as good as the dynamic oracle,
0 = no better than the driver defaults, below 0 = worse than leaving the host alone.
Where the defaults are already optimal (J_defaults ≈ J_oracle) the score is 1 if the policy
is within 1 % of them, else how much worse, relative to J_defaults.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from .objective import scenario_cost
from .policy import make_policy
from .run import run_scenario
from .scenario import library, load_scenario

POLICIES = ("defaults", "dim", "aim", "oracle-static", "oracle", "irqtune")
FLAT = 0.01  # relative: defaults this close to the oracle leave nothing to gain


@dataclass
class Cell:
    scenario: str
    policy: str
    cost: float
    p99_us: float
    cpu: float  # on interrupt handling: IRQs, timer polls, spinning, NVMe completions (not packet processing)
    irq_rate: float
    dropped_pps: float
    score: float = 0.0


def score_run(name: str, policy: str, seed: int, duration: float | None) -> Cell:
    spec = load_scenario(library().get(name, name))
    if duration:
        scale = duration / spec.seconds
        for phase in spec.phases:
            phase.seconds = max(1.0, round(phase.seconds * scale))
    with tempfile.TemporaryDirectory(prefix="irqtune-score-") as tree:
        results, _, _ = run_scenario(spec, tree, seed=seed, policy=make_policy(policy))
    seconds = sum(r.seconds for r in results)
    p99 = max([r.p99_us for r in results if r.offered_pps] + [v["p99_us"] for r in results for v in r.nvme.values()],
              default=0.0)  # fmt: skip
    cpu = sum(r.seconds * (r.overhead_cpu + sum(v["cpu"] for v in r.nvme.values())) for r in results) / seconds
    irqs = sum(r.seconds * (r.irq_rate + sum(v["irq_rate"] for v in r.nvme.values())) for r in results) / seconds
    drops = sum(r.seconds * r.dropped_pps for r in results) / seconds
    return Cell(name, policy, scenario_cost(results), p99, cpu, irqs, drops)


def normalise(cells: list[Cell]) -> None:
    by_scenario: dict[str, dict[str, Cell]] = {}
    for cell in cells:
        by_scenario.setdefault(cell.scenario, {})[cell.policy] = cell
    for row in by_scenario.values():
        default, oracle = row["defaults"].cost, row["oracle"].cost
        gain = default - oracle
        for cell in row.values():
            if gain > FLAT * default:
                cell.score = (default - cell.cost) / gain
            else:
                cell.score = 1.0 if cell.cost <= default * (1 + FLAT) else 1.0 - (cell.cost - default) / default


def scorecard(names: list[str] | None = None, policies: tuple[str, ...] = POLICIES, seed: int = 1,
              duration: float | None = None, progress=None) -> list[Cell]:  # fmt: skip
    cells = []
    for name in names or sorted(library()):
        for policy in policies:
            cells.append(score_run(name, policy, seed, duration))
            if progress:
                progress(cells[-1])
    normalise(cells)
    return cells
