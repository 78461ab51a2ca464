"""Isolated and nohz_full CPUs (docs/physics.md §5, §6; isolated = sysfs isolated, nohz_full or isolcpus)
* `tlb-on-isolated`: TLB shootdowns received >= 1/s (/proc/interrupts TLB; any
  sustained rate is jitter there, §5). The sending task comes from the tlb
  probe (comm of `remote_send_ipi` flushes over all CPUs, as the probe does not
  tie a sender to a target; a pid when the data carries one). Advice by sender:
  khugepaged -> THP off, kcompactd -> compaction, ksmd -> KSM off, kswapd ->
  memory pressure; a user task -> its munmap/madvise(DONTNEED)/mprotect churn
  (allocator, GC, JIT), NUMA balancing off, and a shootdown reaches only CPUs
  that run that process's threads: keep it off the isolated CPUs.
* `ipi-on-isolated`: function-call IPIs other than TLB shootdowns (CAL - TLB:
  current kernels count shootdowns in both rows, older ones print CAL without
  them, where this undercounts) or rescheduling IPIs (RES) >= 1/s. The ipi
  probe names the kernel call sites that send IPIs (all CPUs; it records no
  task) and counts what each CPU received. Advice: a second runnable task or
  cross-CPU wake-ups (RES), TLB-like broadcasts, kernel text patching,
  membarrier (CAL), with a hint per known call site.
* `tlb-churn`: elsewhere, TLB shootdowns above 1,000/s per CPU (§5 heuristic):
  the same advice, `info`.
* `nohz-full-ticking`: findings.py already reports a nohz_full CPU taking more
  than 10 timer interrupts/s (LOC). It is reported here only when the probes say
  what keeps the tick: IPIs the CPU received (reschedule: a second runnable task;
  function calls; TLB shootdowns) or call sites that kick the nohz tick. Use
  `supersede()` so the sourced finding replaces the bare one.
Without probe data the isolated-CPU rules still work from the /proc/interrupts
TLB, CAL and RES rates, without the source. Without /proc rates they fall back
to the probes' per-CPU counts when the probe window's duration is known.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ...findings import Finding, Measurements, Thresholds
from ...parse.common import format_cpulist
from .probes import ProbeView

# -- isolated CPUs (docs/physics.md §5, §6) ----------------------------------------------------------------------------
TLB_ON_ISOLATED_PER_S = 1.0  # any sustained shootdown rate on an isolated CPU is jitter (§5)
IPI_ON_ISOLATED_PER_S = 1.0  # likewise function-call and rescheduling IPIs
TLB_CHURN_PER_S = 1000.0  # elsewhere, > ~1k/s per CPU sustained points at mapping churn (§5)
TOP_SOURCES = 3  # senders named per finding

# Kernel threads that send TLB shootdowns, and what to do about each (docs/physics.md §5).
TLB_SENDER_ADVICE = (
    ("khugepaged", "THP collapse: echo never > /sys/kernel/mm/transparent_hugepage/enabled (or madvise), "
                   "or khugepaged/defrag=0"),
    ("kcompactd", "memory compaction: transparent_hugepage/defrag=never, vm.compaction_proactiveness=0"),
    ("ksmd", "KSM page merging: echo 0 > /sys/kernel/mm/ksm/run"),
    ("kswapd", "reclaim of mapped pages under memory pressure: free memory, mlock the isolated task's memory"),
)  # fmt: skip
TLB_TASK_ADVICE = (
    "a task's munmap/madvise(MADV_DONTNEED)/mprotect churn (allocator trimming, GC, JIT) or NUMA balancing "
    "(kernel.numa_balancing=0): keep memory mapped (preallocate, no free in the hot path); a shootdown reaches "
    "only CPUs that run the process's threads, so keep its other threads off the isolated CPUs"
)
# IPI send sites (the ipi probe's `callsite`: the caller of the IPI-sending helper, resolved by kallsyms) and what
# they usually mean; matched as substrings, first match wins. Reschedules are labelled "(reschedule)".
IPI_CALLSITE_HINTS = (
    ("(reschedule)", "reschedules: a task woken or preempting there, i.e. a second task shares the CPU"),
    ("ttwu_queue_wakelist", "cross-CPU wake-ups of a task sleeping there (block on I/O, futex, epoll): busy-poll "
                            "instead of sleeping, or keep waker and sleeper together"),
    ("on_each_cpu", "broadcast function calls: TLB shootdowns on x86, kernel text patching (static keys, ftrace, "
                    "BPF attach/detach), other kernel-wide work"),
    ("smp_call_function_many", "broadcast function calls such as membarrier(2) from a runtime (JIT, userspace RCU)"),
    ("generic_exec_single", "a function call on one CPU (smp_call_function_single: perf, MSR or cpufreq reads, "
                            "per-CPU statistics)"),
    ("irq_work_queue_on", "irq_work sent to the CPU: nohz_full tick kicks (POSIX CPU timers, perf events, a second "
                          "task), perf"),
    ("tick_nohz", "a nohz_full tick kick: a POSIX CPU timer or perf event on that CPU, or a second task"),
)  # fmt: skip
TICK_KICK_SITES = ("tick_nohz", "nohz_full_kick", "irq_work_queue_on")  # send sites that restart a nohz_full tick
RES_ADVICE = (
    "rescheduling IPIs mean tasks are woken or preempted there: move every other task off (taskset, cpusets; "
    "check with ps -eLo psr,comm), and busy-poll rather than sleep in the isolated task"
)
TLB_UNKNOWN_ADVICE = (
    "find the sender (irqtune probe --only tlb names it); the usual ones: munmap/madvise(MADV_DONTNEED)/mprotect "
    "churn (allocators, GC, JIT), NUMA balancing (kernel.numa_balancing=0), THP/khugepaged (transparent_hugepage="
    "never), KSM (ksm/run=0), reclaim of mapped page cache; a shootdown reaches only CPUs that run the process's "
    "threads, so keep other processes' threads off the isolated CPUs"
)
CAL_ADVICE = (
    "function-call IPIs come from kernel work aimed at this CPU: stop it at the source (TLB-like broadcasts, "
    "text patching, membarrier, per-CPU reads)"
)
CAL_FIND_SENDER = "irqtune probe --only ipi names the send sites"


# -- isolated CPUs: TLB shootdowns, IPIs, the tick ------------------------------------------------------------------
def _proc_row(m: Measurements, key: str) -> dict[int, float] | None:
    """Per-CPU rates of one /proc/interrupts row; None without /proc rates, {} when the row is absent."""
    if m.rates is None:
        return None
    row = m.rates.interrupts.get(key)
    return dict(row.per_cpu) if row else {}


def _row_rates(m: Measurements, view: ProbeView) -> dict[str, dict[int, float]]:
    """TLB, CAL, RES and LOC per CPU from /proc, else from the probes' counts over their window."""
    rows = {key: _proc_row(m, key) for key in ("TLB", "CAL", "RES", "LOC")}
    if all(rates is None for rates in rows.values()):
        tlb = ((view.get("tlb") or {}).get("reasons") or {}).get("remote_shootdown") or {}
        received = (view.get("ipi") or {}).get("received_per_cpu") or {}
        calls: dict[int, float] = {}
        for kind in ("call_function", "call_function_single"):
            for cpu, rate in view.per_cpu_rate(received.get(kind)).items():
                calls[cpu] = calls.get(cpu, 0.0) + rate
        rows = {
            "TLB": view.per_cpu_rate(tlb.get("per_cpu")),
            "CAL": calls,
            "RES": view.per_cpu_rate(received.get("reschedule")),
            "LOC": view.per_cpu_rate((view.get("timer") or {}).get("per_cpu")),
        }
    return {key: rates or {} for key, rates in rows.items()}


