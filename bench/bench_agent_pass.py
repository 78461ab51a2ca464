"""Benchmark: the agent's own cost on this host (it runs on every server).

Run:  .venv/bin/python bench/bench_agent_pass.py [--passes N] [--samples N]

An observing agent on the real host (Host("/"), nothing written) runs N passes; the CPU time of each
(time.process_time: this process, user + system) is reported, best and median, and so is that of one
sub-sample between passes (measure/bursts.py: the managed devices' /proc/interrupts rows and /proc/net/dev),
which the agent takes `samples` - 1 times an interval. With the default interval (10 s) and samples (4) the
agent's CPU share is (pass + 3 sub-samples) / 10 s. Then the sub-sample's parse on the largest host we have a
file of (the 1152-CPU PCP fixture, 13 MB /proc/interrupts): 16 rows against the whole parse a pass does.
"""

from __future__ import annotations

import argparse
import bz2
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irqtune.agent.loop import Agent
from irqtune.config import Config
from irqtune.host import Host
from irqtune.parse.interrupts import parse_interrupts

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/procfs/interrupts-pcp-x86_64-1152cpu-i40e-lpfc.txt.bz2"


def cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="irqtune-bench-") as state:
        agent = Agent(Host("/"), Config(), state, time.monotonic)
        agent.run_pass()  # the first pass has no rates yet
        passes = [cpu(agent.run_pass) for _ in range(args.passes)]
        print(f"pass (observe, this host): best {min(passes) * 1e3:6.2f} ms  median "
              f"{statistics.median(passes) * 1e3:6.2f} ms CPU")  # fmt: skip
        if not hasattr(agent, "sample"):
            return 0
        watched = agent.watched
        samples = []
        for _ in range(args.samples):
            agent.due = [0.0]  # due now
            samples.append(cpu(agent.sample))
        irqs = sum(len(v) for v in watched.values())
        print(f"sub-sample ({len(watched)} interfaces, {irqs} IRQs): best {min(samples) * 1e6:6.0f} µs  median "
              f"{statistics.median(samples) * 1e6:6.0f} µs CPU")  # fmt: skip
        share = (statistics.median(passes) + 3 * statistics.median(samples)) / Config().interval
        print(f"default interval {Config().interval:g} s, samples {Config().samples}: {share * 100:.3f} % of a CPU")
    from irqtune.parse.interrupts import parse_rows

    data = bz2.decompress(FIXTURE.read_bytes())
    keys = frozenset(sorted((k for k in parse_interrupts(data).rows if k.isdigit()), key=int)[100:116])
    rows = min(cpu(lambda: parse_rows(data, keys)) for _ in range(5))
    whole = min(cpu(lambda: parse_interrupts(data)) for _ in range(5))
    size = f"1152-CPU /proc/interrupts ({len(data) / 1e6:.1f} MB)"
    print(f"{size}: 16 rows {rows * 1e3:.1f} ms, the whole parse {whole * 1e3:.1f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
