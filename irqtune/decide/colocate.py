"""Policies "colocate" and "steer": a queue's interrupt next to the threads that consume it, and RPS/XPS to match.

Co-location (`colocate_plan`), for each device the config ties to a process
(`[[device]] name = "eth0"`, `colocate = "memcached"`):

* Only threads pinned to fewer than all online CPUs count. Where an unpinned thread last
  ran is one sample of the scheduler's choice; moving interrupts after it would chase the
  scheduler. An unpinned process moves nothing: the plan recommends pinning it next to
  the device's interrupts instead.
* The process's CPUs are ordered by how many of its threads may run there. Queue k of
  the device follows the k-th of them, CPU c, and its IRQ goes to the first allowed CPU
  of: an SMT sibling of c (same core: shared L1/L2, but the thread keeps its own
  hardware thread), c itself, another CPU of c's L3 group. Among equally near CPUs, the
  one holding fewest of the device's queues. Allowed: a housekeeping CPU that is neither
  banned nor isolated; when the config gives the device CPUs, only those.
* Nothing allowed on the core or the L3 group: the IRQ stays where it is, with a note.
* Kernel-managed IRQs cannot be moved: they are skipped, and the plan recommends running
  the threads where the kernel put them. Excluded devices and devices without IRQs
  (veth, bridges) get no co-location.
* `move="threads"`: the IRQs stay and the plan recommends pinning the threads next to
  them instead. Recommendations are notes that start with "recommend:"; irqtune never
  changes a thread's affinity itself.

Which process consumes a queue's packets is not measured: that needs probes (see
measure/tasks.py), so the process is named in the config.

Steering (`steering_plan`, Documentation/networking/scaling.rst), for each NIC whose
queue IRQs are placed (CPU c for queue q):

* XPS: tx-q is used by the CPUs that take its completions, c and c's SMT siblings.
* RPS: only when the NIC has fewer rx queues than allowed CPUs in its NUMA node; then
  rx-q spreads to the allowed CPUs of c's L3 group that take no NIC queue IRQ (else the
  node's such CPUs). Otherwise RPS is off (empty mask, written as 0): the queues already
  spread the work and RPS would only add IPIs.
* Banned and isolated CPUs never appear in a mask, except a device's configured CPUs.

Pure: measurements in, a plan out (unchecked, like spread; `act.plan.check` it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..measure.inventory import Device, Inventory, QueueIrq
from ..measure.snapshot import IrqAffinity
from ..measure.tasks import ThreadPlacement, shown
from ..measure.topology import Topology
from ..parse.common import CpuListError, format_cpulist, parse_cpulist
from ..plan import Change, KnobError, Plan, Rules, parse_knob_id
from .spread import own_cpus, queue_irqs, usable_cpus

RX_ROLES = ("rxtx", "rx")
TX_ROLES = ("rxtx", "tx")
RECOMMEND = "recommend: "
MOVES = ("irq", "threads")


# -- shared pieces -------------------------------------------------------------------------------------


def smt_siblings(topology: Topology, cpu: int) -> list[int]:
    """The other hardware threads of `cpu`'s core."""
    group = next((g for g in topology.smt_groups if cpu in g), [cpu])
    return [c for c in group if c != cpu]


def l3_group(topology: Topology, cpu: int) -> list[int]:
    return next((g for g in topology.l3_groups if cpu in g), [])


def _single(cpus: Iterable[int] | None) -> int | None:
    cpus = list(cpus or [])
    return cpus[0] if len(cpus) == 1 else None


def _canonical(knob: str) -> str:
    try:
        return parse_knob_id(knob).canonical
    except KnobError:
        return knob