def _counted(mapping: Mapping | None) -> list[tuple[str, int]]:
    """Sender name -> count (or {"count": n, "pid": p}) as (label, count), largest first."""
    out = []
    for name, value in (mapping or {}).items():
        if isinstance(value, Mapping):
            count = int(value.get("count", 0))
            pid = value.get("pid")
            label = f"{name} (pid {pid})" if pid is not None else str(name)
        else:
            count, label = int(value), str(name)
        if count:
            out.append((label, count))
    return sorted(out, key=lambda kv: kv[1], reverse=True)


def _tlb_senders(view: ProbeView) -> list[tuple[str, int]]:
    return _counted((view.get("tlb") or {}).get("senders"))


def _tlb_advice(senders: list[tuple[str, int]]) -> str:
    """Advice for the top senders: a kernel thread's own remedy, else the user-task churn advice."""
    hints = []
    for label, _ in senders[:TOP_SOURCES]:
        hint = next((text for prefix, text in TLB_SENDER_ADVICE if label.startswith(prefix)), TLB_TASK_ADVICE)
        if hint not in hints:
            hints.append(hint)
    return "; ".join(hints) or TLB_UNKNOWN_ADVICE


def _sources(pairs: list[tuple[str, int]], what: str) -> str:
    if not pairs:
        return ""
    total = sum(n for _, n in pairs)
    named = ", ".join(f"{label} {n:,}" for label, n in pairs[:TOP_SOURCES])
    return f"; {what} in the probe window (all CPUs): {named} ({total:,} in all)"


