"""ipi: inter-processor interrupts sent, by callsite and callback, per target CPU.

Raw tracepoints `ipi_send_cpu` and `ipi_send_cpumask` (Linux 6.4+): one count per
target CPU, so a shootdown sent to 30 CPUs counts 30. The send site and the work
(the callback, e.g. a TLB flush function; none for a reschedule) are kernel
addresses resolved to symbols in user space. On x86 the receive side is counted too
(`irq_vectors` call_function, call_function_single and reschedule entries): these
match the CAL and RES rows of /proc/interrupts.
"""

from __future__ import annotations

from .base import ProbeSpec

RECEIVE_KINDS = ("call_function", "call_function_single", "reschedule")
RECEIVE_TRACEPOINTS = tuple(f"irq_vectors:{kind}_entry" for kind in RECEIVE_KINDS)

C_SOURCE = r"""
struct ipi_key { u64 callsite; u64 callback; };
struct ipi_val { u64 sends; u64 targets; };
BPF_HASH(ipi_sends, struct ipi_key, struct ipi_val, 4096);
BPF_ARRAY(ipi_targets, u64, MAX_CPUS);
BPF_PERCPU_ARRAY(ipi_received, u64, 3);

static __always_inline void count_send(u64 callsite, u64 callback, u64 targets) {
    struct ipi_key key = {.callsite = callsite, .callback = callback};
    struct ipi_val zero = {};
    struct ipi_val *v = ipi_sends.lookup_or_try_init(&key, &zero);
    if (v) {
        __sync_fetch_and_add(&v->sends, 1);
        __sync_fetch_and_add(&v->targets, targets);
    }
}

static __always_inline void count_target(u32 cpu) {
    u64 *n = ipi_targets.lookup(&cpu);
    if (n)
        __sync_fetch_and_add(n, 1);
}

RAW_TRACEPOINT_PROBE(ipi_send_cpu) {
    count_target((u32)ctx->args[0]);
    count_send(ctx->args[1], ctx->args[2], 1);
    return 0;
}

RAW_TRACEPOINT_PROBE(ipi_send_cpumask) {
    unsigned long bits[CPU_WORDS] = {};
    if (bpf_probe_read_kernel(&bits, sizeof(bits), (void *)ctx->args[0]))
        return 0;
    u64 targets = 0;
    for (int w = 0; w < CPU_WORDS; w++) {
        u64 word = bits[w];
        if (!word)
            continue;
        for (int b = 0; b < 64; b++) {
            if (word & (1ULL << b)) {
                count_target(w * 64 + b);
                targets++;
            }
        }
    }
    count_send(ctx->args[1], ctx->args[2], targets);
    return 0;
}

#ifdef X86_VECTORS
static __always_inline void count_received(u32 kind) {
    u64 *n = ipi_received.lookup(&kind);
    if (n)
        (*n)++;
}
RAW_TRACEPOINT_PROBE(call_function_entry) { count_received(0); return 0; }
RAW_TRACEPOINT_PROBE(call_function_single_entry) { count_received(1); return 0; }
RAW_TRACEPOINT_PROBE(reschedule_entry) { count_received(2); return 0; }
#endif
"""


def source(ctx: dict) -> str:
    head = f"#define MAX_CPUS {ctx['max_cpus']}\n#define CPU_WORDS {ctx['cpu_words']}\n"
    if ctx.get("x86_vectors"):
        head += "#define X86_VECTORS 1\n"
    return head + C_SOURCE


def _symbol(bpf, address: int) -> str:
    if not address:
        return "-"
    name = bpf.ksym(address, show_offset=False)
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)


def warm_symbols(bpf, ctx: dict) -> None:
    """Load the kernel symbol table when the probe loads: the first lookup reads /proc/kallsyms (~60 ms),
    which inside `read` would widen the /proc bracket of the window by that much."""
    _symbol(bpf, 1)


def read(bpf, ctx: dict) -> dict:
    sends = []
    for key, val in bpf["ipi_sends"].items():
        callback = _symbol(bpf, key.callback) if key.callback else "reschedule (no callback)"
        sends.append({"callsite": _symbol(bpf, key.callsite), "callback": callback, "sends": val.sends,
                      "targets": val.targets})  # fmt: skip
    sends.sort(key=lambda s: s["targets"], reverse=True)
    targets = {key.value: val.value for key, val in bpf["ipi_targets"].items() if val.value}
    received = {}
    if ctx.get("x86_vectors"):
        for key, per_cpu in bpf["ipi_received"].items():
            received[RECEIVE_KINDS[key.value]] = {cpu: v for cpu, v in enumerate(per_cpu) if v}
    return {"sends": sends, "targets_per_cpu": targets, "received_per_cpu": received,
            "received_total": {k: sum(v.values()) for k, v in received.items()}}  # fmt: skip


SPEC = ProbeSpec(
    name="ipi",
    summary="IPIs sent per callsite/callback and target CPU; x86 receive counts",
    tracepoints=("ipi:ipi_send_cpu", "ipi:ipi_send_cpumask"),
    optional_tracepoints=RECEIVE_TRACEPOINTS,
    source=source,
    read=read,
    prepare=warm_symbols,
)