def placed_cpus(inventory: Inventory, plan: Plan | None = None) -> dict[int, int]:
    """IRQ -> the one CPU that handles it: the plan's target, else the effective (else requested) affinity.

    The input of `steering_plan` and of the thread recommendations; IRQs spread over
    several CPUs have no single CPU and are left out.
    """
    placed: dict[int, int] = {}
    for irq, info in inventory.irqs.items():
        aff = info.affinity
        cpu = None if aff is None else _single(aff.effective) if aff.effective else _single(aff.requested)
        if cpu is not None:
            placed[irq] = cpu
    changes = plan.changes if plan else []
    for c in changes:
        try:
            kid = parse_knob_id(c.knob)
            cpu = _single(parse_cpulist(c.target)) if kid.kind == "irq-affinity" else None
        except (KnobError, CpuListError):
            continue
        if cpu is not None and kid.irq is not None:
            placed[kid.irq] = cpu
    return placed


# -- co-location -----------------------------------------------------------------------------------------


def pinned_cpus(threads: list[ThreadPlacement], online: list[int], default: list[int] | None = None) -> list[int]:
    """The CPUs of the pinned threads, most threads first. A thread allowed on every CPU a task gets by
    default (the housekeeping CPUs when some are isolated, else all online ones) is not pinned: with
    isolcpus= every ordinary thread's mask is the housekeeping set."""
    weight: dict[int, float] = {}
    usual = set(default or online) & set(online)
    for t in threads:
        cpus = [c for c in t.allowed if c in online]
        if not cpus or usual <= set(cpus):
            continue
        for c in cpus:
            weight[c] = weight.get(c, 0.0) + 1.0 / len(cpus)
    return sorted(weight, key=lambda c: (-weight[c], c))


def nearest_cpu(topology: Topology, cpu: int, allowed: set[int], load: Mapping[int, int]) -> tuple[int, str] | None:
    """The allowed CPU nearest to `cpu` (SMT sibling, the CPU itself, its L3 group) and how near, or None."""
    siblings = smt_siblings(topology, cpu)
    l3 = l3_group(topology, cpu)
    tiers = (
        (siblings, f"SMT sibling of CPU {cpu}"),
        ([cpu], f"same CPU {cpu}"),
        ([c for c in l3 if c != cpu and c not in siblings], f"same L3 as CPU {cpu} ({format_cpulist(l3)})"),
    )
    for cpus, how in tiers:
        fits = [c for c in cpus if c in allowed]
        if fits:
            return min(fits, key=lambda c: (load.get(c, 0), c)), how
    return None


def _who(threads: list[ThreadPlacement]) -> str:
    pids = sorted({t.pid for t in threads})
    name = shown(threads[0].process)
    return f"{name} (pid {', '.join(map(str, pids))})"


def pin_recommendation(device: str, threads: list[ThreadPlacement], cpus: Iterable[int], why: str) -> str:
    """A human-readable `taskset` line that pins every thread of the process onto `cpus`."""
    span = format_cpulist(sorted(set(cpus)))
    commands = "; ".join(f"taskset -a -p -c {span} {pid}" for pid in sorted({t.pid for t in threads}))
    return f"{RECOMMEND}{device}: pin {_who(threads)} to CPU {span} ({why}): {commands}"


def _threads_near_irqs(device: Device, topology: Topology, placed: Mapping[int, int]) -> list[int]:
    """Where threads belong to sit next to the device's IRQs: each IRQ CPU's SMT sibling, else the CPU."""
    cpus: set[int] = set()
    for q in queue_irqs(device):
        cpu = placed.get(q.irq)
        if cpu is not None:
            cpus.update(smt_siblings(topology, cpu) or [cpu])
    return sorted(cpus)


def _recommend_threads(plan: Plan, device: Device, topology: Topology, threads: list[ThreadPlacement],
                       placed: Mapping[int, int], why: str) -> None:  # fmt: skip
    cpus = _threads_near_irqs(device, topology, placed)
    if cpus:
        plan.notes.append(pin_recommendation(device.name, threads, cpus, why))
    else:
        plan.notes.append(f"{device.name}: its queue IRQs have no single CPU yet; no thread placement to recommend")


