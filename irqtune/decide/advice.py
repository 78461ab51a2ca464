"""Advice: NVMe interrupts versus polling, and what disturbs isolated CPUs (who, and what to do).

Pure functions of what was measured: `findings.Measurements` (topology, inventory,
/proc rates), optionally the eBPF probe results (`irqtune probe --json`: the whole
document, its "probes" mapping, or a mapping of probe name to its data) and the
NVMe report (`measure/nvme.py`). Nothing here reads or changes the host: every rule
answers with `findings.Finding`s whose message carries the advice. Entry point:
`advise()`; `supersede()` merges the result into `findings.find_all()`'s.

NVMe: would polling pay? (physics.md §4.3, §9.4, §10.4; needs the block probe)
    Polling removes the interrupt path from every I/O: the IRQ and its handler
    (t_irq, the hardirq probe's mean for the controller's queue IRQs, else 1.5 µs),
    the wake-up of the waiting thread (t_wake 3 µs) and the C-state exit of an idle
    core (2 µs, Skylake-SP C1). Together S ≈ 6.5 µs. An application waits for the
    completion latency L the block probe measures (issue to completion, which holds
    the device time and the IRQ) plus t_wake, so polling saves the share
    S / (L + t_wake):
      * >= 20 %  `nvme-poll-would-pay` (Optane/XL-Flash class, L <= ~29 µs; physics
        §4.3: 20-50 % lower latency). Advice: nvme.poll_queues=N (module parameter,
        read when the controller is probed: modprobe.d or the kernel command line,
        then a controller reset or reboot) and io_uring IORING_SETUP_IOPOLL in the
        application; IORING_SETUP_HYBRID_IOPOLL (6.13+) keeps most of the gain at
        about interrupt-level CPU (§9.4).
      * < 10 %   `nvme-poll-not-worth` (NAND class, L >= ~62 µs; §4.3: < 5 % for a
        full core, 7 % with a C1 exit). Keep interrupts. A `warning` when poll
        queues are configured anyway.
      * between  `nvme-poll-hybrid`: hybrid IOPOLL, not a spinning core.
    NAND-class polling is never advised (§10.4) unless every CPU serving the
    device's busy queues is idle anyway (`cpu_idle` >= 90 %): then the spin costs
    only idle time, and the poller also avoids the exit from the deep C-states an
    idle core sits in; that case is reported as `nvme-poll-would-pay`.
    The cost is reported beside it: a poller spins while I/O is outstanding,
    1 - e^(-λ·(L - S)) of a core per queue at λ completions/s (M/G/∞, §9.4; a
    synchronous loop spins all the time), against λ·(t_irq + t_wake) for interrupts.
    Fewer than 50 completions in the window give no verdict. Limitation: at the
    device's own IOPS cap (a closed loop deeper than the device can serve) polling
    gains nothing, while queueing only lowers the share here gradually.

NVMe placement: `nvme-managed-on-isolated` (physics §6, §7.4)
    NVMe queue IRQs are kernel-managed (one vector per queue, spread over the CPUs,
    affinity writes refused with EIO/EPERM). When one is served on an isolated CPU
    (a rate >= 1/s there, else its effective affinity): boot with
    isolcpus=managed_irq,... so the kernel steers it to a housekeeping CPU of the
    queue's mask. managed_irq is best effort: a queue whose mask (requested affinity,
    else the hardware queue's cpu_list from the NVMe report) holds only isolated CPUs
    keeps its IRQ there, firing only for I/O submitted on those CPUs - keep that I/O
    off them. One `warning` per controller, listing its IRQs.

Isolated and nohz_full CPUs (physics §5, §6; isolated = sysfs isolated, nohz_full or isolcpus)
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

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ..findings import SEVERITY_ORDER, Finding, Measurements, Thresholds
from ..measure.inventory import IrqInfo
from ..measure.nvme import NvmeReport
from ..parse.common import format_cpulist

# -- NVMe: the break-even rule (physics.md §0, §4.3, §9.4; the simulator's defaults in sim/nvme.py) --------------
IRQ_HANDLER_S = 1.5e-6  # t_irq + handler ≈ 1-2 µs (§9.4), used when the hardirq probe has no timing
WAKE_S = 3e-6  # t_wake ≈ 2-5 µs: waking the thread that waits for the completion (§9.4)
CSTATE_EXIT_S = 2e-6  # SKX C1 exit (intel_idle skx_cstates, §0); the simulator scenarios' default
POLL_PAYS_MIN_SHARE = 0.20  # Optane-class: polling cuts latency 20-50 % (§4.3)
POLL_NOT_WORTH_MAX_SHARE = 0.10  # NAND-class: < 5 % at C0, 7 % with a C1 exit (§4.3; tests/test_sim_nvme.py)
IDLE_ANYWAY_MIN = 0.90  # a CPU idle this much of the time loses nothing to a poller (§10.4 "idle anyway")
MIN_COMPLETIONS = 50  # fewer completions in the window give no verdict

# -- isolated CPUs (physics.md §5, §6) ----------------------------------------------------------------------------
TLB_ON_ISOLATED_PER_S = 1.0  # any sustained shootdown rate on an isolated CPU is jitter (§5)
IPI_ON_ISOLATED_PER_S = 1.0  # likewise function-call and rescheduling IPIs
TLB_CHURN_PER_S = 1000.0  # elsewhere, > ~1k/s per CPU sustained points at mapping churn (§5)
TOP_SOURCES = 3  # senders named per finding

_NAMESPACE = re.compile(r"(?P<ctrl>nvme\d+)(?:c\d+)?n\d+\Z")
_HCTX = re.compile(r"hctx(?P<n>\d+)\Z")

# Kernel threads that send TLB shootdowns, and what to do about each (physics §5).
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


# -- probe data -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProbeView:
    """The probes' data, whichever JSON shape it came in, and the window's length when known."""

    sections: Mapping[str, dict]
    duration: float | None = None

    @classmethod
    def of(cls, probes: Mapping | None) -> ProbeView:
        """Accepts `irqtune probe --json`, its "probes" mapping, or name -> data; failed probes are dropped."""
        if not probes:
            return cls({})
        duration = probes.get("duration")
        inner = probes.get("probes", probes)
        sections = {}
        for name, entry in inner.items():
            if not isinstance(entry, Mapping):
                continue
            if "status" in entry and "data" in entry:
                if entry["status"] != "ok":
                    continue
                entry = entry["data"]
            sections[str(name)] = dict(entry)
        usable = isinstance(duration, int | float) and duration > 0
        return cls(sections, float(duration) if usable else None)

    def get(self, name: str) -> dict | None:
        return self.sections.get(name)

    def per_cpu_rate(self, counts: Mapping | None) -> dict[int, float]:
        """Counts in the window as rates; empty when the window's length is unknown."""
        if not counts or not self.duration:
            return {}
        return {int(cpu): float(n) / self.duration for cpu, n in counts.items()}


