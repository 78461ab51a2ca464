"""Policy "spread": each NIC's queue IRQs, one per core in turn, over the NIC-local housekeeping CPUs.

The rss-ladder idea (netutils-linux): queue i of a NIC goes to the i-th CPU of the
NIC's NUMA node (its `local_cpulist`), skipping isolated and banned CPUs; one CPU of every
core comes first and SMT siblings last (siblings share the core's caches and execution
units: two busy queues there do not get two cores' worth, scaling.rst). With more queues
than CPUs the list wraps and the plan says so. A second NIC starts on the CPUs that hold
the fewest queues so far, so two NICs' queue 0 do not share a CPU while another idles.

Vector space: an x86 CPU has 256 interrupt vectors and about VECTOR_BUDGET of them for
devices; a CPU that already serves that many IRQs (effective affinity) is skipped, so a
write does not fail with ENOSPC (irqbalance #303, #355). Managed IRQs cannot be moved: the
plan says which boot parameters keep them off isolated CPUs instead (isolcpus=managed_irq,
irqaffinity= for the rest). Excluded devices are left alone, with a note. Pure:
measurements in, a plan out.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..measure.inventory import Device, Inventory, QueueIrq
from ..measure.topology import Topology
from ..parse.common import format_cpulist
from ..plan import Change, Plan, Rules

QUEUE_ROLES = ("rxtx", "rx", "tx", "io")
NIC_ROLES = ("rxtx", "rx", "tx")
VECTOR_BUDGET = 200  # x86: 256 vectors, 32 exceptions, the rest system vectors and reserve (arch/x86 irq_vectors.h)


def usable_cpus(topology: Topology, rules: Rules) -> list[int]:
    """Where any interrupt may go: housekeeping CPUs that are not banned (nor isolated, unless allowed)."""
    return [
        c
        for c in topology.housekeeping
        if c not in rules.banned_cpus and (rules.allow_isolated or c not in rules.isolated_cpus)
    ]


def own_cpus(topology: Topology, rules: Rules, device: str) -> set[int]:
    """The CPUs the config gives a device (allowed even when isolated or banned)."""
    return {c for c in rules.device_cpus.get(device, ()) if c in topology.online}


def queue_irqs(device: Device, roles: Iterable[str] = QUEUE_ROLES) -> list[QueueIrq]:
    """The device's queue IRQs ordered by queue number, rx/tx of one queue together."""
    return sorted(
        (q for q in device.irqs if q.role in roles and q.queue is not None),
        key=lambda q: (q.queue, QUEUE_ROLES.index(q.role)),
    )


def cores_first(cpus: list[int], topology: Topology) -> list[int]:
    """`cpus` with the first CPU of every core before the SMT siblings, order otherwise kept."""
    sibling_rank = {cpu: group.index(cpu) for group in topology.smt_groups for cpu in group}
    return sorted(cpus, key=lambda c: sibling_rank.get(c, 0))


def vectors_in_use(inventory: Inventory) -> dict[int, int]:
    """IRQs each CPU serves now (single-CPU effective affinity: the vector is allocated there)."""
    used: dict[int, int] = {}
    for info in inventory.irqs.values():
        effective = info.affinity.effective if info.affinity else None
        if effective and len(effective) == 1:
            used[effective[0]] = used.get(effective[0], 0) + 1
    return used


def managed_advice(topology: Topology) -> str:
    """What to boot with so managed IRQs stay off isolated CPUs (they cannot be moved at run time)."""
    isolated = sorted(topology.isolated_any)
    if not isolated:
        return "kernel-managed (spread by the kernel per CPU), left as it is"
    housekeeping = format_cpulist(topology.housekeeping)
    return (f"kernel-managed, left as it is; to keep it off isolated CPUs boot with isolcpus=managed_irq,"
            f"{format_cpulist(isolated)} (and irqaffinity={housekeeping} for the rest)")  # fmt: skip


def spread_nic_queues(inventory: Inventory, topology: Topology, rules: Rules) -> Plan:
    plan = Plan()
    usable_base = cores_first(usable_cpus(topology, rules), topology)
    taken: dict[int, int] = {}  # CPU -> queues given to it so far, over all NICs
    vectors = vectors_in_use(inventory)
    full = sorted(c for c in usable_base if vectors.get(c, 0) >= VECTOR_BUDGET)
    if full:
        plan.notes.append(f"CPU {format_cpulist(full)}: {VECTOR_BUDGET}+ IRQs already (vector space), not used")
        usable_base = [c for c in usable_base if c not in full]
    for device in inventory.devices:
        if device.kind != "nic":
            continue
        queues = queue_irqs(device, NIC_ROLES)
        if not queues:
            continue
        if device.name in rules.excluded_devices:
            plan.notes.append(f"{device.name}: excluded, left as it is")
            continue
        local = set(device.local_cpus or topology.online)
        cpus = [c for c in usable_base if c in local] or usable_base
        pinned = sorted(own_cpus(topology, rules, device.name))
        cpus = pinned or cpus  # configured for this device: its CPUs, isolated or not
        if not cpus:
            plan.notes.append(f"{device.name}: no CPU left after bans and isolation; left as it is")
            continue
        order = {c: i for i, c in enumerate(cpus)}
        cpus = sorted(cpus, key=lambda c: (taken.get(c, 0), order[c]))
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
                plan.notes.append(f"IRQ {q.irq} ({device.name} {q.role} {q.queue}): {managed_advice(topology)}")
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
