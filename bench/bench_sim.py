"""Benchmark: the simulator's speed targets (issue 5).

Run:  .venv/bin/python bench/bench_sim.py

1. A 64-queue NIC at 25 Mpps: one step of 1 s of simulated time (model every queue, move
   counters, render /proc and /sys) must take at most 50 ms of wall time, with the model's
   memo cleared before each step (as when every setting changed) and with it kept.
2. A full 60 s scenario with percentiles (`irqtune simulate` end to end, minus printing)
   must take at most 10 s, under the defaults, DIM, the dynamic oracle and irqtune.
3. The closed form alone: evaluations per second, plain and with NAPI deferral.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irqtune.model.queue import Napi, nic_queue
from irqtune.sim.machine import SimMachine, _queue
from irqtune.sim.policy import make_policy
from irqtune.sim.run import run_scenario
from irqtune.sim.scenario import library, load_scenario

FULL_RUNS = [("line-rate-small", "defaults"), ("line-rate-small", "dim"), ("diurnal", "oracle"),
             ("load-step", "irqtune"), ("memcached-high", "oracle"), ("bursty", "dim")]  # fmt: skip

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


def step_times(scenario, clear: bool) -> list[float]:
    with tempfile.TemporaryDirectory() as tree:
        host = SimMachine(scenario, tree, seed=1)
        times = []
        for _ in range(20):
            if clear:
                _queue.cache_clear()
            start = time.perf_counter()
            host.step(1.0, scenario.phases[0])
            times.append(time.perf_counter() - start)
    return times


def evaluations_per_second(napi: Napi | None, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        nic_queue(390_625, 0.5e-6, 1.5e-6, (i % 64) * 1e-6, 32, napi=napi)
    return n / (time.perf_counter() - start)


def main() -> int:
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    scenario = load_scenario("bench.toml", SCENARIO)
    ok = True
    for clear in (True, False):
        times = step_times(scenario, clear)
        step_ms = statistics.median(times) * 1e3
        ok &= step_ms <= 50
        print(f"64-queue NIC at 25 Mpps, one 1 s step, memo {'cleared' if clear else 'kept'}: median {step_ms:.1f} ms, "
              f"best {min(times) * 1e3:.1f} ms (target <= 50)")  # fmt: skip
    for name, policy in FULL_RUNS:
        spec = load_scenario(library()[name])
        _queue.cache_clear()
        with tempfile.TemporaryDirectory() as tree:
            start = time.perf_counter()
            results, _, _ = run_scenario(spec, tree, seed=1, policy=make_policy(policy))
            wall = time.perf_counter() - start
        ok &= wall <= 10 * spec.seconds / 60
        p99 = max(r.p99_us for r in results)
        print(f"{name} ({spec.seconds:g} s simulated) under {policy}: {wall:.2f} s wall, worst phase p99 {p99:,.1f} us "
              f"(target <= 10 s per 60 s)")  # fmt: skip
    print(
        f"closed form: {evaluations_per_second(None, 5000):,.0f} evaluations/s plain, "
        f"{evaluations_per_second(Napi(defer=10, gro_flush=20e-6), 300):,.0f}/s with NAPI deferral"
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
