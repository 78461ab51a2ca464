"""`irqtune probe` as text: tables per probe, log2 histograms drawn like bcc's.

Every /proc figure beside a probe count is the delta of the same window (PROC_COLUMN):
read just before the maps were zeroed and just after they were read.
"""

from __future__ import annotations

from ..parse.common import printable
from ..table import Style, table
from .base import Histogram
from .window import ProbeWindow

HIST_WIDTH = 40
PROC_COLUMN = "PROC-SAME-WINDOW"


def log2_histogram(hist: Histogram, unit: str = "usecs") -> list[str]:
    """bcc's print_log2_hist layout, in microseconds."""
    used = [i for i, n in enumerate(hist.slots) if n]
    if not used:
        return []
    peak = max(hist.slots)
    lines = [f"{unit:>24} : count    distribution"]
    for slot in range(min(used), max(used) + 1):
        low = 0 if slot <= 1 else (1 << (slot - 1))
        high = Histogram.upper_ns(slot)
        n = hist.slots[slot]
        bar = "*" * (n * HIST_WIDTH // peak) if peak else ""
        lines.append(f"{_us(low):>10} -> {_us(high):<10} : {n:<8} |{bar:<{HIST_WIDTH}}|")
    return lines


def _us(ns: int) -> str:
    return f"{ns / 1000:.3g}" if ns < 1000 else f"{ns // 1000}"


def _mean_max(hist: Histogram) -> tuple[float, float]:
    return (hist.sum_ns / hist.count / 1000 if hist.count else 0.0, hist.max_ns / 1000)


def render_probes(window: ProbeWindow, style: Style, asked: float | None = None) -> str:
    """The window line first (its real length, also when Ctrl-C shortened it), then one section per probe."""
    out = [window_line(window, asked)]
    for name, result in window.results.items():
        out += ["", style.heading(f"{name.upper()} ({result.status}{': ' + result.reason if result.reason else ''})")]
        if result.status == "ok":
            out += RENDERERS[name](result.data, window.actions, window.proc)
    return "\n".join(out) + "\n"


def window_line(window: ProbeWindow, asked: float | None = None) -> str:
    cut = f" (cut short by Ctrl-C; {asked:g} s asked)" if window.interrupted and asked else ""
    return (
        f"window {window.duration:.3f} s{cut}. {PROC_COLUMN}: /proc deltas read just before the maps were zeroed "
        f"and just after they were read ({window.proc_seconds:.3f} s apart); the probes compiled and attached in "
        f"{window.compile_seconds:.2f} s before it"
    )


def _title(irq: int, actions: dict[int, str]) -> str:
    return printable(actions.get(irq, "-"))


def _hardirq(data: dict, actions: dict[int, str], proc: dict) -> list[str]:
    irqs: dict[int, Histogram] = data["irqs"]
    unhandled: dict[int, int] = data.get("unhandled", {})
    ordered = sorted(irqs.items(), key=lambda kv: kv[1].sum_ns, reverse=True)
    rows = [
        (irq, actions.get(irq, "-"), h.count, unhandled.get(irq, 0), proc.get("interrupts", {}).get(irq),
         *_mean_max(h), h.sum_ns / 1000)
        for irq, h in ordered
    ]  # fmt: skip
    header = ("IRQ", "ACTIONS", "HANDLED", "IRQ_NONE", PROC_COLUMN, "MEAN-us", "MAX-us", "TOTAL-us")
    lines = table(header, rows)
    for irq, split in sorted(data.get("actions", {}).items()):
        parts = ", ".join(
            f"{printable(name)} {a['count']} handled/{a['unhandled']} IRQ_NONE, max {a['max_seconds'] * 1e6:.1f} us"
            for name, a in split.items()
        )
        lines.append(f"IRQ {irq} shared: {parts}")
    for irq, hist in ordered[:3]:
        lines += ["", f"IRQ {irq} ({_title(irq, actions)}) handler time", *log2_histogram(hist)]
    return lines or ["no hard interrupts handled"]


def _softirq(data: dict, actions: dict[int, str], proc: dict) -> list[str]:
    rows = []
    for vector, entry in data["vectors"].items():
        run, wait = entry["run"], entry["wait"]
        rows.append((vector, run.count, *_mean_max(run), *_mean_max(wait)))
    return table(("VECTOR", "COUNT", "MEAN-us", "MAX-us", "WAIT-MEAN-us", "WAIT-MAX-us"), rows)


def _ipi(data: dict, actions: dict[int, str], proc: dict) -> list[str]:
    rows = [(s["callsite"], s["callback"], s["sends"], s["targets"]) for s in data["sends"][:15]]
    lines = table(("CALLSITE", "CALLBACK", "SENDS", "TARGETS"), rows) if rows else ["no IPIs sent"]
    targets = ", ".join(f"{cpu}:{n}" for cpu, n in sorted(data["targets_per_cpu"].items()))
    lines.append(f"targets per CPU: {targets or '-'}")
    received = data.get("received_total", {})
    if received:  # x86: CAL counts both function-call vectors, RES the reschedule vector
        calls = received.get("call_function", 0) + received.get("call_function_single", 0)
        lines.append(
            f"received function calls {calls} (call_function {received.get('call_function', 0)} + "
            f"call_function_single {received.get('call_function_single', 0)}); {_proc(proc, 'CAL')}"
        )
        lines.append(f"received reschedules {received.get('reschedule', 0)}; {_proc(proc, 'RES')}")
    return lines


def _proc(proc: dict, row: str) -> str:
    return f"/proc {row} same window {proc.get(row, '-')}"


def _tlb(data: dict, actions: dict[int, str], proc: dict) -> list[str]:
    reasons = data["reasons"]
    rows = [(reason, r["count"], r["pages"], r["full_flushes"]) for reason, r in reasons.items()]
    lines = table(("REASON", "FLUSHES", "PAGES", "FULL"), rows) if rows else ["no TLB flushes"]
    received = reasons.get("remote_shootdown", {}).get("count", 0)
    lines.append(
        f"received shootdowns {received}; {_proc(proc, 'TLB')} (the TLB row also counts those that found the CPU "
        "on another mm, traced as remote_wrong_cpu, or lazy or idle, not traced)"
    )
    senders = ", ".join(f"{printable(comm)}:{n}" for comm, n in list(data["senders"].items())[:8])
    return [*lines, f"shootdown senders: {senders or '-'}"]


def _napi(data: dict, actions: dict[int, str], proc: dict) -> list[str]:
    rows = [
        (dev, d["instances"], d["polls"], d["packets"], d["budget_exhausted"], d.get("budget"))
        for dev, d in data["devices"].items()
    ]
    return table(("DEVICE", "NAPIS", "POLLS", "PACKETS", "BUDGET-EXHAUSTED", "BUDGET"), rows) if rows else ["no polls"]


def _timer(data: dict, actions: dict[int, str], proc: dict) -> list[str]:
    rows = [(cpu, n) for cpu, n in sorted(data["per_cpu"].items())]
    return table(("CPU", "TICKS"), rows) if rows else ["no local timer interrupts"]


def _block(data: dict, actions: dict[int, str], proc: dict) -> list[str]:
    lines: list[str] = []
    for name, d in data["devices"].items():
        h = d["latency"]
        lines.append(f"{name} ({d['dev']}): {h.count} I/Os, completed on another CPU: {d['remote_completions']}")
        rows = [(q, qh.count, *_mean_max(qh)) for q, qh in sorted(d["queues"].items())]
        lines += table(("QUEUE", "IOS", "MEAN-us", "MAX-us"), rows)
        lines += log2_histogram(h)
    return lines or ["no block I/O completed"]


RENDERERS = {
    "hardirq": _hardirq, "softirq": _softirq, "ipi": _ipi, "tlb": _tlb, "napi": _napi, "timer": _timer,
    "block": _block,
}  # fmt: skip