# -- NVMe ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PollVerdict:
    """The break-even rule's numbers for one device (seconds, shares of one CPU)."""

    verdict: str  # "pays", "hybrid", "not-worth"
    completion_s: float  # mean completion latency (block probe)
    saving_s: float  # what polling removes per I/O: t_irq + t_wake + C-state exit
    share: float  # saving / what the application waits with interrupts
    poll_cpu: float  # a poller's busy share of a core per queue at this rate
    irq_cpu: float  # the interrupt path's share of a core per queue at this rate


def judge_polling(completion_s: float, handler_s: float | None = None, rate_per_queue: float = 0.0) -> PollVerdict:
    """The rule of the module docstring: the share of the application's wait that polling removes."""
    handler = handler_s if handler_s and handler_s > 0 else IRQ_HANDLER_S
    saving = handler + WAKE_S + CSTATE_EXIT_S
    waited = completion_s + WAKE_S
    share = saving / waited if waited > 0 else 0.0
    verdict = "pays" if share >= POLL_PAYS_MIN_SHARE else "not-worth" if share < POLL_NOT_WORTH_MAX_SHARE else "hybrid"
    polled = max(waited - saving, 0.0)
    poll_cpu = 1.0 - math.exp(-rate_per_queue * polled) if rate_per_queue > 0 else 0.0
    irq_cpu = min(1.0, rate_per_queue * (handler + WAKE_S))
    return PollVerdict(verdict, completion_s, saving, share, poll_cpu, irq_cpu)


def break_even_completion_s(share: float, handler_s: float = IRQ_HANDLER_S) -> float:
    """The completion latency at which polling saves exactly `share` of the application's wait."""
    return (handler_s + WAKE_S + CSTATE_EXIT_S) / share - WAKE_S


