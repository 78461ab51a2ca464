"""One probe window: attach, read /proc, zero the maps, wait, read the maps, read /proc, detach.

The /proc deltas of the window travel with the probe data so a reader (or a test) can
check the eBPF counts against the kernel's own counters. The delta shown beside the
counts brackets the probes' counting window: /proc/interrupts is read just before the
maps are zeroed and just after they are read, so each count may fall short of it only by
the events of those few milliseconds, never exceed it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..host import Host
from ..measure.rates import compute_rates
from ..measure.snapshot import Snapshot
from ..parse.interrupts import parse_interrupts
from .runner import ProbeResult, ProbeSession

PROC_ROWS = ("LOC", "RES", "CAL", "TLB")


@dataclass(slots=True)
class ProbeWindow:
    duration: float  # seconds the probes counted: from zeroing the maps to reading them
    results: dict[str, ProbeResult]
    proc: dict  # {"interrupts": {irq: count}, "LOC": n, ...}: /proc deltas bracketing the counting window
    proc_seconds: float  # time between the two /proc readings of `proc` (a little more than `duration`)
    proc_inner: dict  # the same read inside the counting window: a lower bound for each count
    actions: dict[int, str]  # IRQ -> its action names, from /proc/interrupts
    interrupted: bool = False  # Ctrl-C ended the window before the asked-for duration
    compile_seconds: float = 0.0  # compiling, loading and attaching the probes, before the window


def run_window(
    host: Host, names: list[str], duration: float, progress: Callable[[str], None] | None = None
) -> ProbeWindow:
    """Ctrl-C (KeyboardInterrupt) during the wait ends the window early: the maps are still read and
    the window reports its real length. A Ctrl-C while loading or reading propagates (detached)."""
    with ProbeSession(host, names) as session:
        if progress:
            loaded = [n for n, r in session.results.items() if r.status == "ok"]
            progress(f"probing {', '.join(loaded) or 'nothing'} for {duration:g} s (compiled and attached in "
                     f"{session.compile_seconds:.1f} s)")  # fmt: skip
        bracket_start = read_interrupts(host)
        counting_start = time.monotonic()
        session.reset()
        inner_start = read_interrupts(host)
        interrupted = _wait(duration)
        inner_end = read_interrupts(host)
        results = session.read()
        counting_end = time.monotonic()
        bracket_end = read_interrupts(host)
    actions = {}
    if bracket_end.interrupts:
        table = bracket_end.interrupts
        actions = {row.irq: ", ".join(row.actions) for row in table.rows.values() if row.irq is not None}
    return ProbeWindow(
        duration=counting_end - counting_start,
        results=results,
        proc=_deltas(bracket_start, bracket_end),
        proc_seconds=bracket_end.monotonic - bracket_start.monotonic,
        proc_inner=_deltas(inner_start, inner_end),
        actions=actions,
        interrupted=interrupted,
        compile_seconds=session.compile_seconds,
    )


def read_interrupts(host: Host) -> Snapshot:
    """Only /proc/interrupts, the one file the deltas need: the reading adds the least time to the bracket."""
    snap = Snapshot(taken_at=time.time(), monotonic=time.monotonic(), root=host.root)
    try:
        snap.interrupts = parse_interrupts(host.read_bytes(host.proc("interrupts")))
    except OSError as err:  # no deltas then, the probe data is still shown
        snap.unavailable["/proc/interrupts"] = err.strerror or str(err)
    return snap


def _wait(seconds: float) -> bool:
    """Sleep for the window; True when Ctrl-C cut it short (what was counted so far is still wanted)."""
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        return True
    return False


def _deltas(before: Snapshot, after: Snapshot) -> dict:
    proc: dict = {"interrupts": {}}
    if not before.interrupts or not after.interrupts:
        return proc
    rates = compute_rates(before, after)
    for key, row in rates.interrupts.items():
        count = round(row.total * rates.interval)
        if key.isdigit():
            if count:
                proc["interrupts"][int(key)] = count
        elif key in PROC_ROWS:
            proc[key] = count
    return proc
