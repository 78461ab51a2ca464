"""NVMe: would polling pay? (docs/physics.md §4.3, §9.4, §10.4; needs the block probe)
    Polling removes the interrupt path from every I/O: the IRQ and its handler
    (t_irq, the hardirq probe's mean for the controller's queue IRQs, else 1.5 µs),
    the wake-up of the waiting thread (t_wake 3 µs) and the C-state exit of an idle
    core (2 µs, Skylake-SP C1). Together S ≈ 6.5 µs. An application waits for the
    completion latency L the block probe measures (issue to completion, which holds
    the device time and the IRQ) plus t_wake, so polling saves the share
    S / (L + t_wake):
      * >= 20 %  `nvme-poll-would-pay` (Optane/XL-Flash class, L <= ~29 µs;
        docs/physics.md §4.3: 20-50 % lower latency). Advice: nvme.poll_queues=N (module parameter,
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
    Where the operator set the device's goal (`prices`: its price of a core, 20 µs for
    latency ... 500 µs for efficiency, as the moderation weighs a NIC's), a spinning
    poller is also priced: when the goal's price of the cores it spins beyond the
    interrupt path's exceeds the latency it saves per I/O, `nvme-poll-would-pay`
    becomes `nvme-poll-hybrid` and the idle-anyway case `nvme-poll-not-worth`.
    The cost is reported beside it: a poller spins while I/O is outstanding,
    1 - e^(-λ·(L - S)) of a core per queue at λ completions/s (M/G/∞, §9.4; a
    synchronous loop spins all the time), against λ·(t_irq + t_wake) for interrupts.
    Fewer than 50 completions in the window give no verdict. Limitation: at the
    device's own IOPS cap (a closed loop deeper than the device can serve) polling
    gains nothing, while queueing only lowers the share here gradually.

NVMe placement: `nvme-managed-on-isolated` (docs/physics.md §6, §7.4)
    NVMe queue IRQs are kernel-managed (one vector per queue, spread over the CPUs,
    affinity writes refused with EIO/EPERM). When one is served on an isolated CPU
    (a rate >= 1/s there, else its effective affinity): boot with
    isolcpus=managed_irq,... so the kernel steers it to a housekeeping CPU of the
    queue's mask. managed_irq is best effort: a queue whose mask (requested affinity,
    else the hardware queue's cpu_list from the NVMe report) holds only isolated CPUs
    keeps its IRQ there, firing only for I/O submitted on those CPUs - keep that I/O
    off them. One `warning` per controller, listing its IRQs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ...findings import Finding, Measurements, Thresholds
from ...measure.inventory import IrqInfo
from ...measure.nvme import NvmeReport
from ...parse.common import format_cpulist, is_count
from .probes import ProbeView

# -- NVMe: the break-even rule (docs/physics.md §0, §4.3, §9.4; the simulator's defaults in sim/nvme.py) --------------
IRQ_HANDLER_S = 1.5e-6  # t_irq + handler ≈ 1-2 µs (§9.4), used when the hardirq probe has no timing
WAKE_S = 3e-6  # t_wake ≈ 2-5 µs: waking the thread that waits for the completion (§9.4)
CSTATE_EXIT_S = 2e-6  # SKX C1 exit (intel_idle skx_cstates, §0); the simulator scenarios' default
POLL_PAYS_MIN_SHARE = 0.20  # Optane-class: polling cuts latency 20-50 % (§4.3)
POLL_NOT_WORTH_MAX_SHARE = 0.10  # NAND-class: < 5 % at C0, 7 % with a C1 exit (§4.3; tests/sim/test_sim_nvme.py)
IDLE_ANYWAY_MIN = 0.90  # a CPU idle this much of the time loses nothing to a poller (§10.4 "idle anyway")
MIN_COMPLETIONS = 50  # fewer completions in the window give no verdict

_NAMESPACE = re.compile(r"(?P<ctrl>nvme\d+)(?:c\d+)?n\d+\Z")
_HCTX = re.compile(r"hctx(?P<n>\d+)\Z")


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
    return int(text) if is_count(text) else None


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
    prices: Mapping[str, float] | None = None,
) -> Iterator[Finding]:
    """Polling or interrupts, per NVMe controller with enough completions in the block probe; `prices`:
    controller -> its goal's price of a core (µs), where the operator set a goal."""
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
        spin = _priced_out(v, queues, (prices or {}).get(name)) if v.verdict == "pays" or idle else ""
        if spin:
            yield _priced_finding(name, facts, cost, spin, bool(idle))
        elif v.verdict == "pays" or idle:
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


def _priced_out(v: PollVerdict, queues: int, price: float | None) -> str:
    """Why the goal's price of a core rules a spinning poller out ("" where it does not, or no goal is set):
    the cores it spins beyond the interrupt path's, priced, against the latency it saves per I/O."""
    extra = max(0.0, v.poll_cpu - v.irq_cpu) * queues
    if price is None or price * extra <= v.saving_s * 1e6:
        return ""
    return (f"at the goal's price of a core ({price:g} µs) the {extra:.2f} cores a poller spins beyond the interrupt "
            f"path ({queues} queue{'s' if queues > 1 else ''}) cost {price * extra:.1f} µs against the "
            f"{_us(v.saving_s)} it saves per I/O")  # fmt: skip


def _priced_finding(name: str, facts: str, cost: str, spin: str, idle: bool) -> Finding:
    """Polling that would pay on latency (or on CPUs idle anyway) but not at the device's goal."""
    if idle:
        return Finding("info", "nvme-poll-not-worth",
                       f"{name}: polling does not pay at this device's goal: {facts}{cost}; its CPUs are idle anyway, "
                       f"but {spin}. Keep interrupts (nvme.poll_queues=0, no IORING_SETUP_IOPOLL).",
                       device=name)  # fmt: skip
    return Finding("info", "nvme-poll-hybrid",
                   f"{name}: polling would cut latency ({facts}){cost}, but not at this device's goal: {spin}. "
                   "Advice: no spinning poller; io_uring IORING_SETUP_HYBRID_IOPOLL (Linux 6.13+; needs "
                   "nvme.poll_queues > 0), asleep through most of each I/O, if the latency is worth its wake-ups; "
                   "else keep interrupts.",
                   device=name)  # fmt: skip


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