def _skip_reason(device: Device | None, name: str, rules: Rules, threads: list[ThreadPlacement]) -> str | None:
    if device is None or not queue_irqs(device):
        return f"{name}: no queue IRQs (virtual device?); nothing to co-locate"
    if device.name in rules.excluded_devices:
        return f"{name}: excluded, left as it is"
    if not threads:
        return f"{name}: the process to co-locate with is not running; left as it is"
    return None


def _colocate_device(plan: Plan, decided: set[str], inventory: Inventory, topology: Topology, rules: Rules,
                     device: Device, threads: list[ThreadPlacement], placed: Mapping[int, int]) -> None:  # fmt: skip
    """IRQ changes that follow the pinned threads of one device's process."""
    app = pinned_cpus(threads, topology.online, topology.housekeeping)
    if not app:
        span = format_cpulist(sorted({c for t in threads for c in t.allowed}))
        why = f"its threads may run on any of CPU {span or '?'}, so its IRQs cannot follow them"
        _recommend_threads(plan, device, topology, threads, placed, why)
        return
    allowed = own_cpus(topology, rules, device.name) or set(usable_cpus(topology, rules))
    numbers = sorted({q.queue for q in queue_irqs(device) if q.queue is not None})
    load: dict[int, int] = {}
    chosen: dict[int, tuple[int, str] | None] = {}
    managed: list[int] = []
    for q in queue_irqs(device):
        info = inventory.irqs.get(q.irq)
        if info is None or info.affinity is None or info.affinity.requested is None:
            continue
        label = f"IRQ {q.irq} ({device.name} {q.role} {q.queue})"
        if info.managed == "yes":
            plan.notes.append(f"{label}: kernel-managed, cannot follow {_who(threads)}; left as it is")
            managed.append(q.irq)
            continue
        if q.queue not in chosen:  # rx and tx IRQs of one queue go together
            chosen[q.queue] = _pick(topology, app[numbers.index(q.queue) % len(app)], allowed, load)
        pick = chosen[q.queue]
        if pick is None:
            plan.notes.append(f"{label}: no allowed CPU on the core or L3 of {_who(threads)}; left as it is")
            continue
        decided.add(f"irq/{q.irq}/affinity")
        _affinity_change(plan, device, q, info.affinity, pick, f"co-locate with {_who(threads)}", app)
    _colocation_notes(plan, device, topology, threads, placed, managed, load)


def _pick(topology: Topology, cpu: int, allowed: set[int], load: dict[int, int]) -> tuple[int, str] | None:
    """The CPU for one queue near process CPU `cpu`, counted in `load` so the next queue prefers another."""
    pick = nearest_cpu(topology, cpu, allowed, load)
    if pick is not None:
        load[pick[0]] = load.get(pick[0], 0) + 1
    return pick


def _affinity_change(plan: Plan, device: Device, q: QueueIrq, affinity: IrqAffinity, pick: tuple[int, str], why: str,
                     app: list[int]) -> None:  # fmt: skip
    cpu, how = pick
    target = format_cpulist([cpu])
    current = format_cpulist(affinity.requested)
    if target == current:
        return
    effective = format_cpulist(affinity.effective or [])
    plan.changes.append(
        Change(
            knob=f"irq/{q.irq}/affinity", current=current, target=target, device=device.name, irq=q.irq,
            reason=f"{why}: {device.name} queue {q.queue} on CPU {cpu} ({how})",
            evidence=f"requested {current}, effective {effective or '?'}; threads pinned to {format_cpulist(app)}",
        )
    )  # fmt: skip


