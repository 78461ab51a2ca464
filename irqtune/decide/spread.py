"""Policy "spread": each NIC's queue IRQs, one per CPU in turn, over the NIC-local housekeeping CPUs.

The rss-ladder idea (netutils-linux): queue i of a NIC goes to the i-th CPU of the
NIC's NUMA node (its `local_cpulist`), skipping isolated and banned CPUs; with more
queues than CPUs the list wraps and the plan says so. A second NIC starts on the CPUs
that hold the fewest queues so far, so two NICs' queue 0 do not share a CPU while another
idles. Managed IRQs and excluded devices are left alone, with a note. Pure: measurements
in, a plan out.
"""

from __future__ import annotations

from ..act.plan import Change, Plan, Rules
from ..measure.inventory import Inventory
from ..measure.topology import Topology
from ..parse.common import format_cpulist

QUEUE_ROLES = ("rxtx", "rx", "tx")


def spread_nic_queues(inventory: Inventory, topology: Topology, rules: Rules) -> Plan:
    plan = Plan()
    usable_base = [
        c
        for c in topology.housekeeping
        if c not in rules.banned_cpus and (rules.allow_isolated or c not in rules.isolated_cpus)
    ]
    taken: dict[int, int] = {}  # CPU -> queues given to it so far, over all NICs
    for device in inventory.devices:
        if device.kind != "nic":
            continue
        queues = sorted(
            (q for q in device.irqs if q.role in QUEUE_ROLES and q.queue is not None),
            key=lambda q: (q.queue, QUEUE_ROLES.index(q.role)),
        )
        if not queues:
            continue
        if device.name in rules.excluded_devices:
            plan.notes.append(f"{device.name}: excluded, left as it is")
            continue
        local = set(device.local_cpus or topology.online)
        cpus = [c for c in usable_base if c in local] or usable_base
        pinned = sorted(c for c in rules.device_cpus.get(device.name, ()) if c in topology.online)
        cpus = pinned or cpus  # configured for this device: its CPUs, isolated or not
        if not cpus:
            plan.notes.append(f"{device.name}: no CPU left after bans and isolation; left as it is")
            continue
        cpus = sorted(cpus, key=lambda c: (taken.get(c, 0), cpus.index(c)))
        where = "configured" if pinned else (f"node {device.numa_node}" if device.numa_node is not None
                                             else "no NUMA locality")  # fmt: skip
        span = format_cpulist(cpus)
        numbers = sorted({q.queue for q in queues})
        if len(numbers) > len(cpus):
            plan.notes.append(
                f"{device.name}: {len(numbers)} queues on {len(cpus)} CPUs: some CPUs serve several queues"
            )
        for q in queues:
            info = inventory.irqs.get(q.irq)
            if info is None or info.affinity is None or info.affinity.requested is None:
                continue
            if info.managed == "yes":
                plan.notes.append(f"IRQ {q.irq} ({device.name} {q.role} {q.queue}): kernel-managed, left as it is")
                continue
            cpu = cpus[numbers.index(q.queue) % len(cpus)]
            taken[cpu] = taken.get(cpu, 0) + 1
            target = format_cpulist([cpu])
            current = format_cpulist(info.affinity.requested)
            if target == current:
                continue
            effective = format_cpulist(info.affinity.effective or [])
            plan.changes.append(
                Change(
                    knob=f"irq/{q.irq}/affinity", current=current, target=target, device=device.name, irq=q.irq,
                    reason=f"spread {device.name} queue {q.queue} over its {'' if pinned else 'local '}CPUs "
                           f"({where}: {span})",
                    evidence=f"requested {current}, effective {effective or '?'}",
                )
            )  # fmt: skip
    return plan