def _ipi_sites(view: ProbeView) -> list[tuple[str, int]]:
    """IPI send sites by targets: "callsite -> callback" (with comm/pid when the probe gives them)."""
    out = []
    for send in (view.get("ipi") or {}).get("sends") or []:
        callback = send.get("callback") or "-"
        label = str(send.get("callsite", "?")) + (" (reschedule)" if callback.startswith("reschedule") else "")
        if send.get("comm"):
            label += f" from {send['comm']}" + (f" (pid {send['pid']})" if send.get("pid") is not None else "")
        out.append((label, int(send.get("targets") or send.get("sends") or 0)))
    return sorted((p for p in out if p[1]), key=lambda kv: kv[1], reverse=True)


def _site_hints(sites: list[tuple[str, int]]) -> list[str]:
    hints: list[str] = []
    for label, _ in sites[:TOP_SOURCES]:
        for needle, hint in IPI_CALLSITE_HINTS:
            if needle in label and hint not in hints:
                hints.append(hint)
                break
    return hints


def _received(view: ProbeView, kind: str, cpu: int) -> int:
    counts = ((view.get("ipi") or {}).get("received_per_cpu") or {}).get(kind) or {}
    return int(counts.get(str(cpu), counts.get(cpu, 0)))


def advise_isolation(m: Measurements, view: ProbeView, t: Thresholds) -> Iterator[Finding]:
    """TLB shootdowns and IPIs on isolated CPUs, TLB churn elsewhere, and who keeps a nohz_full tick."""
    rows = _row_rates(m, view)
    isolated = m.topology.isolated_any
    senders, sites = _tlb_senders(view), _ipi_sites(view)
    churn = []
    for cpu, rate in sorted(rows["TLB"].items()):
        if cpu in isolated and rate >= TLB_ON_ISOLATED_PER_S:
            yield Finding(
                "warning", "tlb-on-isolated",
                f"isolated CPU {cpu} receives {rate:,.1f} TLB shootdowns/s{_sources(senders, 'shootdown senders')}. "
                f"Advice: {_tlb_advice(senders)}.",
                cpu=cpu,
            )  # fmt: skip
        elif rate > TLB_CHURN_PER_S:  # an isolated CPU above 1/s took the branch above
            churn.append(cpu)
    if churn:
        top = max(rows["TLB"][cpu] for cpu in churn)
        yield Finding(
            "info", "tlb-churn",
            f"CPU {format_cpulist(churn)} receive over {TLB_CHURN_PER_S:,.0f} TLB shootdowns/s (up to {top:,.0f}/s)"
            f"{_sources(senders, 'shootdown senders')}. Advice: {_tlb_advice(senders)}.",
        )  # fmt: skip
    for cpu in sorted(isolated):
        calls = max(rows["CAL"].get(cpu, 0.0) - rows["TLB"].get(cpu, 0.0), 0.0)
        res = rows["RES"].get(cpu, 0.0)
        if calls < IPI_ON_ISOLATED_PER_S and res < IPI_ON_ISOLATED_PER_S:
            continue
        parts = [f"{what} {rate:,.1f}/s" for what, rate in (("function calls", calls), ("reschedules", res)) if rate]
        hints = _site_hints(sites)
        advice = [RES_ADVICE] if res >= IPI_ON_ISOLATED_PER_S else []
        advice += [CAL_ADVICE] if calls >= IPI_ON_ISOLATED_PER_S else []
        advice += [CAL_FIND_SENDER] if not sites else []
        yield Finding(
            "warning", "ipi-on-isolated",
            f"isolated CPU {cpu} receives IPIs: {', '.join(parts)}{_sources(sites, 'IPI send sites')}"
            + (f" ({'; '.join(hints)})" if hints else "")
            + f". Advice: {'; '.join(advice)}.",
            cpu=cpu,
        )  # fmt: skip
    yield from _nohz_sources(m, view, t, rows, senders, sites)