@dataclass(slots=True)
class _NvmeDevice:
    """One controller as measured: its queue IRQs, completion latency and per-queue load."""

    name: str
    irqs: dict[int, IrqInfo]  # IO queue number (1-based, as in nvme0q1) -> IRQ
    completions: int = 0
    latency_sum_s: float = 0.0
    queue_counts: dict[int, int] | None = None  # IO queue number -> completions in the probe window


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def _controller_of(disk: str, nvme: NvmeReport | None) -> str | None:
    for ctrl in nvme.controllers if nvme else ():
        if disk in ctrl.namespaces:
            return ctrl.name
    match = _NAMESPACE.match(disk)
    return match.group("ctrl") if match else None


def _nvme_devices(m: Measurements, view: ProbeView, nvme: NvmeReport | None) -> dict[str, _NvmeDevice]:
    devices: dict[str, _NvmeDevice] = {}
    for info in m.inventory.irqs.values():
        if info.kind == "nvme" and info.role == "io" and info.device and info.queue is not None:
            devices.setdefault(info.device, _NvmeDevice(info.device, {})).irqs[info.queue] = info
    block = view.get("block") or {}
    for disk, entry in (block.get("devices") or {}).items():
        ctrl = _controller_of(disk, nvme)
        latency = entry.get("latency") or {}
        if ctrl is None or not latency.get("count"):
            continue
        dev = devices.setdefault(ctrl, _NvmeDevice(ctrl, {}))
        dev.completions += int(latency["count"])
        dev.latency_sum_s += float(latency.get("sum_seconds", 0.0))
        for label, hist in (entry.get("queues") or {}).items():
            match = _HCTX.match(label)
            if match and hist.get("count"):
                counts = dev.queue_counts = dev.queue_counts or {}
                queue = int(match.group("n")) + 1  # hctx0 is served by nvme0q1 (q0: admin; poll queues come last)
                counts[queue] = counts.get(queue, 0) + int(hist["count"])
    return devices


def _irq_rates(m: Measurements, irq: int) -> dict[int, float]:
    if m.rates is None:
        return {}
    row = m.rates.interrupts.get(str(irq))
    return dict(row.per_cpu) if row else {}


def _serving_cpus(m: Measurements, info: IrqInfo, busy_per_s: float) -> list[int]:
    """CPUs that took the IRQ at >= busy_per_s; with no /proc rates, its effective affinity."""
    if m.rates is not None:
        return sorted(cpu for cpu, rate in _irq_rates(m, info.irq).items() if rate >= busy_per_s)
    aff = info.affinity
    return sorted(aff.effective or []) if aff else []


def _queue_rates(m: Measurements, dev: _NvmeDevice, view: ProbeView) -> dict[int, float]:
    """Completions per second per IO queue: its IRQ rate, else the block probe's count over the window."""
    rates = {q: sum(_irq_rates(m, info.irq).values()) for q, info in dev.irqs.items()}
    rates = {q: r for q, r in rates.items() if r > 0}
    if not rates and dev.queue_counts and view.duration:
        rates = {q: n / view.duration for q, n in dev.queue_counts.items() if n}
    return rates


def _handler_s(dev: _NvmeDevice, view: ProbeView) -> float | None:
    """Mean hard-IRQ handler time over the device's queue IRQs (hardirq probe)."""
    irqs = (view.get("hardirq") or {}).get("irqs") or {}
    count = total = 0.0
    for irq in dev.irqs.values():
        hist = irqs.get(str(irq.irq)) or irqs.get(irq.irq)
        if hist and hist.get("count"):
            count += hist["count"]
            total += hist.get("sum_seconds", 0.0)
    return total / count if count else None


def _poll_queues(nvme: NvmeReport | None) -> int | None:
    text = (nvme.poll_queues or "").strip() if nvme else ""
    return int(text) if text.isdigit() else None


def _idle_anyway(cpus: Iterable[int], cpu_idle: Mapping[int, float] | None) -> list[int]:
    """The CPUs, if every one is known and idle at least IDLE_ANYWAY_MIN of the time; else []."""
    cpus = sorted(set(cpus))
    if not cpus or not cpu_idle or any(cpu_idle.get(cpu, 0.0) < IDLE_ANYWAY_MIN for cpu in cpus):
        return []
    return cpus


