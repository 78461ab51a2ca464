"""Benchmark: one control interval of the simulated host, closed form.

Run:  .venv/bin/python bench/bench_sim.py

A 64-queue NIC at 25 Mpps: one step of 1 s of simulated time (model every queue, move
counters, render /proc and /sys) must take at most 50 ms of wall time. Also times the
closed form alone, per queue evaluation.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irqtune.sim.host import SimHost
from irqtune.sim.model import nic_queue
from irqtune.sim.scenario import load_scenario

SCENARIO = """
[host]
cpus = 64
nodes = ["0-31", "32-63"]
[[nic]]
name = "eth0"
queues = 64
service_us = 0.5
[[phase]]
seconds = 60
nic = "eth0"
rate_pps = 25000000
"""


def main() -> int:
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    scenario = load_scenario("bench.toml", SCENARIO)
    with tempfile.TemporaryDirectory() as tree:
        host = SimHost(scenario, tree, seed=1)
        times = []
        for _ in range(20):
            start = time.perf_counter()
            host.step(1.0, scenario.phases[0])
            times.append(time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(10_000):
        nic_queue(390_625, 0.5e-6, 1.5e-6, (i % 64) * 1e-6, 32)
    per_eval = (time.perf_counter() - start) / 10_000
    step_ms = statistics.median(times) * 1e3
    print(
        f"64-queue NIC at 25 Mpps, one 1 s step: median {step_ms:.1f} ms, best {min(times) * 1e3:.1f} ms (target <= 50)"
    )
    print(f"closed form: {per_eval * 1e6:.1f} us per queue evaluation ({1 / per_eval:,.0f} settings/s)")
    ok = step_ms <= 50
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
