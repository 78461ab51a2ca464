"""hardirq: time in hard-IRQ action handlers, per IRQ.

Raw tracepoints `irq_handler_entry`/`irq_handler_exit`: the entry stores a timestamp
in a one-slot per-CPU array (hard-IRQ handlers do not nest on a CPU), the exit adds
the duration to an array indexed by IRQ number with atomic adds. Returns of IRQ_NONE
(a shared line's handler saying "not mine", or a spurious interrupt) are counted
apart as `unhandled` and kept out of the timings; /proc/interrupts counts both. No string is read: action names come
from /proc/interrupts in user space. Compare bcc's hardirqs, which copies the
action name and hashes it on every interrupt.
"""

from __future__ import annotations

from .base import C_COMMON, Histogram, ProbeSpec

C_SOURCE = r"""
struct irq_stat { u64 count; u64 sum; u64 max; u64 unhandled; u64 slots[SLOTS]; };
BPF_PERCPU_ARRAY(hardirq_start, u64, 1);
BPF_ARRAY(hardirq_stats, struct irq_stat, MAX_IRQ);
BPF_ARRAY(hardirq_overflow, u64, 1);

RAW_TRACEPOINT_PROBE(irq_handler_entry) {
    u32 zero = 0;
    u64 *ts = hardirq_start.lookup(&zero);
    if (ts)
        *ts = bpf_ktime_get_ns();
    return 0;
}

RAW_TRACEPOINT_PROBE(irq_handler_exit) {
    u32 zero = 0;
    u64 *ts = hardirq_start.lookup(&zero);
    if (!ts || !*ts)
        return 0;
    u64 delta = bpf_ktime_get_ns() - *ts;
    *ts = 0;
    u32 irq = (u32)ctx->args[0];
    struct irq_stat *s = hardirq_stats.lookup(&irq);
    if (!s) {
        u64 *lost = hardirq_overflow.lookup(&zero);
        if (lost)
            __sync_fetch_and_add(lost, 1);
        return 0;
    }
    if ((int)ctx->args[2] == 0) {  /* IRQ_NONE: not this handler's (shared line) or spurious */
        __sync_fetch_and_add(&s->unhandled, 1);
        return 0;
    }
    __sync_fetch_and_add(&s->count, 1);
    __sync_fetch_and_add(&s->sum, delta);
    if (delta > s->max)
        s->max = delta;  /* racy but monotone enough for a maximum */
    u32 slot = log2_slot(delta);
    if (slot < SLOTS)
        __sync_fetch_and_add(&s->slots[slot], 1);
    return 0;
}
"""


def source(ctx: dict) -> str:
    return f"#define MAX_IRQ {ctx['max_irq']}\n" + C_COMMON + C_SOURCE


def read(bpf, ctx: dict) -> dict:
    irqs, unhandled = {}, {}
    for key, stat in bpf["hardirq_stats"].items():
        if stat.count:
            hist = Histogram()
            hist.add(stat.count, stat.sum, stat.max, stat.slots)
            irqs[key.value] = hist
        if stat.unhandled:
            unhandled[key.value] = stat.unhandled
    overflow = sum(v.value for v in bpf["hardirq_overflow"].values())
    return {"irqs": irqs, "unhandled": unhandled, "irq_beyond_map": overflow}


SPEC = ProbeSpec(
    name="hardirq",
    summary="time in hard-IRQ handlers per IRQ (IRQ_NONE excluded)",
    tracepoints=("irq:irq_handler_entry", "irq:irq_handler_exit"),
    source=source,
    read=read,
)