def _nohz_sources(
    m: Measurements,
    view: ProbeView,
    t: Thresholds,
    rows: dict[str, dict[int, float]],
    senders: list[tuple[str, int]],
    sites: list[tuple[str, int]],
) -> Iterator[Finding]:
    """A ticking nohz_full CPU, with what the probes saw keep it busy; nothing when they saw nothing."""
    tlb_received = (((view.get("tlb") or {}).get("reasons") or {}).get("remote_shootdown") or {}).get("per_cpu") or {}
    kicks = [(label, n) for label, n in sites if any(site in label for site in TICK_KICK_SITES)]
    for cpu in m.topology.nohz_full:
        ticks = rows["LOC"].get(cpu, 0.0)
        if ticks <= t.nohz_tick_per_s:
            continue
        causes, advice = [], []
        resched = _received(view, "reschedule", cpu)
        if resched:
            causes.append(f"{resched:,} rescheduling IPIs (a second runnable task keeps the tick on)")
            advice.append("move every other task off the CPU (taskset, cpusets) so one task runs there")
        calls = _received(view, "call_function", cpu) + _received(view, "call_function_single", cpu)
        if calls:
            causes.append(f"{calls:,} function-call IPIs")
            advice.append("stop the IPI senders at their source")
        shootdowns = int(tlb_received.get(str(cpu), tlb_received.get(cpu, 0)))
        if shootdowns:
            by = ", ".join(label for label, _ in senders[:TOP_SOURCES])
            causes.append(f"{shootdowns:,} TLB shootdowns" + (f" (senders: {by})" if by else ""))
            advice.append(_tlb_advice(senders))
        if kicks:
            causes.append("tick kicks from " + ", ".join(label for label, _ in kicks[:TOP_SOURCES]))
            advice.append("no POSIX CPU timers or perf events on the task")
        if not causes:
            continue  # findings.py reports the bare tick
        if cpu not in m.topology.rcu_nocbs and m.topology.rcu_nocbs:
            advice.append(f"add CPU {cpu} to rcu_nocbs=")
        advice.append("the task's own timers (nanosleep, timerfd) also count as LOC: prefer polling to sleeping")
        yield Finding(
            "warning", "nohz-full-ticking",
            f"nohz_full CPU {cpu} still takes {ticks:.0f} timer interrupts/s; in the probe window it received "
            f"{'; '.join(causes)}. Advice: {'; '.join(advice)}.",
            cpu=cpu,
        )  # fmt: skip
