"""`irqtune status`: measure a short window, then assemble one plain report.

`collect` does the I/O (two snapshots `interval` apart, topology, inventory);
`build_report` turns measurements into a JSON-ready dict that both `--json` and the
text renderer use, so the two never disagree.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from .bcc import BccInfo, find_bcc
from .decide.advice import advise, supersede
from .decide.memory import advise_memory
from .findings import QUEUE_ROLES, Finding, Measurements, find_all
from .host import Host
from .measure.inventory import Inventory
from .measure.memory import MemoryState, memory_json, read_memory
from .measure.nic_ethtool import read_nic_ethtool, rss_summary
from .measure.nvme import read_nvme
from .measure.rates import Rates
from .measure.reading import read_host, refused_problems
from .measure.snapshot import SCHEMA, Snapshot, take_snapshot
from .measure.topology import Topology
from .parse.common import Problem, format_cpulist
from .probe.runner import EbpfUnavailable, ProbeResult, ProbeSession, ebpf_unavailable_reason, jsonable
from .statedir import KUBE_FILE, MODEL_FILE, read_device_models, read_kube_held


@dataclass(slots=True)
class Collected:
    host: Host
    before: Snapshot
    after: Snapshot
    rates: Rates | None
    topology: Topology
    inventory: Inventory
    findings: list[Finding]
    bcc: BccInfo
    host_info: dict
    probes: dict[str, ProbeResult] = field(default_factory=dict)
    probe_reason: str | None = None  # why the eBPF probes did not run
    models: dict[str, dict] = field(default_factory=dict)  # device -> the agent's model of it (statedir MODEL_FILE)
    nics: dict[str, dict] = field(default_factory=dict)  # NIC -> its ethtool rings and RSS, where read
    kube: dict | None = None  # the pods' exclusive CPUs the agent holds free of IRQs (statedir KUBE_FILE)
    memory: MemoryState | None = None  # the free-page reserve at the end of the window (measure/memory.py)

    @property
    def problems(self) -> list[Problem]:
        """Malformed input in the last reading, bad topology files, and paths refused under --root."""
        refused = refused_problems(self.host)
        return self.after.problems + self.topology.problems + refused


STATUS_PROBES = ["hardirq", "ipi", "tlb", "block", "timer"]


def collect(
    host: Host,
    interval: float,
    state_dir: str,
    progress: Callable[[str], None] | None = None,
    probe: bool | None = None,
) -> Collected:
    """All the I/O of `status`: two readings `interval` apart (one when 0), topology, inventory.

    `probe`: also run the hardirq, ipi, tlb, block and timer eBPF probes over the window (opt-in: compiling them
    takes seconds, so a plain `status` returns within its window); None = not asked for, False = --no-probe.
    """
    probe_reason = _probe_reason(host, interval, probe)
    session = None
    if probe_reason is None:
        try:
            session = ProbeSession(host, STATUS_PROBES)
            session.reset()
        except EbpfUnavailable as err:
            probe_reason = str(err)
    memory_before = read_memory(host) if interval > 0 else None
    try:
        if interval > 0:
            before = take_snapshot(host, with_affinity=False)  # affinity is read once, from the last reading
            if progress:
                progress(f"measuring for {interval:g} s")
            time.sleep(interval)
            reading = read_host(host, state_dir, before=before)
        else:
            reading = read_host(host, state_dir)
            before = reading.snapshot
        probes = session.read() if session else {}
    finally:
        if session:
            session.close()
    after, rates, topology, inventory = reading.snapshot, reading.rates, reading.topology, reading.inventory
    nics = read_nic_ethtool(host, [d.name for d in inventory.devices if d.kind == "nic"])
    rings = {name: entry["rings"] for name, entry in nics.items() if "rings" in entry}
    measured = Measurements(topology, inventory, rates, after.interrupts, after.netdev, irq_none_counts(probes),
                            rings)  # fmt: skip
    advice = advise(measured, probe_document(probes, interval), read_nvme(host),
                    cpu_idle=rates.idle_time if rates else None)  # fmt: skip
    findings = supersede(find_all(measured), advice)
    findings += _memory_findings(memory_before, memory := read_memory(host), rates)
    try:
        models = read_device_models(state_dir)
    except ValueError as err:
        models = {}
        reading.snapshot.problems.append(Problem(os.path.join(state_dir, MODEL_FILE), 0, str(err).split(": ", 1)[-1]))
    try:
        kube = read_kube_held(state_dir)
    except ValueError as err:
        kube = None
        reading.snapshot.problems.append(Problem(os.path.join(state_dir, KUBE_FILE), 0, str(err).split(": ", 1)[-1]))
    return Collected(
        host,
        before,
        after,
        rates,
        topology,
        inventory,
        findings,
        find_bcc(),
        _host_info(host),
        probes,
        probe_reason,
        models,
        nics,
        kube,
        memory,
    )


def _memory_findings(before: MemoryState | None, after: MemoryState, rates: Rates | None) -> list[Finding]:
    """The reserve's findings over the window; without one (no rates) only what one reading shows (near min)."""
    netdev = rates.netdev if rates else {}
    drops = sum(v.get("rx_drop", 0.0) for v in netdev.values())
    drops += sum(v.get("dropped", 0.0) for v in (rates.softnet if rates else {}).values())
    received = sum(v.get("rx_packets", 0.0) for v in netdev.values())
    seconds = rates.interval if rates else 1.0
    return advise_memory(before or after, after, seconds, drops, rx_packets_per_s=received).findings


