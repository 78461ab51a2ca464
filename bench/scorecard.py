"""Benchmark: the issue-6 scorecard goals (docs/physics.md §10.4), over the whole scenario library.

Run:  .venv/bin/python bench/scorecard.py [--seed N]

Runs `irqtune simulate --score` in-process (every library scenario under defaults, DIM, AIM,
the best static setting, the dynamic oracle and irqtune), plus always-poll (and static:latency,
the best coalescing without spinning, for reference) where the load is closed-loop request/response,
prints the table and checks each goal on the runs (`irqtune/sim/score.py` defines them):
score >= 0.85 everywhere and ahead of DIM where anything can be gained; p99 near always-poll's at a
third of its CPU (closed loop); no p99 drift under unchanged open-loop load (DIM's shown, not
required); back within the oracle's J in <= 3 intervals after a load change; no drops or
time_squeeze below rho 0.8; the critical NIC unmoved by its neighbour's storm; once it has acted in a
phase, never worse than the defaults on each device's goal (settled p99, CPU or J). Exit 0 when all hold.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irqtune.sim import score
from irqtune.sim.score import Check, Run, scorecard

GOALS = {
    "score": f"normalised score >= {score.SCORE_GOAL} on every scenario",
    "ahead-of-dim": "ahead of DIM wherever a policy can gain anything",
    "poll": f"closed-loop request/response: p99 <= {score.POLL_P99:.2f}x always-poll's at <= "
    f"{score.POLL_CPU:.2f}x its CPU (interrupt handling incl. spinning)",
    "steady": f"open-loop, load unchanged: after {score.SETTLE} intervals no interval's p99 over "
    f"{1 + score.LATENCY_TOL:.2f}x the level it settled at (at least the oracle's), interval by interval",
    "recovery": f"after a load change: J within {1 + score.COST_TOL:.2f}x the oracle's per interval within "
    f"{score.RECOVERY_INTERVALS} intervals, and staying there",
    "health": f"at rho < {score.RHO_HEALTHY}: no drops, time_squeeze < {score.SQUEEZE_PER_CPU:g}/s per CPU",
    "critical": "critical NIC: p99 and IRQ rate unchanged while its neighbour storms",
    "settled": f"once it acted in a phase, never worse than the defaults (within {score.SETTLED_TOL:.0%}) on each "
    "device's goal: p99 (latency), CPU (throughput, efficiency), J (balanced)",
}


def collect(seed: int) -> tuple[list, dict[tuple[str, str], Run]]:
    runs: dict[tuple[str, str], Run] = {}
    cells = scorecard(seed=seed, on_run=lambda run: runs.__setitem__((run.scenario, run.policy), run))
    for name in sorted({n for (n, _), run in runs.items() if any("closed-loop" in a for a in run.arrivals)}):
        for policy in ("always-poll", "static:latency"):
            runs[(name, policy)] = score.run_policy(name, policy, seed)
    return cells, runs


def checks(cells: list, runs: dict[tuple[str, str], Run]) -> list[Check]:
    out = score.score_goals(cells)
    for name in sorted({n for n, _ in runs}):
        mine, oracle = runs[(name, "irqtune")], runs[(name, "oracle")]
        if (name, "always-poll") in runs:
            out += score.poll_goal(mine, runs[(name, "always-poll")])
            out += [_info(c) for c in score.poll_goal(runs[(name, "static:latency")], runs[(name, "always-poll")])]
        out += score.steady_goal(mine, oracle) + score.steady_goal(runs[(name, "dim")], oracle, required=False)
        out += score.recovery_goal(mine, oracle) + score.health_goal(mine, oracle) + score.critical_goal(mine)
        out += score.settled_goal(mine, runs[(name, "defaults")])
    return out


def _info(check: Check) -> Check:
    check.required = False
    return check


def print_table(cells: list) -> None:
    by: dict[str, dict[str, float]] = {}
    for c in cells:
        by.setdefault(c.scenario, {})[c.policy] = c.score
    policies = list(next(iter(by.values())))
    print("scenario".ljust(20) + "".join(p.rjust(15) for p in policies))
    for scenario, scores in by.items():
        print(scenario.ljust(20) + "".join(f"{scores[p]:15.2f}" for p in policies))


def print_goals(found: list[Check]) -> bool:
    ok = True
    for goal, text in GOALS.items():
        mine = [c for c in found if c.goal == goal]
        passed = all(c.ok for c in mine if c.required)
        ok &= passed
        print(f"\ngoal {goal}: {text}: {'PASS' if passed else 'FAIL'} ({sum(c.ok for c in mine if c.required)}"
              f"/{sum(c.required for c in mine)})")  # fmt: skip
        for c in mine:
            if goal in ("score", "ahead-of-dim") and c.ok:
                continue  # the table shows them; only misses are worth a line
            mark = ("ok  " if c.ok else "MISS") if c.required else "info"
            print(f"  {mark} {c.scenario}{'/' + c.phase if c.phase else ''}: {c.numbers}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    start = time.perf_counter()
    cells, runs = collect(args.seed)
    wall = time.perf_counter() - start
    print_table(cells)
    ok = print_goals(checks(cells, runs))
    print(f"\n{len(runs)} runs in {wall:.1f} s")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
