"""Measure what placement needs (snapshot, topology, inventory, rules) and decide a checked spread plan.

Shared by `irqtune plan/apply` and the simulator's irqtune policy, so both decide the same way.
"""

from __future__ import annotations

from ..act.plan import Plan, Rules, check
from ..host import Host
from ..measure.inventory import Inventory, build_inventory
from ..measure.snapshot import take_snapshot
from ..measure.topology import Topology, read_topology
from ..parse.interrupts import InterruptTable
from ..state import boot_id, load_learned_managed
from .spread import spread_nic_queues


def placement_inputs(host: Host, state_dir: str, banned: frozenset[int] = frozenset(), allow_isolated: bool = False,
                     exclude: frozenset[str] = frozenset(), device_cpus: dict[str, frozenset[int]] | None = None,
                     ) -> tuple[Inventory, Topology, Rules]:  # fmt: skip
    snap = take_snapshot(host)
    topology = read_topology(host, fallback_online=snap.cpus)
    learned = load_learned_managed(state_dir, boot_id(host))
    inventory = build_inventory(host, snap.interrupts or InterruptTable(cpus=[]), snap.affinity, learned)
    rules = Rules(
        banned_cpus=banned,
        isolated_cpus=frozenset(topology.isolated_any),
        allow_isolated=allow_isolated,
        excluded_devices=exclude,
        managed_irqs=frozenset(i for i, info in inventory.irqs.items() if info.managed == "yes"),
        irq_devices={i: info.device for i, info in inventory.irqs.items() if info.device},
        device_cpus=device_cpus or {},
    )
    return inventory, topology, rules


def placement_plan(host: Host, state_dir: str, plan: Plan | None = None, **rules) -> tuple[Plan, Topology]:
    """The spread plan (or `plan`, e.g. loaded from a file), checked against the rules."""
    inventory, topology, checked_rules = placement_inputs(host, state_dir, **rules)
    decided = plan if plan is not None else spread_nic_queues(inventory, topology, checked_rules)
    return check(decided, checked_rules), topology