def _colocation_notes(plan: Plan, device: Device, topology: Topology, threads: list[ThreadPlacement],
                      placed: Mapping[int, int], managed: list[int], load: Mapping[int, int]) -> None:  # fmt: skip
    """What the user may do beyond the plan: managed IRQs, crowded CPUs, a process on the far node."""
    managed_cpus = sorted({placed[i] for i in managed if i in placed})
    if managed_cpus:
        why = "kernel-managed IRQs stay where the kernel put them"
        plan.notes.append(pin_recommendation(device.name, threads, managed_cpus, why))
    queues = sum(load.values())
    if load and queues > len(load):
        plan.notes.append(
            f"{device.name}: {queues} queues on {len(load)} CPU(s) next to {_who(threads)}: consider fewer queues "
            "(ethtool -L) or spreading the process over more cores"
        )
    local = set(device.local_cpus or [])
    if local and load and not set(load) & local:
        plan.notes.append(
            f"{RECOMMEND}{device.name}: {_who(threads)} runs off the device's NUMA node "
            f"(local CPUs {format_cpulist(sorted(local))}); moving it there saves remote memory traffic"
        )


def _merged(base: Plan | None, plan: Plan, decided: set[str]) -> Plan:
    """`base` with the co-location decisions in place of its own for the same knobs."""
    if base is None:
        return plan
    kept = [c for c in base.changes if _canonical(c.knob) not in decided]
    return Plan(changes=kept + plan.changes, notes=base.notes + plan.notes, violations=list(base.violations))


def colocate_plan(inventory: Inventory, topology: Topology, rules: Rules,
                  placements: Mapping[str, list[ThreadPlacement]], base: Plan | None = None,
                  move: str = "irq") -> Plan:  # fmt: skip
    """Put each device's queue IRQs next to its process's threads (`placements`: device -> threads).

    `base` (e.g. the spread plan) is where IRQs are otherwise headed: its changes for the
    IRQs placed here are replaced, the rest kept, and `move="threads"` recommends threads
    next to its targets. The result is not checked yet.
    """
    if move not in MOVES:
        raise ValueError(f"move must be one of {', '.join(MOVES)}, got {move!r}")
    plan = Plan()
    decided: set[str] = set()
    placed = placed_cpus(inventory, base)
    for name, threads in placements.items():
        device = inventory.device(name)
        skip = _skip_reason(device, name, rules, threads)
        if skip is not None or device is None:
            plan.notes.append(skip or f"{name}: unknown device")
            continue
        if move == "threads":
            _recommend_threads(plan, device, topology, threads, placed, "the config moves threads, not IRQs")
            continue
        _colocate_device(plan, decided, inventory, topology, rules, device, threads, placed)
    return _merged(base, plan, decided)


# -- RPS / XPS ----------------------------------------------------------------------------------------------


def _queue_cpus(device: Device, roles: tuple[str, ...], irq_cpus: Mapping[int, int]) -> dict[int, tuple[int, int]]:
    """Queue number -> (IRQ, CPU) for the device's placed IRQs of these roles (first IRQ wins)."""
    out: dict[int, tuple[int, int]] = {}
    for q in queue_irqs(device, roles):
        if q.queue is not None and q.irq in irq_cpus and q.queue not in out:
            out[q.queue] = (q.irq, irq_cpus[q.irq])
    return out


def _node_cpus(device: Device, topology: Topology) -> tuple[list[int], str]:
    if device.numa_node is not None and device.numa_node in topology.nodes:
        return topology.nodes[device.numa_node], f"node {device.numa_node}"
    if device.local_cpus:
        return device.local_cpus, "local CPUs"
    return topology.online, "no NUMA locality"


def _mask_change(plan: Plan, queues: Mapping[str, str], knob: str, device: str, target: list[int], reason: str,
                 evidence: str) -> None:  # fmt: skip
    """A change of one rps-cpus/xps-cpus knob that exists (is in `queues`) and differs."""
    if knob not in queues:
        return
    current, wanted = queues[knob], format_cpulist(target)
    if current == wanted:
        return
    plan.changes.append(Change(knob=knob, current=current, target=wanted, reason=reason, device=device,
                               evidence=f"{evidence}; now {current or 'off'}"))  # fmt: skip


