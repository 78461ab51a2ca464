"""Benchmark: is irqtune cheap enough on the largest hosts?

Run:  .venv/bin/python bench/bench_parse.py [--repeat N]

1. Parse the 1152-CPU PCP fixture (13 MB /proc/interrupts) into the snapshot's
   interrupt table and compare with the floor, `data.split()` on the same bytes,
   measured interleaved in this process. Target: ratio <= 2.0.
2. One whole snapshot of this machine (all /proc files and /proc/irq/N/*) plus the
   rates against the previous one. Target: <= 10 ms.

Reports the best (minimum) and median of N interleaved runs; the ratio uses minima.
"""

from __future__ import annotations

import argparse
import bz2
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from irqtune.host import Host
from irqtune.measure.rates import compute_rates
from irqtune.measure.snapshot import take_snapshot
from irqtune.parse.interrupts import parse_interrupts

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "procfs"  # origins in SOURCES.md there
FIXTURE = "interrupts-pcp-x86_64-1152cpu-i40e-lpfc.txt.bz2"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_big_parse(repeat: int) -> tuple[float, float]:
    data = bz2.decompress((FIXTURES / FIXTURE).read_bytes())
    table = parse_interrupts(data)
    assert len(table.cpus) == 1152 and len(table.rows) == 1056 and not table.problems
    floor, parse = [], []
    for _ in range(repeat):
        floor.append(timed(lambda: data.split()))
        parse.append(timed(lambda: parse_interrupts(data)))
    print(f"1152-CPU /proc/interrupts: {len(data) / 1e6:.1f} MB, {len(table.rows)} rows x {len(table.cpus)} CPUs")
    print(
        f"  floor data.split():        best {min(floor) * 1e3:7.2f} ms  median {statistics.median(floor) * 1e3:7.2f} ms"
    )
    print(
        f"  parse into snapshot table: best {min(parse) * 1e3:7.2f} ms  median {statistics.median(parse) * 1e3:7.2f} ms"
    )
    ratio = min(parse) / min(floor)
    print(f"  ratio parse/floor: {ratio:.2f} (target <= 2.00)")
    return ratio, min(parse)


def bench_this_host(repeat: int) -> float:
    host = Host("/")
    previous = take_snapshot(host)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        snap = take_snapshot(host)
        compute_rates(previous, snap)
        times.append(time.perf_counter() - start)
        previous = snap
    rows = len(previous.interrupts.rows) if previous.interrupts else 0
    print(f"this host: snapshot ({rows} interrupt rows, {len(previous.affinity)} IRQ affinities) + rates")
    print(f"  best {min(times) * 1e3:.2f} ms  median {statistics.median(times) * 1e3:.2f} ms (target <= 10 ms)")
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}  python {sys.version.split()[0]}")
    ratio, _ = bench_big_parse(args.repeat)
    host_ms = bench_this_host(args.repeat * 4) * 1e3 if os.path.exists("/proc/interrupts") else 0.0
    ok = ratio <= 2.0 and host_ms <= 10.0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
