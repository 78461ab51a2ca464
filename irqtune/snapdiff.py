"""`irqtune diff A.json B.json`: what happened between two saved snapshots (the sosreport workflow).

The two must come from one host and one boot, B after A; then the rates over the gap are `compute_rates`'
(wraps and resets as for `status`), and the findings those of `status` over that interval, judged from the
snapshots alone: no /sys, so devices are known by their action names and no CPU is known to be isolated.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime

from .findings import Measurements, find_all
from .measure.inventory import Inventory, build_inventory
from .measure.rates import Rates, compute_rates
from .measure.snapshot import SCHEMA, IrqAffinity, Snapshot
from .measure.topology import Topology
from .parse.common import format_cpulist
from .parse.interrupts import InterruptTable

RESET_SHARE = 0.5  # more than this share of the busy rows fell below half their count: the host rebooted
BUSY_ROW = 1000  # rows with fewer interrupts in A say nothing about a reboot


class DiffRefused(ValueError):
    """The two snapshots cannot be compared; the message says why."""


def _differ(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a != b


def _rebooted(a: Snapshot, b: Snapshot) -> bool:
    """Without boot ids: most busy interrupt rows counting from far below where they were."""
    if not a.interrupts or not b.interrupts:
        return False
    pairs = [(row.total, b.interrupts.rows[key].total) for key, row in a.interrupts.rows.items()
             if key in b.interrupts.rows and (row.total or 0) >= BUSY_ROW]  # fmt: skip
    fell = sum(1 for old, new in pairs if new is not None and new < old // 2)
    return bool(pairs) and fell > RESET_SHARE * len(pairs)


def _clock(a: Snapshot, b: Snapshot) -> str:
    """The monotonic clock when both have it (same boot), else the wall clock."""
    return "monotonic" if math.isfinite(a.monotonic) and math.isfinite(b.monotonic) else "wall"


def check_comparable(a: Snapshot, b: Snapshot, a_name: str, b_name: str) -> tuple[float, str]:
    """The gap in seconds and the clock it was read from; DiffRefused when rates between them would be wrong."""
    if _differ(a.hostname, b.hostname):
        raise DiffRefused(f"{a_name} is of host {a.hostname!r}, {b_name} of {b.hostname!r}: different hosts")
    if _differ(a.boot_id, b.boot_id):
        raise DiffRefused(f"{a_name} and {b_name} come from different boots (boot id {a.boot_id} then {b.boot_id})")
    if (a.boot_id is None or b.boot_id is None) and _rebooted(a, b):
        raise DiffRefused(f"{a_name} and {b_name} look like different boots: most interrupt counters fell")
    clock = _clock(a, b)
    gap = b.monotonic - a.monotonic if clock == "monotonic" else b.taken_at - a.taken_at
    if gap <= 0:
        raise DiffRefused(f"{b_name} ({_when(b.taken_at)}) is not later than {a_name} ({_when(a.taken_at)})")
    return gap, clock


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def diff_rates(a: Snapshot, b: Snapshot, clock: str) -> Rates:
    """compute_rates over the gap, on the wall clock when the snapshots have no common monotonic one."""
    if clock == "wall":
        a, b = dataclasses.replace(a, monotonic=a.taken_at), dataclasses.replace(b, monotonic=b.taken_at)
    return compute_rates(a, b)


def snapshot_topology(snap: Snapshot) -> Topology:
    """What a snapshot says of the CPUs: which were online; nothing of NUMA or isolation."""
    return Topology(online=list(snap.cpus), possible=list(snap.cpus), housekeeping=list(snap.cpus), source="snapshot")


def snapshot_inventory(snap: Snapshot) -> Inventory:
    return build_inventory(None, snap.interrupts or InterruptTable(cpus=[]), snap.affinity)


def _round(value: float) -> float:
    return round(value, 2)


def _by_cpu(per_cpu: dict[int, float]) -> dict[str, float]:
    return {str(cpu): _round(rate) for cpu, rate in sorted(per_cpu.items())}


def _cpulist(cpus: list[int] | None) -> str | None:
    return format_cpulist(cpus) if cpus is not None else None


def _irq_entries(b: Snapshot, rates: Rates, inventory: Inventory) -> list[dict]:
    """Every numbered IRQ of B with its rate over the gap, busiest first."""
    out = []
    for irq, info in inventory.irqs.items():
        row = rates.interrupts.get(str(irq))
        aff = info.affinity or IrqAffinity()
        out.append({
            "irq": irq, "rate": _round(row.total) if row else None, "per_cpu": _by_cpu(row.per_cpu) if row else None,
            "count": b.interrupts.rows[str(irq)].total if b.interrupts else None, "device": info.device,
            "kind": info.kind, "role": info.role, "queue": info.queue, "actions": list(info.actions),
            "requested": _cpulist(aff.requested), "effective": _cpulist(aff.effective), "managed": info.managed,
        })  # fmt: skip
    return sorted(out, key=lambda e: (-(e["rate"] or 0.0), e["irq"]))


def _named(b: Snapshot, rates: Rates) -> dict[str, dict]:
    """LOC, RES, CAL, TLB, ERR ...: their rates over the gap."""
    out = {}
    for key, row in b.interrupts.rows.items() if b.interrupts else ():
        if row.irq is None and key in rates.interrupts:
            rate = rates.interrupts[key]
            out[key] = {"description": row.description, "rate": _round(rate.total), "per_cpu": _by_cpu(rate.per_cpu)}
    return out


def _per_cpu(rates: Rates, named: dict[str, dict]) -> list[dict]:
    out = []
    for cpu in rates.cpus:
        entry: dict = {"cpu": cpu, "device_irqs": _round(
            sum(r.per_cpu.get(cpu, 0.0) for k, r in rates.interrupts.items() if k.isdigit()))}  # fmt: skip
        entry.update({key: n["per_cpu"].get(str(cpu), 0.0) for key, n in named.items() if n["per_cpu"]})
        if cpu in rates.irq_time:
            entry["irq_time"] = _round(rates.irq_time[cpu])
            entry["softirq_time"] = _round(rates.softirq_time.get(cpu, 0.0))
        out.append(entry)
    return out


def affinity_changes(a: Snapshot, b: Snapshot) -> list[dict]:
    """IRQs in both whose requested or effective affinity moved: {irq, requested: [A, B], effective: [A, B]}."""
    out = []
    for irq in sorted(a.affinity.keys() & b.affinity.keys()):
        old, new = a.affinity[irq], b.affinity[irq]
        entry: dict = {"irq": irq}
        for name in ("requested", "effective"):
            before, after = getattr(old, name), getattr(new, name)
            if before is not None and after is not None and before != after:
                entry[name] = [format_cpulist(before), format_cpulist(after)]
        if len(entry) > 1:
            out.append(entry)
    return out


def _side(name: str, snap: Snapshot) -> dict:
    return {"file": name, "taken_at": _when(snap.taken_at), "hostname": snap.hostname, "boot_id": snap.boot_id,
            "root": snap.root}  # fmt: skip


def build_diff(a: Snapshot, b: Snapshot, a_name: str, b_name: str) -> dict:
    """The diff report as plain data (`--json`, and what the text shows); DiffRefused when not comparable."""
    gap, clock = check_comparable(a, b, a_name, b_name)
    rates = diff_rates(a, b, clock)
    inventory, before = snapshot_inventory(b), snapshot_inventory(a)
    measured = Measurements(snapshot_topology(b), inventory, rates, b.interrupts, b.netdev)
    named = _named(b, rates)
    old_devices, new_devices = {d.name for d in before.devices}, {d.name for d in inventory.devices}
    return {
        "schema": SCHEMA,
        "a": _side(a_name, a),
        "b": _side(b_name, b),
        "interval": _round(gap),
        "clock": clock,
        "changes": {
            "irqs_appeared": rates.appeared,
            "irqs_vanished": rates.vanished,
            "devices_appeared": sorted(new_devices - old_devices),
            "devices_vanished": sorted(old_devices - new_devices),
            "cpus_added": rates.cpus_added,
            "cpus_removed": rates.cpus_removed,
        },
        "affinity_changes": affinity_changes(a, b),
        "irqs": _irq_entries(b, rates, inventory),
        "arch_interrupts": named,
        "per_cpu": _per_cpu(rates, named),
        "softirqs": {v: _by_cpu(r) for v, r in rates.softirqs.items()},
        "softnet": {str(cpu): {k: _round(v) for k, v in s.items()} for cpu, s in rates.softnet.items()},
        "findings": [f.to_json() for f in find_all(measured)],
        "problems": [],
    }
