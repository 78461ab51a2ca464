"""Measure what placement needs (snapshot, topology, inventory, rules) and decide a checked placement plan:
the spread, co-location with a configured process (decide/colocate.py) and RPS/XPS to match.

Shared by `irqtune plan/apply` and the simulator's irqtune policy, so both decide the same way.
"""

from __future__ import annotations

import logging

from ..act.knobs import KnobError, Unsupported, make_knob
from ..host import Host
from ..measure.inventory import Inventory, build_inventory
from ..measure.snapshot import take_snapshot
from ..measure.tasks import find_process_threads
from ..measure.topology import Topology, read_topology
from ..parse.interrupts import InterruptTable
from ..plan import Plan, Rules, check
from ..state import boot_id, load_learned_managed
from .colocate import colocate_plan, placed_cpus, steering_plan
from .spread import spread_nic_queues

log = logging.getLogger(__name__)


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


def placement_plan(host: Host, state_dir: str, plan: Plan | None = None,
                   colocate: dict[str, tuple[str, str]] | None = None, steer: frozenset[str] = frozenset(),
                   **rules) -> tuple[Plan, Topology]:  # fmt: skip
    """The spread plan (or `plan`, e.g. loaded from a file), with the IRQs of devices tied to a process
    (`colocate`: device -> (process name, "irq" or "threads")) next to its threads and RPS/XPS of the
    `steer` devices matched to the result; checked against the rules."""
    inventory, topology, checked_rules = placement_inputs(host, state_dir, **rules)
    decided = plan if plan is not None else spread_nic_queues(inventory, topology, checked_rules)
    for move in ("irq", "threads"):
        placements = {dev: find_process_threads(host, name) for dev, (name, how) in (colocate or {}).items()
                      if how == move}  # fmt: skip
        if placements:
            decided = colocate_plan(inventory, topology, checked_rules, placements, base=decided, move=move)
    if steer:
        queues = _steering_knobs(host, steer)
        steering = steering_plan(inventory, topology, checked_rules, placed_cpus(inventory, decided), queues)
        decided = Plan(decided.changes + steering.changes, decided.notes + steering.notes, decided.violations)
    return check(decided, checked_rules), topology


def _steering_knobs(host: Host, devices: frozenset[str]) -> dict[str, str]:
    """Current value of every rps-cpus/xps-cpus knob of these devices (canonical id -> CPU list)."""
    out = {}
    for device in sorted(devices):
        for queue in host.entries(host.sys(), "class", "net", device, "queues"):
            kind = "rps-cpus" if queue.startswith("rx-") else "xps-cpus" if queue.startswith("tx-") else None
            if kind is None:
                continue
            try:
                knob = make_knob(host, f"net/{device}/{queue}/{kind}")
                out[knob.id] = knob.read()
            except (KnobError, Unsupported, OSError) as err:  # no XPS without multiqueue TX, a vanished queue
                log.debug("%s/%s: %s", device, queue, err)
    return out