def _poll_setup(configured: int | None, queues: int, irq_rate: float) -> str:
    """How to turn polling on: the module parameter (probe time only) and the application's io_uring flag."""
    iopoll = "submit with io_uring IORING_SETUP_IOPOLL (O_DIRECT)"
    if configured:
        late = f", yet {irq_rate:,.0f} completions/s still come by interrupt: the application does not poll"
        return f"nvme.poll_queues is already {configured}{late if irq_rate else ''}; {iopoll}"
    return (
        f"load nvme with poll_queues={queues} (one per busy hardware queue: `options nvme poll_queues={queues}` in "
        f"/etc/modprobe.d or nvme.poll_queues={queues} on the kernel command line; read when the controller is "
        f"probed, so it takes a controller reset or reboot) and {iopoll}"
    )


def advise_nvme(
    m: Measurements,
    view: ProbeView,
    nvme: NvmeReport | None = None,
    cpu_idle: Mapping[int, float] | None = None,
    t: Thresholds | None = None,
) -> Iterator[Finding]:
    """Polling or interrupts, per NVMe controller with enough completions in the block probe."""
    busy_per_s = (t or Thresholds()).busy_irq_per_s
    configured = _poll_queues(nvme)
    for name, dev in sorted(_nvme_devices(m, view, nvme).items()):
        if dev.completions < MIN_COMPLETIONS:
            continue
        rates = _queue_rates(m, dev, view)
        active = sorted(rates) or sorted(dev.queue_counts or {})
        per_queue = sum(rates.values()) / len(rates) if rates else 0.0
        v = judge_polling(dev.latency_sum_s / dev.completions, _handler_s(dev, view), per_queue)
        facts = (
            f"completions take {_us(v.completion_s)} on average ({dev.completions:,} I/O), so the interrupt path "
            f"(IRQ, wake-up, C-state exit ≈ {_us(v.saving_s)}) is {v.share:.0%} of what the application waits"
        )
        cost = (
            f"; a poller would spin ≈ {v.poll_cpu:.0%} of a core per queue at {per_queue:,.0f} completions/s "
            f"(all of it for a synchronous loop) against ≈ {v.irq_cpu:.0%} for interrupts"
            if per_queue
            else ""
        )
        irq_cpus = sorted({cpu for q in active if q in dev.irqs for cpu in _serving_cpus(m, dev.irqs[q], busy_per_s)})
        idle = _idle_anyway(irq_cpus, cpu_idle) if v.verdict == "not-worth" else []
        queues = max(len(active), 1)
        if v.verdict == "pays" or idle:
            if idle:
                why = (
                    f"{name}: NAND class ({facts}, < {POLL_NOT_WORTH_MAX_SHARE:.0%}), but CPU {format_cpulist(idle)} "
                    f"serving its queues is >= {IDLE_ANYWAY_MIN:.0%} idle anyway: polling there costs only idle time "
                    "(power, an SMT sibling's share) and skips deep C-state exits"
                )
            else:
                limit = _us(break_even_completion_s(POLL_PAYS_MIN_SHARE))
                why = (
                    f"{name}: polling would pay (low-latency media, Optane class): {facts} "
                    f"(>= {POLL_PAYS_MIN_SHARE:.0%}, i.e. completions <= {limit})"
                )
            how = _poll_setup(configured, queues, sum(rates.values()))
            yield Finding(
                "info", "nvme-poll-would-pay",
                f"{why}{cost}. Advice: {how}; IORING_SETUP_HYBRID_IOPOLL (Linux 6.13+) keeps most of the gain "
                "at about interrupt-level CPU.",
                device=name,
            )  # fmt: skip
        elif v.verdict == "hybrid":
            yield Finding(
                "info", "nvme-poll-hybrid",
                f"{name}: polling would pay only a little: {facts} ({POLL_NOT_WORTH_MAX_SHARE:.0%}-"
                f"{POLL_PAYS_MIN_SHARE:.0%}){cost}. Advice: if latency matters, io_uring "
                "IORING_SETUP_HYBRID_IOPOLL (Linux 6.13+; needs nvme.poll_queues > 0) rather than a spinning core.",
                device=name,
            )  # fmt: skip
        else:
            tail = (
                f" nvme.poll_queues={configured} is set: an application polling there burns a core to save "
                f"{v.share:.0%}; set it to 0 unless a core is idle anyway."
                if configured
                else " Keep interrupts (nvme.poll_queues=0, no IORING_SETUP_IOPOLL)."
            )
            yield Finding(
                "warning" if configured else "info", "nvme-poll-not-worth",
                f"{name}: polling does not pay (NAND class or queueing at the device): {facts} "
                f"(< {POLL_NOT_WORTH_MAX_SHARE:.0%}){cost}.{tail}",
                device=name,
            )  # fmt: skip


