"""tlb: TLB flushes per CPU by reason, pages flushed, and who sends shootdowns (x86).

Raw tracepoint `tlb_flush(reason, pages)`. Reasons are the kernel's enum
tlb_flush_reason. `remote_shootdown` is a flush received from another CPU (the
TLB row of /proc/interrupts); `remote_send_ipi` is this CPU asking others to flush,
and only for those is the sending task's name read (rare compared with the rest).

x86 counts a received shootdown in the TLB row before flush_tlb_func() looks at it, then
traces it as `remote_shootdown`, or as `remote_wrong_cpu` (6.13+) when the CPU had already
switched to another mm, or not at all when the CPU is on init_mm, lazy, or on an INVLPGB
global ASID. `remote_wrong_cpu` also fires on the sending CPU itself when it is left in
the mm's CPU mask (not a TLB-row event). So remote_shootdown never exceeds the TLB delta
of the same window, and falls short of it only by the wrong-CPU and untraced receipts.
Reasons a newer kernel adds are kept, named by their number.
"""

from __future__ import annotations

from .base import ProbeSpec

REASONS = (
    "task_switch", "remote_shootdown", "local_shootdown", "local_mm_shootdown", "remote_send_ipi", "remote_wrong_cpu",
)  # fmt: skip

C_SOURCE = r"""
#define NR_REASONS 16
#define REMOTE_SEND_IPI 4
struct tlb_stat { u64 count; u64 pages; u64 full; };
struct comm_key { char comm[16]; };
BPF_PERCPU_ARRAY(tlb_stats, struct tlb_stat, NR_REASONS);
BPF_HASH(tlb_senders, struct comm_key, u64, 1024);

RAW_TRACEPOINT_PROBE(tlb_flush) {
    u32 reason = (u32)ctx->args[0];
    u64 pages = ctx->args[1];
    struct tlb_stat *s = tlb_stats.lookup(&reason);
    if (!s)
        return 0;
    s->count++;
    if (pages == (u64)-1)
        s->full++;
    else
        s->pages += pages;
    if (reason == REMOTE_SEND_IPI) {
        struct comm_key key = {};
        bpf_get_current_comm(&key.comm, sizeof(key.comm));
        u64 zero = 0;
        u64 *n = tlb_senders.lookup_or_try_init(&key, &zero);
        if (n)
            __sync_fetch_and_add(n, 1);
    }
    return 0;
}
"""


def source(ctx: dict) -> str:
    return C_SOURCE


def read(bpf, ctx: dict) -> dict:
    reasons = {}
    for key, per_cpu in bpf["tlb_stats"].items():
        name = REASONS[key.value] if key.value < len(REASONS) else str(key.value)
        cpus = {cpu: s.count for cpu, s in enumerate(per_cpu) if s.count}
        if cpus:
            reasons[name] = {
                "per_cpu": cpus,
                "count": sum(cpus.values()),
                "pages": sum(s.pages for s in per_cpu),
                "full_flushes": sum(s.full for s in per_cpu),
            }
    senders = {k.comm.decode(errors="replace"): v.value for k, v in bpf["tlb_senders"].items()}
    return {"reasons": reasons, "senders": dict(sorted(senders.items(), key=lambda kv: kv[1], reverse=True))}


SPEC = ProbeSpec(
    name="tlb",
    summary="TLB flushes per CPU by reason; shootdown senders by task",
    tracepoints=("tlb:tlb_flush",),
    source=source,
    read=read,
    arch=("x86_64", "i686", "i386"),
)
