"""The objective every policy is scored on (docs/physics.md §10.1), in one place.

J = mean latency (µs) + W_CPU × CPUs spent on interrupt handling + DROP_US × fraction dropped,
summed over devices. Interrupt handling means the overhead: hard IRQs, deferral timer polls,
busy-poll spinning, NVMe completion handling; not the packets' own processing, which a
closed-loop load would otherwise "save" by being slowed down. W_CPU is the latency one would
give to save a whole core: 100 µs/core (the balanced goal's price)
puts the optimum on the vendors' 8-16 µs coalescing defaults (docs/physics.md §3.3); a NIC whose operator
declares another goal is priced at that goal's rate (decide/coalesce.GOAL_WEIGHT_US); a dropped
packet costs as much as a millisecond of latency. An NVMe device is priced the same way: the mean completion
latency its application sees, plus its goal's price × the CPUs its I/O path takes (submissions, interrupts and
wake-ups, or the polling spin), so polling can win where latency is asked and lose where efficiency is.
"""

from __future__ import annotations

import math

W_CPU_US = 100.0
DROP_US = 1000.0
UNBOUNDED_US = 1e6  # the latency term of an overloaded queue, so costs stay comparable


def cost(latency_s: float, cpus: float, offered: float, delivered: float, w_cpu: float = W_CPU_US) -> float:
    """J for one device over one interval; `latency_s` packet-weighted mean, `cpus` summed over its queues."""
    if offered <= 0:
        return w_cpu * cpus
    latency_us = latency_s * 1e6 if math.isfinite(latency_s) else UNBOUNDED_US
    dropped = max(0.0, offered - delivered) / offered
    return min(latency_us, UNBOUNDED_US) + w_cpu * cpus + DROP_US * dropped


def nic_weights(spec) -> dict[str, float]:
    """Each NIC's price of a core: its goal's (`scenario.NicSpec.effective_goal`)."""
    from ..model.coalesce import GOAL_WEIGHT_US

    return {nic.name: GOAL_WEIGHT_US[nic.effective_goal] for nic in spec.nics}


def device_weights(spec) -> dict[str, float]:
    """Every device's price of a core, NICs and NVMe devices (`scenario.NvmeSpec.effective_goal`)."""
    from ..model.coalesce import GOAL_WEIGHT_US

    return {**nic_weights(spec), **{nvme.name: GOAL_WEIGHT_US[nvme.effective_goal] for nvme in spec.nvmes}}


def scenario_cost(phases: list, w_cpu: float = W_CPU_US, weights: dict[str, float] | None = None) -> float:
    """J per second of a whole run (`run.PhaseResult`s): summed over devices, phases weighted by their length;
    `weights`: a device's own price of a core (its goal's), where it has one."""
    total = seconds = 0.0
    for p in phases:
        j = 0.0
        for name, nic in p.nics.items():  # per device, as the oracle prices them
            if nic["offered_pps"]:
                j += cost(nic["mean_latency_us"] * 1e-6, nic["overhead_cpu"], nic["offered_pps"], nic["delivered_pps"],
                          (weights or {}).get(name, w_cpu))  # fmt: skip
        for name, dev in p.nvme.items():
            price = (weights or {}).get(name, w_cpu)
            j += cost(dev["mean_latency_us"] * 1e-6, dev["cpu"], dev["iops"], dev["iops"], price)
        total, seconds = total + p.seconds * j, seconds + p.seconds
    return total / seconds if seconds else 0.0
