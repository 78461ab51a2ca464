"""One probe window: attach, read /proc, wait, read /proc again, read the maps, detach.

The /proc deltas over the same window travel with the probe data, so a reader (or a
test) can check the eBPF counts against the kernel's own counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..host import Host
from ..measure.rates import compute_rates
from ..measure.snapshot import take_snapshot
from .runner import ProbeResult, ProbeSession

PROC_ROWS = ("LOC", "RES", "CAL", "TLB")


@dataclass(slots=True)
class ProbeWindow:
    duration: float
    results: dict[str, ProbeResult]
    proc: dict  # {"interrupts": {irq: count}, "LOC": n, "RES": n, ...} inside the probe window
    proc_outer: dict  # the same from just before the maps were zeroed to just after they were read
    actions: dict[int, str]  # IRQ -> its action names, from /proc/interrupts


def run_window(
    host: Host, names: list[str], duration: float, progress: Callable[[str], None] | None = None
) -> ProbeWindow:
    """The probe counts lie between the /proc deltas `proc` (inner) and `proc_outer`: the maps are
    zeroed between the two first readings and read between the two last ones."""
    with ProbeSession(host, names) as session:
        outer_before = take_snapshot(host, with_affinity=False)
        session.reset()
        before = take_snapshot(host, with_affinity=False)
        if progress:
            loaded = [n for n, r in session.results.items() if r.status == "ok"]
            progress(f"probing {', '.join(loaded) or 'nothing'} for {duration:g} s")
        time.sleep(duration)
        after = take_snapshot(host, with_affinity=False)
        results = session.read()
        outer_after = take_snapshot(host, with_affinity=False)
    actions = {}
    if after.interrupts:
        actions = {row.irq: ", ".join(row.actions) for row in after.interrupts.rows.values() if row.irq is not None}
    interval = after.monotonic - before.monotonic
    return ProbeWindow(interval, results, _deltas(before, after), _deltas(outer_before, outer_after), actions)


def _deltas(before, after) -> dict:
    rates = compute_rates(before, after)
    proc: dict = {"interrupts": {}}
    for key, row in rates.interrupts.items():
        count = round(row.total * rates.interval)
        if key.isdigit():
            if count:
                proc["interrupts"][int(key)] = count
        elif key in PROC_ROWS:
            proc[key] = count
    return proc
