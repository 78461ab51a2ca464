"""softirq: time in each softirq vector per CPU, and the wait from raise to run.

Raw tracepoints `softirq_raise`/`softirq_entry`/`softirq_exit`. All state is per
CPU (a softirq is raised on, and runs on, the local CPU; they do not nest), so the
hot path needs no atomics. The wait keeps the oldest un-run raise per vector: a long
wait means softirq work was deferred (to ksoftirqd, or behind other vectors).
"""

from __future__ import annotations

from ..parse.softirqs import VECTORS  # vector numbers are positions in the kernel's softirq_to_name
from .base import C_COMMON, Histogram, ProbeSpec

C_SOURCE = r"""
#define NR_VEC 10
struct sirq_stat {
    u64 count; u64 sum; u64 max; u64 slots[SLOTS];
    u64 waits; u64 wait_sum; u64 wait_max; u64 wait_slots[SLOTS];
};
BPF_PERCPU_ARRAY(softirq_stats, struct sirq_stat, NR_VEC);
BPF_PERCPU_ARRAY(softirq_raised, u64, NR_VEC);
BPF_PERCPU_ARRAY(softirq_start, u64, 1);

RAW_TRACEPOINT_PROBE(softirq_raise) {
    u32 vec = (u32)ctx->args[0];
    u64 *ts = softirq_raised.lookup(&vec);
    if (ts && !*ts)
        *ts = bpf_ktime_get_ns();
    return 0;
}

RAW_TRACEPOINT_PROBE(softirq_entry) {
    u32 vec = (u32)ctx->args[0], zero = 0;
    u64 now = bpf_ktime_get_ns();
    u64 *start = softirq_start.lookup(&zero);
    if (start)
        *start = now;
    u64 *raised = softirq_raised.lookup(&vec);
    struct sirq_stat *s = softirq_stats.lookup(&vec);
    if (!raised || !s || !*raised)
        return 0;
    u64 wait = now - *raised;
    *raised = 0;
    s->waits++;
    s->wait_sum += wait;
    if (wait > s->wait_max)
        s->wait_max = wait;
    u32 slot = log2_slot(wait);
    if (slot < SLOTS)
        s->wait_slots[slot]++;
    return 0;
}

RAW_TRACEPOINT_PROBE(softirq_exit) {
    u32 vec = (u32)ctx->args[0], zero = 0;
    u64 *start = softirq_start.lookup(&zero);
    struct sirq_stat *s = softirq_stats.lookup(&vec);
    if (!start || !*start || !s)
        return 0;
    u64 delta = bpf_ktime_get_ns() - *start;
    *start = 0;
    s->count++;
    s->sum += delta;
    if (delta > s->max)
        s->max = delta;
    u32 slot = log2_slot(delta);
    if (slot < SLOTS)
        s->slots[slot]++;
    return 0;
}
"""


def source(ctx: dict) -> str:
    return C_COMMON + C_SOURCE


def read(bpf, ctx: dict) -> dict:
    vectors = {}
    for key, per_cpu in bpf["softirq_stats"].items():
        name = VECTORS[key.value] if key.value < len(VECTORS) else str(key.value)
        run, wait = Histogram(), Histogram()
        cpus = {}
        for cpu, s in enumerate(per_cpu):
            if s.count:
                run.add(s.count, s.sum, s.max, s.slots)
                cpus[cpu] = {"count": s.count, "sum_seconds": s.sum / 1e9}
            if s.waits:
                wait.add(s.waits, s.wait_sum, s.wait_max, s.wait_slots)
        if run.count or wait.count:
            vectors[name] = {"run": run, "wait": wait, "per_cpu": cpus}
    return {"vectors": vectors}


SPEC = ProbeSpec(
    name="softirq",
    summary="softirq run time per vector and CPU, and raise-to-run wait",
    tracepoints=("irq:softirq_raise", "irq:softirq_entry", "irq:softirq_exit"),
    source=source,
    read=read,
)
