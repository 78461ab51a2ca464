"""A plan: the changes irqtune would make, each with its reason, checked before anything is written.

A plain value between decide and act: printable as a diff and as JSON, and checked
against the invariants (no IRQ on isolated or banned CPUs unless allowed, never a
managed IRQ, never an excluded device) before `apply` writes a byte.

`Change` is one knob change all the way through: proposed by decide, checked, then applied, held,
refused or recommended by the agent (`outcome`, `note`), and rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import jsonfile
from ..fileio import read_regular
from ..parse.common import CpuListError, brief, format_cpulist, parse_cpulist
from .knob_id import KnobError, parse_knob_id

SCHEMA = 1


PLAN_FIELDS = ("knob", "current", "target", "reason", "evidence", "device", "irq")  # a saved plan's keys


@dataclass
class Change:
    knob: str
    current: str
    target: str
    reason: str
    device: str | None = None
    irq: int | None = None
    evidence: str = ""  # the measurement that led to it
    outcome: str = "recommended"  # what became of it: recommended, applied, unchanged, refused, held, rolled-back
    note: str = ""  # what the engine or the checks said
    predicted: dict | None = None  # what the model expects after it ({"irq_rate", "latency_us", "cpu"}): the agent
    # compares it with the measurement; not part of a saved plan (PLAN_FIELDS)

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class Rules:
    """What a plan must never do. Built from the command line (and later the config)."""

    banned_cpus: frozenset[int] = frozenset()
    isolated_cpus: frozenset[int] = frozenset()
    allow_isolated: bool = False
    excluded_devices: frozenset[str] = frozenset()
    managed_irqs: frozenset[int] = frozenset()
    irq_devices: dict[int, str] = field(default_factory=dict)  # IRQ -> device it serves (from the inventory)
    device_cpus: dict[str, frozenset[int]] = field(default_factory=dict)  # configured CPUs of a device's IRQs:
    # there, isolated or banned CPUs are allowed (the device feeds the critical application on them)


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left alone, and why
    violations: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "schema": SCHEMA,
            "changes": [{k: getattr(c, k) for k in PLAN_FIELDS} for c in self.changes],
            "notes": self.notes,
            "violations": self.violations,
        }

    def diff(self) -> list[str]:
        lines = [f"{c.knob}: {c.current} -> {c.target}    # {c.reason}" for c in self.changes]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"VIOLATION: {v}" for v in self.violations]
        return lines or ["nothing to change"]


MAX_KNOB = 256  # characters of a knob id in a saved plan: the longest real one is under 100


class PlanError(ValueError):
    """A saved plan that cannot be read; the message names the file and what was expected."""


def load_plan(path: str) -> Plan:
    """A plan saved by `irqtune plan --json` (possibly edited by hand). Devices and IRQs are
    derived from the knob ids when the plan is checked, never taken from the file."""
    try:
        data = jsonfile.loads(path, read_regular(path, "plan").decode("utf-8"))
    except jsonfile.JsonError as err:
        raise PlanError(f"{err.where}: not a readable JSON plan ({err.what})") from None
    except (OSError, ValueError) as err:
        why = err.strerror if isinstance(err, OSError) else err
        raise PlanError(f"{path}: not a readable JSON plan ({why})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("changes"), list):
        raise PlanError(f"{path}: expected a schema {SCHEMA} plan with a list of changes")
    notes = data.get("notes", [])
    if not isinstance(notes, list):
        raise PlanError(f"{path}: 'notes' must be a list")
    plan = Plan(notes=[n if isinstance(n, str) else brief(n) for n in notes])
    for i, c in enumerate(data["changes"]):
        if not (isinstance(c, dict) and isinstance(c.get("knob"), str) and isinstance(c.get("target"), str)):
            raise PlanError(f"{path}: change {i} needs string 'knob' and 'target'")
        if len(c["knob"]) > MAX_KNOB:
            raise PlanError(f"{path}: change {i}: a knob id of {len(c['knob']):,} characters: {brief(c['knob'])}")
        plan.changes.append(
            Change(c["knob"], _text(c.get("current", "")), c["target"], _text(c.get("reason", "from a saved plan")),
                   evidence=_text(c.get("evidence", "")))
        )  # fmt: skip
    return plan


def _text(value: object) -> str:
    """A saved plan's free text (a reason, the value it saw): a string as it is, anything else quoted briefly."""
    return value if isinstance(value, str) else brief(value)


def check(plan: Plan, rules: Rules) -> Plan:
    """Record every change that breaks a rule; `apply` refuses a plan with violations.

    What a change touches comes from its knob id (canonical), not from what the plan says.
    """
    for c in plan.changes:
        try:
            kid = parse_knob_id(c.knob)
        except KnobError as err:
            plan.violations.append(str(err))
            continue
        device = kid.device or (rules.irq_devices.get(kid.irq) if kid.irq is not None else None)
        if device and device in rules.excluded_devices:
            plan.violations.append(f"{kid.canonical}: device {device} is excluded")
        if kid.irq is not None and kid.irq in rules.managed_irqs:
            plan.violations.append(f"{kid.canonical}: IRQ {kid.irq} is kernel-managed")
        if kid.cpulist:
            try:
                cpus = set(parse_cpulist(c.target))
            except CpuListError as err:
                plan.violations.append(f"{kid.canonical}: {err}")
                continue
            plan.violations += [f"{kid.canonical}: {broken}" for broken in _forbidden(cpus, rules, device)]
    return plan


def _forbidden(cpus: set[int], rules: Rules, device: str | None) -> list[str]:
    """Which rules a CPU list breaks ("CPU 6 is isolated"); a device's own configured CPUs break none."""
    cpus = cpus - (rules.device_cpus.get(device, frozenset()) if device else frozenset())
    out = []
    if cpus & rules.banned_cpus:
        out.append(f"CPU {format_cpulist(cpus & rules.banned_cpus)} is banned")
    if cpus & rules.isolated_cpus and not rules.allow_isolated:
        out.append(f"CPU {format_cpulist(cpus & rules.isolated_cpus)} is isolated")
    return out


def fixes_violation(change: Change, rules: Rules) -> str | None:
    """What an IRQ's current CPU list breaks ("CPU 6 is isolated") when `change` moves it to one that breaks
    nothing; None for any other change. An IRQ on a forbidden CPU is a fault to end now, not an optimisation to
    pace: the agent applies such a fix whatever its max_changes."""
    try:
        kid = parse_knob_id(change.knob)
        current, target = set(parse_cpulist(change.current)), set(parse_cpulist(change.target))
    except (KnobError, CpuListError):
        return None
    if kid.kind != "irq-affinity" or not target:
        return None
    device = kid.device or rules.irq_devices.get(kid.irq)
    broken = _forbidden(current, rules, device)
    return "; ".join(broken) if broken and not _forbidden(target, rules, device) else None
