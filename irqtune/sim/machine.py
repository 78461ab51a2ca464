"""A simulated host: renders /proc and /sys in the kernel's formats and reacts to what is written.

The agent reads the tree through `--root` with the same code as a real host. Every step
reads back what was written: IRQ affinity moves a queue's interrupts (and its cross-NUMA
cost), ethtool coalescing and adaptive-rx go to the simulated driver, the NAPI settings
(per NAPI over the simulated netdev family, or device-wide in sysfs), net.core budgets and
busy_read change the queue model, and an NVMe device's completion mode (irq, poll, hybrid)
changes the NVMe model. Queues then share their CPU: below saturation each waits for the others'
interrupts and polls (interference.py); when the work on one CPU needs more than the CPU, each gets
its share, its NAPI never completes and the rest is dropped.
A control interval may be stepped in parts (`step(start=..., carry=True)`): bursts long enough to resolve
(workload.py `resolves`) then show in the counters read between the parts, and each counter's fraction
of a whole event is carried to the next part, so small rates still count.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from functools import lru_cache

from ..model.queue import Napi, QueueResult, nic_queue
from ..parse.common import parse_count, parse_cpulist
from . import memory as mem
from .adaptive import AdaptiveQueue
from .ethtool import state_damage
from .interference import Work, extra_wait, nic_work, nvme_work
from .kernel import RULES_FILE, SimTreeError, rules_text, state_file
from .netdev import napis_damage
from .nvme import MEDIA, Media, nvme_queue
from .scenario import OPEN_LOOP_DEPTH, LoadSpec, NicSpec, NvmeSpec, PhaseSpec, Scenario
from .tree import IRQ_BASE, NAPI_ID_BASE, KernelCounters, SimIrq, Tree
from .workload import during, interrupt_per_packet, queue_load

CROSS_NUMA = 1.2  # per-packet cost multiplier when the IRQ CPU is on another node (docs/physics.md §7.2)
SMT_CONTENTION = 0.6  # a packet takes 1 + this × its sibling thread's busy share longer: two busy threads of one
# core each run at 1/1.6 of their speed alone, together 1.25× one thread (docs/physics.md §7.2: a 20-30 % SMT yield)
TLB_RECEIVE_COST = 1.5e-6  # seconds of a CPU per received shootdown IPI (docs/physics.md §5: 1-3 µs round trip)
COMPLETION_MODES = ("irq", "poll", "hybrid")
KMSG_KEPT = 2000  # records of the simulated kernel log kept (the kernel's ring overwrites the oldest too)


@dataclass
class QueueStep:
    """What one NIC queue did in one step."""

    device: str
    queue: int
    cpu: int
    rate: float  # offered packets/s
    irq_rate: float
    cpu_used: float
    latency: float
    delivered: float = 0.0  # packets/s processed; the rest is dropped at the ring
    timer_polls: float = 0.0
    squeezes: float = 0.0
    setting: tuple[int, int] = (0, 0)  # rx-usecs, rx-frames in force (the adaptive one's last)
    overhead: float = 0.0  # CPU beyond the packets' own processing: interrupts, timer polls, spinning
    interference: float = 0.0  # seconds of mean wait for other queues' work on the CPU (in `latency`)
    shared: float = 0.0  # the other queues' busy fraction of the CPU


@dataclass
class NvmeStep:
    device: str
    queue: int
    cpu: int
    mode: str
    iops: float
    latency: float
    irq_rate: float
    cpu_used: float
    interference: float = 0.0  # as QueueStep's
    shared: float = 0.0


@dataclass
class NicSettings:
    usecs: int
    frames: int
    adaptive: bool
    napi: dict[int, dict[str, int]]  # irq -> the NAPI's settings
    sysctl: dict[str, int]
    ring: int = 0  # rx descriptors in force (0: no bound)


def ring_bound(delivered: float, latency: float, ring: int) -> float:
    """At most ring / W packets/s get through a ring of `ring` descriptors when each waits W seconds on the mean
    (Little's law: the ring holds rate × W); the rest overflows (docs/physics.md §9.10)."""
    if ring <= 0 or not 0 < latency < math.inf:
        return delivered
    return min(delivered, ring / latency)


@lru_cache(maxsize=65536)
def _queue(rate, service, irq_cost, usecs, frames, flavour, napi) -> QueueResult:
    """The closed form, memoised: identical queues in one step cost one evaluation."""
    return nic_queue(rate, service, irq_cost, usecs, frames, flavour, napi=napi)


class SimMachine:
    def __init__(self, scenario: Scenario, root: str, seed: int = 1) -> None:
        self.sc, self.root, self.rng, self.seed = scenario, root, random.Random(seed), seed
        self.cpus = scenario.cpus
        self.nodes = scenario.node_cpus()
        self.tree = Tree(root)
        self.irqs: list[SimIrq] = []
        irq = IRQ_BASE
        for n, nic in enumerate(scenario.nics):
            for q in range(nic.queues):
                self.irqs.append(SimIrq(irq, f"{nic.name}-TxRx-{q}", nic.name, q, f"0000:{0x81 + n:02x}:00.0"))
                irq += 1
        for n, nvme in enumerate(scenario.nvmes):
            for q in range(nvme.queues + 1):
                self.irqs.append(SimIrq(irq, f"{nvme.name}q{q}", nvme.name, q, f"0000:{0x01 + n:02x}:00.0", q > 0))
                irq += 1
        for entry in self.irqs:
            entry.counts = [0] * len(self.cpus)
        self.counters = KernelCounters(len(self.cpus))
        self.counters.netdev = {nic.name: [0, 0, 0] for nic in self.sc.nics}  # listed from boot, as on a host
        self.counters.disks = {f"{nvme.name}n1": 0 for nvme in self.sc.nvmes}
        self.adaptive: dict[tuple[str, int], AdaptiveQueue] = {}
        self.clock = 0.0
        self.last_phase: PhaseSpec | None = None  # the phase of the last step, and its NVMe queues
        self.last_nvme: list[NvmeStep] = []
        self._carry: dict[tuple, float] = {}  # counter -> the fraction of an event it has not shown yet (`_whole`)
        self._keep = False  # this step is a part of an interval: fractions carry over
        self._online, self._effective = set(self.cpus), {}
        self._managed = self._allocate_managed()
        self._busy = [0.0] * len(self.cpus)  # each CPU's busy share in the step before (SMT contention)
        self._busy_now = [0.0] * len(self.cpus)  # ... and in the step being taken, once it is
        self.tree.static(self)
        self.memory_mb = scenario.host.memory_mb or mem.ROOMY_MB  # every simulated host shows its reserve
        min_free = mem.default_min_free_kbytes(self.memory_mb)
        self.reserve = mem.reserve(self.memory_mb, min_free, mem.DEFAULT_SCALE, 0.0, 0)  # the zone in the last step
        self._kmsg: list[str] = []  # the simulated kernel log's records (the last KMSG_KEPT)
        self._kmsg_seq, self._pgalloc, self._allocstall = 1, 0, 0
        self.tree.write("proc/sys/vm/min_free_kbytes", f"{min_free}\n")
        self.tree.write("proc/sys/vm/watermark_scale_factor", f"{mem.DEFAULT_SCALE}\n")
        managed = [e.irq for e in self.irqs if e.managed]
        self.tree.write(RULES_FILE, rules_text(scenario.host.kernel, managed, self.cpus))
        self.render()

    # -- what the tree says now ------------------------------------------------------
    def device_node(self, device: str) -> int:
        return next((spec.node for spec in (*self.sc.nics, *self.sc.nvmes) if spec.name == device), 0)

    def nvme_spread(self, nvme: NvmeSpec) -> list[list[int]]:
        """The kernel's managed spread: CPUs split into `queues` contiguous groups."""
        groups: list[list[int]] = [[] for _ in range(max(nvme.queues, 1))]
        for i, cpu in enumerate(self.cpus):
            groups[i * len(groups) // len(self.cpus)].append(cpu)
        return groups

    def _allocate_managed(self) -> dict[int, int]:
        """Managed IRQ -> the CPU of its group with the fewest managed IRQs so far, in probe order (x86's vector
        matrix, kernel/irq/matrix.c matrix_find_best_cpu_managed): two drives' queue i share a group, not a CPU."""
        taken: dict[int, int] = {}
        out = {}
        for nvme in self.sc.nvmes:
            for q, group in enumerate(self.nvme_spread(nvme)):
                entry = next(e for e in self.irqs if e.device == nvme.name and e.queue == q + 1)
                cpu = min(group, key=lambda c: (taken.get(c, 0), c))
                taken[cpu] = taken.get(cpu, 0) + 1
                out[entry.irq] = cpu
        return out

    def effective_cpu(self, entry: SimIrq) -> int:
        """The kernel delivers to one CPU of the requested set: a managed IRQ to the one allocated at probe while it
        is online, any other to the first online one (read once per step)."""
        if self._managed.get(entry.irq) in self._online:
            return self._managed[entry.irq]
        cpu = self._effective.get(entry.irq)
        if cpu is None:
            text = self.tree.read(f"proc/irq/{entry.irq}/smp_affinity_list") or ""
            try:  # the lowest CPU of the list, without expanding ranges (64-CPU masks, every queue, every step)
                starts = [int(part.split("-", 1)[0]) for part in text.strip().split(",") if part]
            except ValueError:  # not a CPU list: the kernel would have refused it; deliver to the first CPU
                starts = []
            online = sorted(c for c in starts if c in self._online)
            cpu = self._effective[entry.irq] = online[0] if online else self.cpus[0]
        return cpu

    def _json(self, rel: str, damage) -> dict:
        text = self.tree.read(rel)
        try:
            return state_file(rel, text, damage) if text else {}
        except SimTreeError:  # a state file broken by hand: the device runs on its scenario defaults
            return {}

    def nic_settings(self, nic: NicSpec) -> NicSettings:
        """rx-usecs (quantised like the device), rx-frames, adaptive-rx, NAPI and net.core settings in force."""
        state = self._json(f"sys/class/net/{nic.name}/irqtune-sim/ethtool.json", state_damage)
        coalesce = state.get("coalesce", {})
        quantum = max(nic.usecs_quantum, 1)
        usecs = round(coalesce.get("rx_usecs", nic.rx_usecs) / quantum) * quantum
        napis = self._json(f"sys/class/net/{nic.name}/irqtune-sim/napi.json", napis_damage)
        sysctl = {}
        for name in ("netdev_budget", "netdev_budget_usecs", "busy_read"):
            text = (self.tree.read(f"proc/sys/net/core/{name}") or "").strip()
            sysctl[name] = parse_count(text) or 0
        return NicSettings(usecs, coalesce.get("rx_max_frames", nic.rx_frames), bool(coalesce.get("use_adaptive_rx")),
                           {v["irq"]: v for v in napis.values()}, sysctl,
                           state.get("rings", {}).get("rx", nic.ring))  # fmt: skip

    def napi_for(self, settings: NicSettings, irq: int, load: LoadSpec | None) -> Napi:
        values = settings.napi.get(irq, {})
        return Napi(
            defer=values.get("defer_hard_irqs", 0),
            gro_flush=values.get("gro_flush_timeout", 0) * 1e-9,
            suspend=values.get("irq_suspend_timeout", 0) * 1e-9,
            app_busy_poll=bool(load and load.app_busy_poll),
            busy_poll=settings.sysctl["busy_read"] * 1e-6,
            budget=settings.sysctl["netdev_budget"] or 300,
            budget_usecs=(settings.sysctl["netdev_budget_usecs"] or 2000) * 1e-6,
            hz=self.sc.host.hz,
        )

    def service_time(self, nic: NicSpec, entry: SimIrq) -> float:
        """Per-packet cost in seconds, higher when the queue's IRQ CPU is away from the NIC's node."""
        cpu = self.effective_cpu(entry)
        remote = cpu not in self.nodes.get(nic.node, self.cpus)
        return nic.service_us * 1e-6 * (CROSS_NUMA if remote else 1.0) * self.smt_factor(cpu)

    def smt_factor(self, cpu: int) -> float:
        """How much slower a packet runs on `cpu` while its SMT siblings are busy (their share in the step before
        this one: the queues of a step are solved one by one; rounded to 1 %: the closed form is memoised)."""
        sibling = max((self._busy[s] for s in self.sc.host.siblings(cpu)), default=0.0)
        return round(1.0 + SMT_CONTENTION * sibling, 2)

    def completion_mode(self, nvme: NvmeSpec) -> str:
        mode = (self.tree.read(f"sys/block/{nvme.name}n1/irqtune-sim/completion") or "").strip()
        return mode if mode in COMPLETION_MODES else "irq"

    def nvme_media(self, nvme: NvmeSpec) -> Media:
        """The device's media (its mean service time the scenario's `service_us` when given), with its IOPS cap
        shared among its queues (the model is per queue)."""
        media = MEDIA[nvme.media]
        mean = nvme.service_us * 1e-6 if nvme.service_us else media.mean
        return replace(media, mean=mean, max_iops=media.max_iops / max(nvme.queues, 1))

    def napi_id(self, entry: SimIrq) -> int:
        return NAPI_ID_BASE + entry.irq - IRQ_BASE

    # -- time ------------------------------------------------------------------------
    def step(self, seconds: float, phase: PhaseSpec, start: float | None = None, carry: bool = False,
             ) -> list[QueueStep]:  # fmt: skip
        """Advance simulated time; returns what every NIC queue did (NVMe queues: `self.last_nvme`). `start`:
        seconds into the phase, for loads resolved in time (None: every load as its mean over the step);
        `carry`: a part of an interval, whose counters' fractions of an event count in the next part."""
        self._effective = {}  # affinity may have been written since the last step
        self._busy = list(self._busy_now)
        self.last_phase = phase
        self._keep = carry
        out = [q for nic in self.sc.nics for q in self._nic_step(nic, phase, seconds, start)]
        self._refill(out, phase, seconds)
        self.last_nvme = [q for nvme in self.sc.nvmes for q in self._nvme_step(nvme, phase.load_for(nvme.name))]
        demand = [0.0] * len(self.cpus)
        for q in (*out, *self.last_nvme):
            demand[q.cpu] += q.cpu_used
        self._interfere(out, demand)
        tlb = self._tlb(phase, seconds, demand)
        for cpu in parse_cpulist(phase.ipi_cpus) if phase.resched_ipis else []:
            self.counters.res[cpu] += self._noisy(phase.resched_ipis * seconds, ("res", cpu))
        entries = {(e.device, e.queue): e for e in self.irqs}
        c, busy = self.counters, [0.0] * len(self.cpus)
        nics = {nic.name: nic for nic in self.sc.nics}
        for i, q in enumerate(out):
            if demand[q.cpu] > 1.0:  # the CPU is saturated: share it, no re-arm, drops
                share = q.cpu_used / demand[q.cpu]
                q = out[i] = replace(q, irq_rate=0.0, cpu_used=share, latency=math.inf, overhead=0.0,
                                     delivered=q.delivered * min(1.0, 1.0 / demand[q.cpu]))  # fmt: skip
            queue = (q.device, q.queue)
            irqs = self._noisy(q.irq_rate * seconds, ("irq", *queue))
            entries[queue].counts[q.cpu] += irqs
            polls = self._noisy(q.timer_polls * seconds, ("polls", *queue))
            packets = self._whole(q.delivered * seconds, ("packets", *queue))
            c.softirqs["NET_RX"][q.cpu] += max(irqs + polls, int(q.delivered * seconds / 300))
            c.softirqs["HRTIMER"][q.cpu] += polls
            c.softnet[q.cpu][0] += packets
            c.softnet[q.cpu][2] += self._noisy(q.squeezes * seconds, ("squeezes", *queue))
            dev = c.netdev.setdefault(q.device, [0, 0, 0])
            dev[0] += packets
            dev[1] += packets * nics[q.device].packet_bytes
            dev[2] += self._whole((q.rate - q.delivered) * seconds, ("drops", *queue))  # ring overflow:
            # rx_missed_errors, in /proc/net/dev drop
            load = phase.load_for(q.device)
            if load is not None and load.app_busy_poll:
                c.busy_poll_rx += packets
            busy[q.cpu] += min(q.cpu_used, 1.0)
        for q in self.last_nvme:
            entries[(q.device, q.queue)].counts[q.cpu] += self._noisy(q.irq_rate * seconds, ("irq", q.device, q.queue))
            c.disks[f"{q.device}n1"] += self._whole(q.iops * seconds, ("ios", q.device, q.queue))
            busy[q.cpu] += min(q.cpu_used, 1.0)
        for cpu, used in enumerate(busy):
            used = self._busy_now[cpu] = min(1.0, used + tlb[cpu])
            ticks = self._whole(self.sc.host.hz * seconds * (1.0 if used > 0.01 else 0.05), ("loc", cpu))
            c.loc[cpu] += ticks
            c.softirqs["TIMER"][cpu] += ticks
            busy_ticks = self._whole(used * 100 * seconds, ("busy", cpu))
            c.ticks[cpu][1] += busy_ticks
            c.ticks[cpu][2] += self._whole(100 * seconds, ("ticks", cpu)) - busy_ticks  # no application runs: the
            # rest idles
        if not carry:
            self._carry.clear()
        self.clock += seconds
        self.render()
        return out

    def _refill(self, out: list[QueueStep], phase: PhaseSpec, seconds: float) -> None:
        """RX refill under the phase's memory pressure: the share of the step it fails, packets find the ring
        empty and are dropped; the failures are logged (sim/memory.py)."""
        memory_mb = self.memory_mb
        min_free = mem.read_int(self.tree.read("proc/sys/vm/min_free_kbytes"), mem.default_min_free_kbytes(memory_mb))
        scale = mem.read_int(self.tree.read("proc/sys/vm/watermark_scale_factor"), mem.DEFAULT_SCALE)
        refill = sum(nic.queues * nic.ring // 4 for nic in self.sc.nics)
        r = self.reserve = mem.reserve(memory_mb, min_free, scale, phase.alloc_burst_mb, refill)
        self._pgalloc += self._whole(sum(q.delivered for q in out) * seconds, ("pgalloc",))
        if r.low - int(phase.alloc_burst_mb * 1024 // mem.PAGE_KB) < r.min:  # the burst's bottom is below min:
            self._allocstall += self._whole(mem.STALLS_PER_S * seconds, ("allocstall",))  # direct reclaim
        if r.refill_fail <= 0:
            return
        for i, q in enumerate(out):
            out[i] = replace(q, delivered=q.delivered * (1.0 - r.refill_fail))
        reports = self._whole(mem.REPORTS_PER_S * seconds, ("kmsg",))
        cpus = sorted({q.cpu for q in out}) or [0]
        text = mem.failure_records(self._kmsg_seq, reports, int(self.clock * 1e6), cpus)
        self._kmsg_seq += 2 * reports
        self._kmsg = (self._kmsg + text.splitlines(keepends=True))[-KMSG_KEPT:]

    def _interfere(self, out: list[QueueStep], demand: list[float]) -> None:
        """Below saturation, each queue's latency gains the wait for the other queues' work on its CPU."""
        nics = {nic.name: nic for nic in self.sc.nics}
        entries = {(e.device, e.queue): e for e in self.irqs}
        works: list[Work] = []
        for q in out:
            nic, activations = nics[q.device], q.irq_rate + q.timer_polls or q.delivered
            service = self.service_time(nic, entries[(q.device, q.queue)])
            works.append(nic_work(q.cpu, q.cpu_used, activations, service, nic.irq_cost_us * 1e-6))
        for q in self.last_nvme:  # a polling thread yields to interrupts: only interrupt completion interferes
            works.append(nvme_work(q.cpu, q.cpu_used if q.mode == "irq" else 0.0, q.iops))
        by_cpu: dict[int, list[int]] = {}
        for i, w in enumerate(works):
            by_cpu.setdefault(w.cpu, []).append(i)
        steps: list = [*out, *self.last_nvme]
        for cpu, members in by_cpu.items():
            if len(members) < 2 or demand[cpu] > 1.0:
                continue
            for k, i in enumerate(members):
                wait, other = extra_wait([works[j] for j in members], k)
                if wait > 0:
                    steps[i] = replace(steps[i], latency=steps[i].latency + wait, interference=wait, shared=other)
        out[:] = steps[: len(out)]
        self.last_nvme = steps[len(out) :]

    def _noisy(self, expected: float, counter: tuple = ()) -> int:
        """KernelCounters carry ±2 % multiplicative noise (docs/physics.md §9.5), seeded."""
        return self._whole(expected * (1.0 + self.rng.uniform(-0.02, 0.02)), counter) if expected > 0 else 0

    def _whole(self, expected: float, counter: tuple = ()) -> int:
        """The whole events of `expected` (and of what a part of the interval left over): the rest waits for the
        next part while the step is one (`carry`), else is dropped, as a whole interval's step always did."""
        exact = expected + self._carry.pop(counter, 0.0) if counter else expected
        whole = int(exact)
        if self._keep and counter:
            self._carry[counter] = exact - whole
        return whole

    def queue_evaluator(self, nic: NicSpec, entry: SimIrq, load: LoadSpec | None, settings: NicSettings,
                        flavour: str | None = None):  # fmt: skip
        """(rx-usecs, rx-frames) -> (offered rate, closed-form result) for one queue under `load`; the device's
        timer runs `timer_scale` µs per rx-usecs unit."""
        service, irq_cost, flavour = self.service_time(nic, entry), nic.irq_cost_us * 1e-6, flavour or nic.flavour
        napi = self.napi_for(settings, entry.irq, load)

        def evaluate(usecs: int, frames: int) -> tuple[float, QueueResult]:
            def at(rate: float) -> QueueResult:
                if not nic.napi:
                    return interrupt_per_packet(rate, service, irq_cost)
                return _queue(rate, service, irq_cost, usecs * nic.timer_scale * 1e-6, frames, flavour, napi)

            return (0.0, at(0.0)) if load is None else queue_load(load, nic.queues, nic.ring, at)

        return evaluate

    def _nic_step(self, nic: NicSpec, phase: PhaseSpec, seconds: float, start: float | None) -> list[QueueStep]:
        load = phase.load_for(nic.name)
        if start is not None:
            load = during(load, start, seconds)
        settings = self.nic_settings(nic)
        out = []
        aim = settings.adaptive and nic.algorithm == "aim"  # Intel's AIM programs an ITR: a minimum gap
        for entry in (e for e in self.irqs if e.device == nic.name):
            evaluate = self.queue_evaluator(nic, entry, load, settings, "min-gap" if aim else None)
            key = (nic.name, entry.queue)
            if settings.adaptive:
                adaptive = self.adaptive.get(key)
                if adaptive is None:
                    adaptive = self.adaptive[key] = AdaptiveQueue(nic.algorithm, nic.flavour)
                offered: dict[tuple[int, int], float] = {}

                def driven(usecs: int, frames: int, offered=offered, evaluate=evaluate) -> QueueResult:
                    offered[(usecs, frames)], result = evaluate(usecs, frames)
                    return result

                r = adaptive.run(seconds, driven, nic.packet_bytes, self.rng)
                setting = adaptive.setting
                closed = load is not None and load.arrivals == "closed-loop"  # offered = what the clients got
                rate = r.delivered if closed else max(offered.values(), default=0.0)
            else:
                self.adaptive.pop(key, None)  # adaptive-rx off: the driver forgets its state
                setting = (settings.usecs, settings.frames)
                rate, r = evaluate(*setting)
            delivered = ring_bound(min(rate, r.delivered), r.mean_latency, settings.ring)
            overhead = max(0.0, r.cpu - delivered * self.service_time(nic, entry))
            out.append(QueueStep(nic.name, entry.queue, self.effective_cpu(entry), rate, r.irq_rate, r.cpu,
                                 r.mean_latency, delivered, r.timer_polls, r.squeeze_rate, setting,
                                 overhead))  # fmt: skip
        return out

    def _nvme_step(self, nvme: NvmeSpec, load: LoadSpec | None) -> list[NvmeStep]:
        if load is None:
            return []
        mode, out = self.completion_mode(nvme), []
        for entry in (e for e in self.irqs if e.device == nvme.name and e.queue > 0):
            cpu = self.effective_cpu(entry)
            r = nvme_queue(mode, self.nvme_media(nvme), iodepth=load.iodepth or OPEN_LOOP_DEPTH,
                           rate=load.iops / nvme.queues,
                           cstate=nvme.cstate_us * 1e-6)  # fmt: skip
            out.append(NvmeStep(nvme.name, entry.queue, cpu, mode, r.iops, r.mean_latency, r.irq_rate, r.cpu))
        return out

    def _tlb(self, phase: PhaseSpec, seconds: float, demand: list[float]) -> list[float]:
        """Shootdowns from a process with churning mappings: every other CPU it runs on gets the IPI,
        counted in both TLB and CAL (current kernels), and pays TLB_RECEIVE_COST each."""
        cost = [0.0] * len(self.cpus)
        cpus = parse_cpulist(phase.tlb_cpus) if phase.tlb_shootdowns else []
        if len(cpus) < 2:
            return cost
        per_cpu = phase.tlb_shootdowns * (len(cpus) - 1) / len(cpus)  # the initiator does not IPI itself
        for cpu in cpus:
            n = self._noisy(per_cpu * seconds, ("tlb", cpu))
            self.counters.tlb[cpu] += n
            self.counters.cal[cpu] += n
            cost[cpu] = per_cpu * TLB_RECEIVE_COST
            demand[cpu] += cost[cpu]
        return cost

    def render(self) -> None:
        self.tree.counters(self.cpus, self.irqs, self.counters, {e.irq: self.effective_cpu(e) for e in self.irqs})
        self.tree.write("proc/zoneinfo", mem.zoneinfo_text(self.reserve))
        self.tree.write("proc/vmstat", f"pgalloc_normal {self._pgalloc}\nallocstall_normal {self._allocstall}\n")
        self.tree.write("dev/kmsg", "".join(self._kmsg))
