"""timer: local timer interrupts (ticks and hrtimer expiries) per CPU, x86.

Raw tracepoint `irq_vectors:local_timer_entry`. A nohz_full CPU running one task
should see almost none; one that still ticks is a finding. Elsewhere the LOC (or
arch timer) rows of /proc/interrupts give the same count.
"""

from __future__ import annotations

from .base import ProbeSpec

C_SOURCE = r"""
BPF_PERCPU_ARRAY(timer_ticks, u64, 1);

RAW_TRACEPOINT_PROBE(local_timer_entry) {
    u32 zero = 0;
    u64 *n = timer_ticks.lookup(&zero);
    if (n)
        (*n)++;
    return 0;
}
"""


def source(ctx: dict) -> str:
    return C_SOURCE


def read(bpf, ctx: dict) -> dict:
    per_cpu = next(iter(bpf["timer_ticks"].values()), [])
    return {"per_cpu": {cpu: n for cpu, n in enumerate(per_cpu) if n}}


SPEC = ProbeSpec(
    name="timer",
    summary="local timer interrupts per CPU",
    tracepoints=("irq_vectors:local_timer_entry",),
    source=source,
    read=read,
    arch=("x86_64", "i686", "i386"),
)