def _queue_mask(info: IrqInfo, nvme: NvmeReport | None) -> list[int]:
    """The queue's CPU mask: the IRQ's requested affinity, else the hardware queue's cpu_list (NVMe report)."""
    if info.affinity and info.affinity.requested:
        return info.affinity.requested
    ctrl = next((c for c in nvme.controllers if c.name == info.device), None) if nvme else None
    return ctrl.queue_cpus.get((info.queue or 0) - 1, []) if ctrl else []


def advise_nvme_placement(m: Measurements, t: Thresholds, nvme: NvmeReport | None = None) -> Iterator[Finding]:
    """NVMe queue IRQs on isolated CPUs: kernel-managed, so the fix is isolcpus=managed_irq, not affinity."""
    isolated = m.topology.isolated_any
    if not isolated:
        return
    by_device: dict[str, list[tuple[IrqInfo, list[int]]]] = {}
    for info in sorted(m.inventory.irqs.values(), key=lambda info: info.irq):
        if info.kind != "nvme" or info.role != "io" or info.managed == "no" or not info.device:
            continue
        hits = [cpu for cpu in _serving_cpus(m, info, t.busy_irq_per_s) if cpu in isolated]
        if hits:
            by_device.setdefault(info.device, []).append((info, hits))
    has_flag = "managed_irq" in m.topology.isolcpus_flags
    housekeeping = set(m.topology.housekeeping)
    for name, hits in sorted(by_device.items()):
        where = ", ".join(f"IRQ {info.irq} (queue {info.queue}) on CPU {format_cpulist(cpus)}" for info, cpus in hits)
        masks = {info.irq: _queue_mask(info, nvme) for info, _ in hits}
        stuck = [irq for irq, mask in masks.items() if mask and not housekeeping & set(mask)]
        advice = []
        if len(stuck) < len(hits):
            cpus = format_cpulist(sorted(isolated))
            advice.append(
                "isolcpus=managed_irq is set but best effort: it steers a managed IRQ only when its queue's mask "
                "also holds an online housekeeping CPU"
                if has_flag
                else f"boot with isolcpus=managed_irq,{cpus} (keeping your other isolcpus flags, e.g. "
                f"isolcpus=managed_irq,domain,{cpus}): the kernel then routes these IRQs to a housekeeping CPU of "
                "the queue's mask (best effort, Linux 5.6+)"
            )
        if stuck:
            which = (
                "these queues' CPU masks hold"
                if len(stuck) == len(hits)
                else f"the queue mask of IRQ {', '.join(map(str, stuck))} holds"
            )
            advice.append(
                f"{which} only isolated CPUs, so isolcpus=managed_irq cannot move them: such an IRQ fires only for "
                "I/O submitted on those CPUs - keep that I/O (and the tasks doing it) off them"
            )
        advice_text = "; ".join(advice)
        yield Finding(
            "warning", "nvme-managed-on-isolated",
            f"{name}: kernel-managed NVMe queue IRQs serviced on isolated CPUs: {where}. Their affinity cannot be "
            f"changed through /proc/irq (EIO, EPERM from 6.12). Advice: {advice_text}.",
            device=name,
        )  # fmt: skip


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


# -- entry points ---------------------------------------------------------------------------------------------------


def advise(
    m: Measurements,
    probes: Mapping | None = None,
    nvme: NvmeReport | None = None,
    *,
    cpu_idle: Mapping[int, float] | None = None,
    thresholds: Thresholds | None = None,
) -> list[Finding]:
    """Every advice rule of the module docstring; `cpu_idle` (CPU -> idle share 0..1) enables NAND polling
    on CPUs that are idle anyway. Sorted by severity like `findings.find_all`."""
    t = thresholds or Thresholds()
    view = ProbeView.of(probes)
    found = [
        *advise_nvme(m, view, nvme, cpu_idle, t),
        *advise_nvme_placement(m, t, nvme),
        *advise_isolation(m, view, t),
    ]
    return sorted(found, key=lambda f: SEVERITY_ORDER.get(f.severity, 3))


def supersede(findings: Iterable[Finding], advice: Iterable[Finding]) -> list[Finding]:
    """`findings` plus `advice`, dropping a finding that advice repeats with its source (same code and place)."""
    advice = list(advice)
    covered = {(f.code, f.irq, f.device, f.cpu) for f in advice}
    kept = [f for f in findings if (f.code, f.irq, f.device, f.cpu) not in covered]
    return sorted([*kept, *advice], key=lambda f: SEVERITY_ORDER.get(f.severity, 3))
