"""Benchmark: the issue-6 scorecard goals, over the whole scenario library.

Run:  .venv/bin/python bench/scorecard.py [--seed N]

Runs `irqtune simulate --score` in-process (every library scenario under defaults, DIM, AIM,
the best static setting, the dynamic oracle and irqtune), prints the table, and checks what
can be checked from it: irqtune's normalised score >= 0.85 on every scenario, and irqtune
ahead of DIM wherever a policy can gain anything (rows where every policy scores 1.00 are
ties by construction). Exit 0 when both hold.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irqtune.sim.score import scorecard

GOAL = 0.85


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    start = time.perf_counter()
    cells = scorecard(seed=args.seed)
    wall = time.perf_counter() - start
    by: dict[str, dict[str, float]] = {}
    for c in cells:
        by.setdefault(c.scenario, {})[c.policy] = c.score
    policies = list(next(iter(by.values())))
    print("scenario".ljust(20) + "".join(p.rjust(15) for p in policies))
    ok = True
    for scenario, scores in by.items():
        print(scenario.ljust(20) + "".join(f"{scores[p]:15.2f}" for p in policies))
        flat = all(abs(v - 1.0) < 1e-9 for v in scores.values())
        if scores["irqtune"] < GOAL:
            ok = False
            print(f"  goal missed: irqtune {scores['irqtune']:.2f} < {GOAL}")
        if not flat and scores["irqtune"] <= scores["dim"]:
            ok = False
            print(f"  goal missed: irqtune {scores['irqtune']:.2f} not ahead of DIM {scores['dim']:.2f}")
    print(f"{len(cells)} runs in {wall:.1f} s; goals: irqtune >= {GOAL} everywhere, ahead of DIM where not flat")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
