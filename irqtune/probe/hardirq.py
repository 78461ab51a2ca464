"""hardirq: time in hard-IRQ action handlers, per IRQ.

Raw tracepoints `irq_handler_entry`/`irq_handler_exit`: the entry stores a timestamp
in a one-slot per-CPU array (hard-IRQ handlers do not nest on a CPU), the exit adds
the duration to an array indexed by IRQ number with atomic adds. Returns of IRQ_NONE
(a shared line's handler saying "not mine", or a spurious interrupt) are counted
apart as `unhandled` and kept out of the timings; /proc/interrupts counts both. No string is read: action names come
from /proc/interrupts in user space. On a shared line (several actions), each
handler's own time and IRQ_NONE count are kept by its position: the kernel runs a
line's handlers in list order, one after the other with interrupts off, and
/proc/interrupts prints them in the same order. Compare bcc's hardirqs, which copies the
action name and hashes it on every interrupt.
"""

from __future__ import annotations

from .base import C_COMMON, Histogram, ProbeSpec

C_SOURCE = r"""
struct irq_stat { u64 count; u64 sum; u64 max; u64 unhandled; u64 slots[SLOTS]; };
struct start { u64 ts; u32 irq_plus_one; u32 pos; };  /* pos: how many handlers of this IRQ ran in a row */
struct action_key { u32 irq; u32 pos; };
struct action_stat { u64 count; u64 sum; u64 max; u64 unhandled; };
BPF_PERCPU_ARRAY(hardirq_start, struct start, 1);
BPF_ARRAY(hardirq_stats, struct irq_stat, MAX_IRQ);
BPF_ARRAY(hardirq_nactions, u32, MAX_IRQ);  /* written by user space: >1 only for shared lines */
BPF_HASH(hardirq_actions, struct action_key, struct action_stat, 1024);
BPF_ARRAY(hardirq_overflow, u64, 1);

RAW_TRACEPOINT_PROBE(irq_handler_entry) {
    u32 zero = 0, irq = (u32)ctx->args[0];
    struct start *st = hardirq_start.lookup(&zero);
    if (!st)
        return 0;
    st->ts = bpf_ktime_get_ns();
    if (st->irq_plus_one == irq + 1) {
        st->pos++;
    } else {
        st->irq_plus_one = irq + 1;
        st->pos = 0;
    }
    return 0;
}

static __always_inline void count_action(u32 irq, u32 pos, u64 delta, int handled) {
    u32 *n = hardirq_nactions.lookup(&irq);
    if (!n || *n < 2)
        return;
    /* a shared line runs all its handlers, in list order, on one CPU with interrupts off:
       the k-th handler in a row is action k mod n, the order /proc/interrupts prints them in */
    struct action_key key = {.irq = irq, .pos = pos % *n};
    struct action_stat zero = {};
    struct action_stat *a = hardirq_actions.lookup_or_try_init(&key, &zero);
    if (!a)
        return;
    if (!handled) {
        __sync_fetch_and_add(&a->unhandled, 1);
        return;
    }
    __sync_fetch_and_add(&a->count, 1);
    __sync_fetch_and_add(&a->sum, delta);
    if (delta > a->max)
        a->max = delta;
}

RAW_TRACEPOINT_PROBE(irq_handler_exit) {
    u32 zero = 0;
    struct start *st = hardirq_start.lookup(&zero);
    if (!st || !st->ts)
        return 0;
    u64 delta = bpf_ktime_get_ns() - st->ts;
    st->ts = 0;
    u32 irq = (u32)ctx->args[0];
    int handled = (int)ctx->args[2] != 0;
    count_action(irq, st->pos, delta, handled);
    struct irq_stat *s = hardirq_stats.lookup(&irq);
    if (!s) {
        u64 *lost = hardirq_overflow.lookup(&zero);
        if (lost)
            __sync_fetch_and_add(lost, 1);
        return 0;
    }
    if (!handled) {  /* IRQ_NONE: not this handler's (shared line) or spurious */
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


def prepare(bpf, ctx: dict) -> None:
    """Tell the program which lines are shared and by how many actions."""
    table = bpf["hardirq_nactions"]
    for irq, actions in ctx.get("shared_irqs", {}).items():
        if irq < ctx["max_irq"]:
            table[table.Key(irq)] = table.Leaf(len(actions))


def read(bpf, ctx: dict) -> dict:
    shared = ctx.get("shared_irqs", {})
    per_action: dict[int, dict[str, dict]] = {}
    for key, a in bpf["hardirq_actions"].items():
        names = shared.get(key.irq, ())
        name = names[key.pos] if key.pos < len(names) else f"#{key.pos}"
        per_action.setdefault(key.irq, {})[name] = {
            "count": a.count, "unhandled": a.unhandled, "sum_seconds": a.sum / 1e9, "max_seconds": a.max / 1e9,
        }  # fmt: skip
    irqs, unhandled = {}, {}
    for key, stat in bpf["hardirq_stats"].items():
        if stat.count:
            hist = Histogram()
            hist.add(stat.count, stat.sum, stat.max, stat.slots)
            irqs[key.value] = hist
        if stat.unhandled:
            unhandled[key.value] = stat.unhandled
    overflow = sum(v.value for v in bpf["hardirq_overflow"].values())
    return {"irqs": irqs, "unhandled": unhandled, "actions": per_action, "irq_beyond_map": overflow}


SPEC = ProbeSpec(
    name="hardirq",
    summary="time in hard-IRQ handlers per IRQ (IRQ_NONE excluded)",
    tracepoints=("irq:irq_handler_entry", "irq:irq_handler_exit"),
    source=source,
    read=read,
    prepare=prepare,
)