def _xps(plan: Plan, device: Device, topology: Topology, ok: set[int], queues: Mapping[str, str],
         tx: Mapping[int, tuple[int, int]]) -> None:  # fmt: skip
    for queue, (irq, cpu) in sorted(tx.items()):
        cpus = sorted(c for c in [cpu, *smt_siblings(topology, cpu)] if c in ok)
        knob = f"net/{device.name}/tx-{queue}/xps-cpus"
        if not cpus:
            if knob in queues:
                plan.notes.append(f"{knob}: IRQ {irq} is on CPU {cpu}, which may not be used; left as it is")
            continue
        reason = f"XPS: {device.name} tx-{queue} for the CPUs that take its IRQ (CPU {cpu}) and their SMT siblings"
        _mask_change(plan, queues, knob, device.name, cpus, reason, f"IRQ {irq} on CPU {cpu}")


def _rps(plan: Plan, device: Device, topology: Topology, ok: set[int], queues: Mapping[str, str],
         rx: Mapping[int, tuple[int, int]], busy: set[int]) -> None:  # fmt: skip
    node, where = _node_cpus(device, topology)
    local = [c for c in node if c in ok]
    on = len(rx) < len(local)
    for queue, (irq, cpu) in sorted(rx.items()):
        knob = f"net/{device.name}/rx-{queue}/rps-cpus"
        evidence = f"IRQ {irq} on CPU {cpu}; {len(rx)} rx queues, {len(local)} allowed CPUs ({where})"
        if not on:
            reason = f"RPS off: {device.name} has no fewer rx queues than allowed CPUs in {where}; RSS spreads the work"
            _mask_change(plan, queues, knob, device.name, [], reason, evidence)
            continue
        spare = [c for c in local if c not in busy]
        near = [c for c in spare if c in l3_group(topology, cpu)]
        target = near or spare
        what = f"L3 of CPU {cpu}" if near else where
        reason = (f"RPS: {device.name} rx-{queue} spread to the CPUs of the {what} that take no queue IRQ"
                  if target else f"RPS off: every allowed CPU of {where} already takes a queue IRQ")  # fmt: skip
        _mask_change(plan, queues, knob, device.name, target, reason, evidence)


def _queue_devices(queues: Mapping[str, str]) -> set[str]:
    found = set()
    for knob in queues:
        try:
            found.add(parse_knob_id(knob).device)
        except KnobError:
            continue
    return {d for d in found if d}


def steering_plan(inventory: Inventory, topology: Topology, rules: Rules, irq_cpus: Mapping[int, int],
                  queues: Mapping[str, str]) -> Plan:  # fmt: skip
    """RPS and XPS masks that match where each NIC queue's IRQ is placed (`irq_cpus`: IRQ -> CPU).

    `queues` holds the current canonical value of every rps-cpus/xps-cpus knob that exists
    (`net/DEV/rx-Q/rps-cpus` -> "0-3", "" for off); only those knobs are planned.
    """
    plan = Plan()
    base_ok = set(usable_cpus(topology, rules))
    nics = [d for d in inventory.devices if d.kind == "nic"]
    busy = {irq_cpus[q.irq] for d in nics for q in queue_irqs(d) if q.irq in irq_cpus}
    done = set()
    for device in nics:
        rx, tx = _queue_cpus(device, RX_ROLES, irq_cpus), _queue_cpus(device, TX_ROLES, irq_cpus)
        if not (rx or tx):
            continue
        done.add(device.name)
        if device.name in rules.excluded_devices:
            plan.notes.append(f"{device.name}: excluded, RPS/XPS left as they are")
            continue
        ok = base_ok | own_cpus(topology, rules, device.name)
        _xps(plan, device, topology, ok, queues, tx)
        _rps(plan, device, topology, ok, queues, rx, busy)
    for name in sorted(_queue_devices(queues) - done):
        plan.notes.append(f"{name}: no placed queue IRQs (virtual device?); RPS/XPS left as they are")
    return plan
