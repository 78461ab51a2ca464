"""Decide a checked placement plan from one Reading: the spread, co-location with a configured process
(decide/colocate.py) and RPS/XPS to match. Pure: what it needs beyond the Reading (the process's threads,
the current RPS/XPS masks) is read by the caller (`measure/reading.py`) and passed in.

Shared by `irqtune plan/apply` and the agent (and so the simulator's irqtune policy): both decide the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..measure.reading import Reading
from ..measure.tasks import ThreadPlacement
from ..plan import Plan, Rules, check
from .colocate import colocate_plan, placed_cpus, steering_plan
from .spread import spread_nic_queues


def placement_rules(reading: Reading, banned: frozenset[int] = frozenset(), allow_isolated: bool = False,
                    exclude: frozenset[str] = frozenset(), device_cpus: dict[str, frozenset[int]] | None = None,
                    ) -> Rules:  # fmt: skip
    """What a placement must never do on this host: the caller's bans and exclusions, plus what the reading
    says (isolated CPUs, kernel-managed IRQs, which device each IRQ serves)."""
    inventory = reading.inventory
    return Rules(
        banned_cpus=banned,
        isolated_cpus=frozenset(reading.topology.isolated_any),
        allow_isolated=allow_isolated,
        excluded_devices=exclude,
        managed_irqs=frozenset(i for i, info in inventory.irqs.items() if info.managed == "yes"),
        irq_devices={i: info.device for i, info in inventory.irqs.items() if info.device},
        device_cpus=device_cpus or {},
    )


def placement_plan(reading: Reading, rules: Rules, plan: Plan | None = None,
                   threads: Mapping[str, tuple[list[ThreadPlacement], str]] | None = None,
                   queue_masks: Mapping[str, str] | None = None) -> Plan:  # fmt: skip
    """The spread plan (or `plan`, e.g. loaded from a file), with the IRQs of devices tied to a process
    (`threads`: device -> (its threads, "irq" or "threads")) next to those threads and the RPS/XPS masks in
    `queue_masks` (knob id -> current CPU list) matched to the result; checked against the rules."""
    inventory, topology = reading.inventory, reading.topology
    decided = plan if plan is not None else spread_nic_queues(inventory, topology, rules)
    for move in ("irq", "threads"):
        placements = {dev: found for dev, (found, how) in (threads or {}).items() if how == move}
        if placements:
            decided = colocate_plan(inventory, topology, rules, placements, base=decided, move=move)
    if queue_masks is not None:  # steered devices: their masks follow the placement (none readable: notes only)
        steering = steering_plan(inventory, topology, rules, placed_cpus(inventory, decided), dict(queue_masks))
        decided = Plan(decided.changes + steering.changes, decided.notes + steering.notes, decided.violations)
    return check(decided, rules)