# What root would add, for a user who ran status without it (never "run irqtune status": they just did).
NOT_ROOT_HINT = "run as root for hard-IRQ handler latency, IPI and TLB sources and block I/O latency"


# Why a plain `status` ran none where they could run: they are opt-in (bcc compiles them for seconds).
OPT_IN = "not asked for: --probe runs them over the window"


def _probe_reason(host: Host, interval: float, probe: bool | None) -> str | None:
    """Why status runs no probes over its window, or None when it tries them. Where eBPF cannot run here that
    is the reason (as non-root: what root would add), asked for or not."""
    if probe is False:
        return "--no-probe"
    if interval <= 0:
        return "no window"
    return ebpf_unavailable_reason(host, not_root_hint=NOT_ROOT_HINT) or (None if probe else OPT_IN)


def irq_none_counts(probes: dict[str, ProbeResult]) -> dict[int, tuple[int, int]] | None:
    """Per IRQ, the handler returns the hardirq probe counted over the window, (handled, IRQ_NONE): a storm
    of interrupts no handler claims (findings.check_storms). None when the probe did not run."""
    result = probes.get("hardirq")
    if result is None or result.status != "ok":
        return None
    handled = {irq: hist.count for irq, hist in result.data.get("irqs", {}).items()}
    unhandled = result.data.get("unhandled", {})
    return {irq: (handled.get(irq, 0), unhandled.get(irq, 0)) for irq in handled.keys() | unhandled.keys()}


def probe_document(probes: dict[str, ProbeResult], window: float) -> dict | None:
    """The probes' results as advice reads them: the JSON of `irqtune probe --json` (histograms as dicts)."""
    return {"probes": {n: jsonable(r) for n, r in probes.items()}, "duration": window} if probes else None


def _round(value: float) -> float:
    return round(value, 2)


def _rates_by_cpu(per_cpu: dict[int, float]) -> dict[str, float]:
    return {str(cpu): _round(rate) for cpu, rate in sorted(per_cpu.items())}


def _host_info(host: Host) -> dict:
    return {
        "hostname": host.text("proc", "sys", "kernel", "hostname") or "",
        "kernel": host.text("proc", "sys", "kernel", "osrelease") or "",
        "root": host.root,
    }


