"""What the eBPF probes would have measured on the simulated host over its last step, from the model's numbers.

A real agent takes no probe window (`irqtune probe`, `status` and `top` do); on the simulated host the
irqtune policy hands the agent this window, so the advice that needs probe data (NVMe polling, the
senders of TLB shootdowns) runs in `simulate`. The data has the shape of `irqtune probe --json`
(`probe/hardirq.py`, `probe/block.py`, `probe/tlb.py`) and nothing the model does not say:
- hardirq: per IRQ, the interrupts the step counted, each taking the model's handler time (a NIC's
  `irq_cost_us`, an NVMe queue's t_irq, sim/nvme.py IRQ_COST): one log2 bucket, as the model has no spread.
- block: per namespace and hardware queue, the step's completions; their latency distribution from the
  event simulation (sim/nvme.py `simulate_nvme`) in the mode in force, issue to completion: the
  application's latency less the submission (c_sub) and, with interrupts, the wake-up (t_wake), which the
  block tracepoints do not bracket.
- tlb: shootdowns each CPU received in the step (the TLB row's), and the sender: the phase's `tlb_task`,
  which initiated the phase's shootdowns.
"""

from __future__ import annotations

import random

from ..probe.base import SLOTS, Histogram
from .machine import SimMachine
from .nvme import IRQ_COST, SUBMIT_COST, WAKE_COST, simulate_nvme
from .scenario import OPEN_LOOP_DEPTH

PROBE_IOS = 400  # I/O per device and step whose latencies shape the block histogram


def _slot(ns: int) -> int:
    """probe/base.py's log2 slot: slot s holds [2^(s-1), 2^s - 1] ns, 0 and 1 in slot 1."""
    return min(max(ns.bit_length(), 1), SLOTS - 1)


def histogram(values_s: list[float], count: int) -> dict:
    """`count` events distributed as `values_s` (seconds), as the probes' JSON has a histogram."""
    hist = Histogram()
    if count <= 0 or not values_s:
        return hist.to_json()
    ns = [max(0, round(v * 1e9)) for v in values_s]
    slots = [0] * SLOTS
    for v in ns:
        slots[_slot(v)] += 1
    scaled = [round(n * count / len(ns)) for n in slots]
    hist.add(sum(scaled), round(sum(ns) / len(ns) * sum(scaled)), max(ns), scaled)
    return hist.to_json()


class SimProbes:
    """The probe window of each step: counts since the previous window, so call it once per step."""

    def __init__(self, sim: SimMachine, seed: int = 1) -> None:
        self.sim, self.rng = sim, random.Random(seed * 104729 + 7)
        self.clock = sim.clock
        self.irqs = {e.irq: sum(e.counts) for e in sim.irqs}
        self.tlb = list(sim.counters.tlb)

    def window(self) -> dict | None:
        """`irqtune probe --json`'s document for the time since the last window; None before the first step."""
        sim = self.sim
        seconds, phase = sim.clock - self.clock, sim.last_phase
        if seconds <= 0 or phase is None:
            return None
        irqs = {e.irq: sum(e.counts) - self.irqs.get(e.irq, 0) for e in sim.irqs}
        tlb = [n - before for n, before in zip(sim.counters.tlb, self.tlb)]
        self.clock, self.tlb = sim.clock, list(sim.counters.tlb)
        self.irqs = {e.irq: sum(e.counts) for e in sim.irqs}
        probes = {"hardirq": self._hardirq(irqs), "block": self._block(seconds), "tlb": self._tlb(tlb, seconds)}
        return {"duration": seconds, "probes": {name: {"status": "ok", "reason": "", "data": data}
                                                for name, data in probes.items()}}  # fmt: skip

    def _hardirq(self, counts: dict[int, int]) -> dict:
        cost = {nic.name: nic.irq_cost_us * 1e-6 for nic in self.sim.sc.nics}
        irqs = {str(e.irq): histogram([cost.get(e.device, IRQ_COST)], counts[e.irq])
                for e in self.sim.irqs if counts[e.irq] > 0}  # fmt: skip
        return {"irqs": irqs, "unhandled": {}, "actions": {}, "irq_beyond_map": 0}

    def _block(self, seconds: float) -> dict:
        sim, devices = self.sim, {}
        for minor, nvme in enumerate(sim.sc.nvmes):
            steps = [q for q in sim.last_nvme if q.device == nvme.name]
            load = sim.last_phase.load_for(nvme.name)
            if not steps or load is None:
                continue
            mode = steps[0].mode
            events = simulate_nvme(mode, sim.nvme_media(nvme), iodepth=load.iodepth or OPEN_LOOP_DEPTH,
                                   rate=load.iops / nvme.queues, ios=PROBE_IOS, seed=self.rng.getrandbits(32),
                                   cstate=nvme.cstate_us * 1e-6, samples=True)  # fmt: skip
            left = SUBMIT_COST + (WAKE_COST if mode == "irq" else 0.0)
            issued = [max(0.0, s - left) for s in events.samples]
            queues = {f"hctx{q.queue - 1}": histogram(issued, round(q.iops * seconds)) for q in steps}
            total = sum(h["count"] for h in queues.values())
            devices[f"{nvme.name}n1"] = {"dev": f"259:{minor}", "latency": histogram(issued, total),
                                         "remote_completions": 0, "queues": queues}  # fmt: skip
        return {"devices": devices}

    def _tlb(self, received: list[int], seconds: float) -> dict:
        phase, reasons, senders = self.sim.last_phase, {}, {}
        per_cpu = {cpu: n for cpu, n in enumerate(received) if n > 0}
        if per_cpu:
            reasons["remote_shootdown"] = {"per_cpu": per_cpu, "count": sum(per_cpu.values()), "pages": 0,
                                           "full_flushes": 0}  # fmt: skip
        sent = round(phase.tlb_shootdowns * seconds)
        if sent and per_cpu:
            reasons["remote_send_ipi"] = {"per_cpu": {cpu: round(sent / len(per_cpu)) for cpu in per_cpu},
                                          "count": sent, "pages": 0, "full_flushes": 0}  # fmt: skip
            senders[phase.tlb_task] = sent
        return {"reasons": reasons, "senders": senders}
