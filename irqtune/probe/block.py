"""block: block I/O completion latency per device and issuing CPU (-> hardware queue).

Tracepoints `block:block_rq_issue` and `block:block_rq_complete`, keyed by
(device, sector) like bcc's tracepoint biolatency: no struct request offsets are
needed, so kernel headers that do not match the running kernel are harmless. The
issuing CPU selects the blk-mq hardware queue; user space maps CPUs to queues from
/sys/block/DEV/mq/N/cpu_list. Completions on another CPU than the issuer are
counted too: each one cost an IPI or a remote softirq. This is the input for the
NVMe interrupts-versus-polling decision.
"""

from __future__ import annotations

from .base import C_COMMON, Histogram, ProbeSpec

C_SOURCE = r"""
struct rq_key { u32 dev; u32 pad; u64 sector; };
struct rq_start { u64 ts; u32 cpu; u32 pad; };
struct io_key { u32 dev; u32 cpu; };
struct io_stat { u64 count; u64 sum; u64 max; u64 remote; u64 slots[SLOTS]; };
BPF_HASH(block_start, struct rq_key, struct rq_start, 16384);
BPF_HASH(block_stats, struct io_key, struct io_stat, 4096);

TRACEPOINT_PROBE(block, block_rq_issue) {
    struct rq_key key = {.dev = args->dev, .sector = args->sector};
    struct rq_start start = {.ts = bpf_ktime_get_ns(), .cpu = bpf_get_smp_processor_id()};
    block_start.update(&key, &start);
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_complete) {
    struct rq_key key = {.dev = args->dev, .sector = args->sector};
    struct rq_start *start = block_start.lookup(&key);
    if (!start)
        return 0;
    u64 delta = bpf_ktime_get_ns() - start->ts;
    struct io_key ik = {.dev = args->dev, .cpu = start->cpu};
    u32 here = bpf_get_smp_processor_id();
    u32 issuer = start->cpu;
    block_start.delete(&key);
    struct io_stat zero = {};
    struct io_stat *s = block_stats.lookup_or_try_init(&ik, &zero);
    if (!s)
        return 0;
    __sync_fetch_and_add(&s->count, 1);
    __sync_fetch_and_add(&s->sum, delta);
    if (delta > s->max)
        s->max = delta;
    if (here != issuer)
        __sync_fetch_and_add(&s->remote, 1);
    u32 slot = log2_slot(delta);
    if (slot < SLOTS)
        __sync_fetch_and_add(&s->slots[slot], 1);
    return 0;
}
"""

MINOR_BITS = 20  # the kernel's internal dev_t: major << 20 | minor


def source(ctx: dict) -> str:
    return C_COMMON + C_SOURCE


def read(bpf, ctx: dict) -> dict:
    names: dict[str, str] = ctx.get("block_names", {})
    queues: dict[str, dict[int, int]] = ctx.get("block_queues", {})
    devices: dict[str, dict] = {}
    for key, s in bpf["block_stats"].items():
        dev = f"{key.dev >> MINOR_BITS}:{key.dev & ((1 << MINOR_BITS) - 1)}"
        name = names.get(dev, dev)
        entry = devices.setdefault(name, {"dev": dev, "latency": Histogram(), "remote_completions": 0, "queues": {}})
        entry["latency"].add(s.count, s.sum, s.max, s.slots)
        entry["remote_completions"] += s.remote
        queue = queues.get(name, {}).get(key.cpu)
        label = f"hctx{queue}" if queue is not None else f"cpu{key.cpu}"
        q = entry["queues"].setdefault(label, Histogram())
        q.add(s.count, s.sum, s.max, s.slots)
    return {"devices": devices}


SPEC = ProbeSpec(
    name="block",
    summary="block I/O completion latency per device and hardware queue",
    tracepoints=("block:block_rq_issue", "block:block_rq_complete"),
    source=source,
    read=read,
)