def _topology_json(t: Topology) -> dict:
    return {
        "online": t.online, "possible": t.possible, "nodes": {str(n): c for n, c in t.nodes.items()},
        "smt_groups": t.smt_groups, "l3_groups": t.l3_groups, "isolated": t.isolated,
        "nohz_full": t.nohz_full, "isolcpus": t.isolcpus, "isolcpus_flags": t.isolcpus_flags,
        "rcu_nocbs": t.rcu_nocbs, "irqaffinity": t.irqaffinity, "housekeeping": t.housekeeping, "source": t.source,
    }  # fmt: skip


def _irq_entry(c: Collected, irq: int) -> dict:
    info = c.inventory.irqs[irq]
    aff = info.affinity
    row_rate = c.rates.interrupts.get(str(irq)) if c.rates else None
    row = c.after.interrupts.rows[str(irq)] if c.after.interrupts else None
    return {
        "irq": irq,
        "rate": _round(row_rate.total) if row_rate else None,
        "per_cpu": _rates_by_cpu(row_rate.per_cpu) if row_rate else None,
        "count": row.total if row else None,
        "device": info.device,
        "kind": info.kind,
        "role": info.role,
        "queue": info.queue,
        "actions": list(info.actions),
        "chip": info.chip,
        "requested": format_cpulist(aff.requested) if aff and aff.requested is not None else None,
        "effective": format_cpulist(aff.effective) if aff and aff.effective is not None else None,
        "hint": format_cpulist(aff.hint) if aff and aff.hint else None,
        "node": aff.node if aff else None,
        "managed": info.managed,
        "managed_source": info.managed_source,
    }


def _activity(c: Collected, irq: int) -> float:
    """Interrupts/s in the window, or the count since boot when there is no window."""
    if c.rates:
        row = c.rates.interrupts.get(str(irq))
        return row.total if row else 0.0
    row = c.after.interrupts.rows.get(str(irq)) if c.after.interrupts else None
    return float(row.total or 0) if row else 0.0


def _idle_vectors(c: Collected) -> list[dict]:
    """IRQs that took no interrupt and serve no device queue (config, admin and control vectors, quiet ACPI
    lines): noise at 3 a.m., so the text folds them into one line and `--all` shows them."""
    idle = [irq for irq, info in sorted(c.inventory.irqs.items()) if info.role not in QUEUE_ROLES]
    return [_irq_entry(c, irq) for irq in idle if _activity(c, irq) == 0]


def _wall_clock(seconds: float) -> str:
    """ISO 8601 with the local UTC offset, to the second: when the window ended."""
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def _model_json(entry: dict | None) -> dict | None:
    """The agent's model of a NIC's interrupt response as it saved it (model/identify.py `Identified.to_json`), with
    its last windows; None where the agent has none (not tuned here, or another --state-dir)."""
    if not entry or not isinstance(entry.get("model"), dict):
        return None
    windows = entry.get("windows") if isinstance(entry.get("windows"), list) else []
    return {**entry["model"], "recent_windows": windows[-8:]}


def _nic_json(entry: dict | None) -> dict:
    """A NIC's ring sizes and RSS (hash function, queues its indirection table uses, the table itself)."""
    if not entry:
        return {}
    out: dict = {}
    if "rings" in entry:
        out["rings"] = dict(entry["rings"])
    if "rss" in entry:
        out["rss"] = {**rss_summary(entry["rss"]), "indir": list(entry["rss"].get("indir") or [])}
    return out


def build_report(c: Collected, top: int = 10) -> dict:
    """The status report as plain data; no I/O."""
    rates = c.rates
    irqs = sorted(c.inventory.irqs)
    activity = {irq: _activity(c, irq) for irq in irqs}
    busiest = [irq for irq in sorted(irqs, key=activity.__getitem__, reverse=True) if activity[irq] > 0][:top]
    named = {}
    if c.after.interrupts:
        for key, row in c.after.interrupts.rows.items():
            if row.irq is None:
                entry: dict = {"description": row.description, "count": row.total}
                if rates and key in rates.interrupts:
                    entry["rate"] = _round(rates.interrupts[key].total)
                    entry["per_cpu"] = _rates_by_cpu(rates.interrupts[key].per_cpu)
                named[key] = entry
    per_cpu = []
    for cpu in c.topology.online:
        entry = {"cpu": cpu}
        if rates:
            entry["device_irqs"] = _round(
                sum(r.per_cpu.get(cpu, 0.0) for k, r in rates.interrupts.items() if k.isdigit())
            )
            for key in named:
                if key in rates.interrupts and rates.interrupts[key].per_cpu:
                    entry[key] = _round(rates.interrupts[key].per_cpu.get(cpu, 0.0))
            if cpu in rates.irq_time:
                entry["irq_time"] = _round(rates.irq_time[cpu])
                entry["softirq_time"] = _round(rates.softirq_time.get(cpu, 0.0))
        per_cpu.append(entry)
    devices = []
    for device in c.inventory.devices:
        devices.append(
            {
                "name": device.name, "kind": device.kind, "driver": device.driver, "bus_id": device.bus_id,
                "numa_node": device.numa_node,
                "local_cpus": format_cpulist(device.local_cpus) if device.local_cpus is not None else None,
                "source": device.source,
                "irqs": [_irq_entry(c, q.irq) for q in device.irqs if q.irq in c.inventory.irqs],
                "model": _model_json(c.models.get(device.name)),
                **_nic_json(c.nics.get(device.name)),
            }
        )  # fmt: skip
    return {
        "schema": SCHEMA,
        "time": _wall_clock(c.after.taken_at),
        "host": c.host_info,
        "interval": _round(rates.interval) if rates else 0,
        "changes": {
            "irqs_appeared": rates.appeared,
            "irqs_vanished": rates.vanished,
            "cpus_added": rates.cpus_added,
            "cpus_removed": rates.cpus_removed,
        }
        if rates
        else None,
        "topology": _topology_json(c.topology),
        "bcc": c.bcc.to_json(),
        "interrupt_remapping": c.inventory.remapping,
        "iommus": c.inventory.iommus,
        "busiest_irqs": [_irq_entry(c, irq) for irq in busiest],
        "arch_interrupts": named,
        "per_cpu": per_cpu,
        "softirqs": {v: _rates_by_cpu(r) for v, r in rates.softirqs.items()} if rates else None,
        "softnet": {str(cpu): {k: _round(v) for k, v in s.items()} for cpu, s in rates.softnet.items()}
        if rates
        else None,
        "devices": devices,
        "kubernetes": c.kube,
        "idle_vectors": _idle_vectors(c),
        "ebpf": _ebpf_json(c, top),
        "findings": [f.to_json() for f in c.findings],
        "memory": memory_json(c.memory) if c.memory else None,
        "unavailable": c.after.unavailable,
        "problems": [p.to_json() for p in c.problems],
    }


def _ebpf_json(c: Collected, top: int) -> dict:
    """Top handler latencies and IPI/TLB sources from the probes, when they ran."""
    out: dict = {"ran": bool(c.probes), "reason": c.probe_reason, "probes": {}}
    for name, result in c.probes.items():
        out["probes"][name] = {"status": result.status, "reason": result.reason}
    hard = c.probes.get("hardirq")
    if hard and hard.status == "ok":
        irqs = sorted(hard.data["irqs"].items(), key=lambda kv: kv[1].sum_ns, reverse=True)[:top]
        actions = {i: ", ".join(info.actions) for i, info in c.inventory.irqs.items()}
        out["handler_latency"] = [{"irq": irq, "actions": actions.get(irq, ""), **hist.to_json()} for irq, hist in irqs]
    ipi = c.probes.get("ipi")
    if ipi and ipi.status == "ok":
        out["ipi_sources"] = ipi.data["sends"][:top]
    tlb = c.probes.get("tlb")
    if tlb and tlb.status == "ok":
        out["tlb_senders"] = dict(list(tlb.data["senders"].items())[:top])
        out["tlb_reasons"] = {r: v["count"] for r, v in tlb.data["reasons"].items()}
    return out
