"""Plain, aligned text for people; colour only when asked or on a terminal."""

from __future__ import annotations

from .findings import SEVERITY_ORDER
from .parse.common import brief_text, format_cpulist, printable
from .table import Style, table

SEVERITY_COLOURS = {"critical": "31;1", "warning": "33", "info": "36"}
MAX_CPU_ROWS = 64


def _spread(per_cpu: dict[str, float] | None, limit: int = 4) -> str:
    if not per_cpu:
        return "-"
    busy = sorted(((r, c) for c, r in per_cpu.items() if r > 0), reverse=True)
    text = " ".join(f"{c}:{r:,.0f}" for r, c in busy[:limit])
    return text + (f" +{len(busy) - limit}" if len(busy) > limit else "") if busy else "idle"


def _queue(entry: dict) -> str:
    role, queue = entry.get("role"), entry.get("queue")
    if not role:
        return "-"
    return f"{role} {queue}" if queue is not None else role


def render_status(report: dict, style: Style, show_all: bool = False) -> str:
    """Header, then what needs attention (findings and advice, most severe first), then the tables."""
    out = _header(report, style)
    out += _section(style, "FINDINGS", _findings(report, style))
    out += _section(style, "BUSIEST IRQS", _busiest(report))
    out += _section(style, "PER CPU (events/s)", _per_cpu(report))
    out += _section(style, "SOFTIRQS (/s)", _softirqs(report))
    out += _section(style, "SOFTNET (/s)", _softnet(report))
    out += _section(style, "DEVICES", _devices(report, show_all))
    nics = _nics(report)
    if nics:  # only where a driver reports rings or RSS (not on a fake tree, veth or lo)
        out += _section(style, "NIC RINGS AND RSS", nics)
    models = _models(report)
    if models:
        out += _section(style, "AGENT'S MODEL OF EACH NIC (interrupt response, fitted to its windows)", models)
    held = _kubernetes(report)
    if held:
        out += _section(style, "KUBERNETES: PODS' EXCLUSIVE CPUS HELD FREE OF DEVICE IRQS (the agent's)", held)
    out += _section(style, "HANDLER LATENCY (eBPF)", _handler_latency(report))
    out += _section(style, "IPI AND TLB SOURCES (eBPF)", _ipi_tlb(report))
    changes = report.get("changes") or {}
    moved = [f"{name.replace('_', ' ')}: {', '.join(map(str, items))}" for name, items in changes.items() if items]
    if moved:
        out += _section(style, "CHANGED DURING THE WINDOW", moved)
    if report["unavailable"]:
        out += _section(style, "UNAVAILABLE", [f"{path}: {why}" for path, why in report["unavailable"].items()])
    return "\n".join(out) + "\n"


def _header(report: dict, style: Style) -> list[str]:
    host = report["host"]
    window = f"window {report['interval']:.2f} s" if report["interval"] else "counts since boot (no window)"
    when = f"  {report['time']}" if report.get("time") else ""
    title = f"irqtune status  {printable(host['hostname'])}  kernel {printable(host['kernel'])}{when}  {window}"
    return [style.heading(title), *_summary(report, report["topology"])]


def _findings(report: dict, style: Style) -> list[str]:
    """One line per finding, most severe first; the numbers are in the messages."""
    ordered = sorted(report["findings"], key=lambda f: SEVERITY_ORDER.get(f["severity"], len(SEVERITY_ORDER)))
    lines = [
        f"{style.paint(f['severity'].ljust(8), SEVERITY_COLOURS.get(f['severity'], ''))}  {printable(f['message'])}"
        for f in ordered
    ]
    return lines or ["none"]


def _probes_ran(ebpf: dict) -> str:
    """The eBPF probes that really ran over the window, and why the others did not."""
    probes = ebpf.get("probes") or {}
    ran = [name for name, p in probes.items() if p["status"] == "ok"]
    failed = [f"{name}: {p['status']}: {p['reason']}" for name, p in probes.items() if p["status"] != "ok"]
    if not ran:
        return f"none ({'; '.join(failed) or ebpf.get('reason') or 'not run'})"
    return ", ".join(ran) + (f" ({'; '.join(failed)})" if failed else "")


def _section(style: Style, title: str, lines: list[str]) -> list[str]:
    return ["", style.heading(title), *lines] if lines else []


def _summary(report: dict, topo: dict) -> list[str]:
    nodes = len(topo["nodes"]) or 1
    smt = f"{len(topo['smt_groups'])} SMT groups" if topo["smt_groups"] else "no SMT"
    l3 = "; ".join(format_cpulist(g) for g in topo["l3_groups"]) or "-"
    iso_parts = [
        f"{name} {format_cpulist(topo[key])}"
        for name, key in (("isolated", "isolated"), ("nohz_full", "nohz_full"), ("isolcpus", "isolcpus"),
                          ("rcu_nocbs", "rcu_nocbs"))
        if topo[key]
    ]  # fmt: skip
    bcc = report["bcc"]
    return [
        f"CPUs        {len(topo['online'])} online ({format_cpulist(topo['online'])}) of {len(topo['possible'])}"
        f" possible; {nodes} NUMA node{'s' if nodes > 1 else ''}; {smt}; L3 groups {l3}",
        f"isolation   {', '.join(iso_parts) or 'none'}; housekeeping {format_cpulist(topo['housekeeping']) or '-'}",
        f"eBPF (bcc)  {'available' if bcc['available'] else 'unavailable'}: {printable(bcc['reason'])}",
        f"probes      {printable(_probes_ran(report.get('ebpf') or {}))}",
        f"remapping   interrupt remapping {report['interrupt_remapping']}",
    ]


def _busiest(report: dict) -> list[str]:
    rows = [
        (e["irq"], e["rate"] if e["rate"] is not None else e["count"], e["device"], _queue(e),
         ", ".join(e["actions"]) or "-", _spread(e["per_cpu"]), e["requested"], e["effective"], e["managed"])
        for e in report["busiest_irqs"]
    ]  # fmt: skip
    rate = "RATE/s" if report["interval"] else "COUNT"
    header = ("IRQ", rate, "DEVICE", "QUEUE", "ACTIONS", "PER-CPU/s", "AFFINITY", "EFFECTIVE", "MANAGED")
    return table(header, rows) if rows else ["no interrupts in the window"]


def _per_cpu(report: dict) -> list[str]:
    entries = report["per_cpu"]
    if not entries or "device_irqs" not in entries[0]:
        return []
    keys = [k for k in ("LOC", "RES", "CAL", "TLB") if k in entries[0]]
    if not keys:
        keys = sorted(k for k in entries[0] if k.startswith("IPI"))
    active = [e for e in entries if e["device_irqs"] or any(e.get(k) for k in keys)]
    shown = active[:MAX_CPU_ROWS]
    rows = [
        (e["cpu"], e["device_irqs"], *(e.get(k) for k in keys), _percent(e.get("irq_time")),
         _percent(e.get("softirq_time")))
        for e in shown
    ]  # fmt: skip
    lines = table(("CPU", "DEV-IRQ", *keys, "%IRQ", "%SOFTIRQ"), rows)
    hidden = len(entries) - len(shown)
    return lines + ([f"({hidden} idle or hidden CPUs not shown; --json has all)"] if hidden else [])


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.1f}"


def _softirqs(report: dict) -> list[str]:
    softirqs = report["softirqs"]
    if not softirqs:
        return []
    rows = []
    for vector, per_cpu in softirqs.items():
        total = sum(per_cpu.values())
        top_cpu, top = max(per_cpu.items(), key=lambda kv: kv[1], default=("-", 0.0))
        rows.append((vector, total, f"{top_cpu}:{top:,.0f}" if top else "-"))
    return table(("VECTOR", "TOTAL/s", "BUSIEST-CPU"), rows)


def _softnet(report: dict) -> list[str]:
    softnet = report["softnet"]
    if not softnet:
        return []
    rows = [
        (int(cpu), s.get("processed"), s.get("dropped"), s.get("time_squeeze"), s.get("received_rps"))
        for cpu, s in softnet.items()
    ]
    return table(("CPU", "PROCESSED", "DROPPED", "SQUEEZED", "RPS-RECEIVED"), rows)


def _device_row(d: dict, e: dict) -> tuple:
    return (d["name"], d["kind"], d["driver"], d["numa_node"], d["local_cpus"], e.get("irq"), _queue(e),
            ", ".join(e.get("actions", [])) or "-", e.get("requested"), e.get("effective"), e.get("managed"),
            e.get("rate"))  # fmt: skip


NO_DEVICE = {"name": "-", "kind": "-", "driver": None, "numa_node": None, "local_cpus": None}


def _devices(report: dict, show_all: bool = False) -> list[str]:
    """Every device with its queue IRQs; idle config/admin vectors folded into one line unless `show_all`."""
    idle = report.get("idle_vectors") or []
    folded = set() if show_all else {e["irq"] for e in idle}
    rows = []
    for d in report["devices"]:
        shown = [e for e in d["irqs"] if e["irq"] not in folded]
        if shown or not d["irqs"]:
            rows += [_device_row(d, e) for e in shown or [{}]]
    if show_all:  # idle IRQs of no device (quiet ACPI or serial lines) appear nowhere else
        rows += [_device_row(NO_DEVICE, e) for e in idle if e["device"] is None]
    header = ("DEVICE", "KIND", "DRIVER", "NODE", "LOCAL-CPUS", "IRQ", "QUEUE", "ACTIONS", "AFFINITY", "EFFECTIVE",
              "MANAGED", "RATE/s")  # fmt: skip
    lines = table(header, rows) if rows else ["no devices found"]
    return lines + ([] if show_all else _folded_line(idle))


def _nics(report: dict) -> list[str]:
    """One line per NIC whose driver reports rings or RSS: sizes in force of the maximum, RSS hash and queues."""
    lines = []
    for d in report["devices"]:
        rings, rss = d.get("rings") or {}, d.get("rss") or {}
        parts = [f"{kind} ring {rings[kind]}/{rings[f'{kind}_max']}" for kind in ("rx", "tx")
                 if kind in rings and f"{kind}_max" in rings]  # fmt: skip
        if rss.get("table_size"):
            parts.append(f"RSS {rss.get('hfunc') or 'hash ?'} over queues {format_cpulist(rss['queues'])} "
                         f"({rss['table_size']} entries)")  # fmt: skip
        elif rss.get("hfunc"):
            parts.append(f"RSS {rss['hfunc']} (no indirection table reported)")
        if parts:
            lines.append(f"{d['name']}: " + ", ".join(parts))
    return lines


def _models(report: dict) -> list[str]:
    """One line per NIC the agent has a model of (saved in the state directory): what it predicts with."""
    rows = []
    for d in report["devices"]:
        m = d.get("model")
        if not m:
            continue
        floor = f"{m.get('floor_us', 0):.0f} µs" if m.get("floor_us") else "none"
        predicted = f"{m['prediction_error']:.0%} of {m.get('predictions')}" if "prediction_error" in m else "-"
        rows.append((d["name"], m.get("flavour"), m.get("prior"), f"{m.get('timer_scale', 1.0):.2f}", floor,
                     m.get("windows"), f"{m.get('error', 0.0):.0%}", predicted))  # fmt: skip
    header = (
        "DEVICE",
        "FLAVOUR",
        "DRIVER'S",
        "µs PER RX-USECS",
        "INTERRUPT FLOOR",
        "WINDOWS",
        "FIT ERROR",
        "PREDICTION ERROR",
    )
    return table(header, rows) if rows else []


def _kubernetes(report: dict) -> list[str]:
    """One line per opted-in container whose exclusive CPUs the agent keeps device IRQs off (statedir KUBE_FILE);
    nothing where the agent watches no kubelet. The names were made printable when saved."""
    held = report.get("kubernetes")
    if not held:
        return []
    rows = [tuple(brief_text(str(c.get(k))) for k in ("cpus", "pod", "container")) for c in held.get("containers", [])
            if isinstance(c, dict)]  # fmt: skip
    return table(("CPUS", "POD", "CONTAINER"), rows) if rows else ["none: no opted-in pod holds exclusive CPUs"]


def _folded_line(idle: list[dict]) -> list[str]:
    """One line for what the DEVICES table left out: counted, and how to see it."""
    owned = sum(1 for e in idle if e["device"] is not None)
    parts = [f"{owned} idle config/admin vectors"] if owned else []
    parts += [f"{len(idle) - owned} idle IRQs of no known device"] if len(idle) > owned else []
    return [f"{' and '.join(parts)} not shown; --all shows them"] if parts else []


def _handler_latency(report: dict) -> list[str]:
    entries = (report.get("ebpf") or {}).get("handler_latency")
    if not entries:
        return []
    rows = [
        (e["irq"], e["actions"] or "-", e["count"], e["mean_seconds"] * 1e6, e["max_seconds"] * 1e6,
         e["sum_seconds"] * 1e6)
        for e in entries
    ]  # fmt: skip
    return table(("IRQ", "ACTIONS", "COUNT", "MEAN-us", "MAX-us", "TOTAL-us"), rows)


def _ipi_tlb(report: dict) -> list[str]:
    ebpf = report.get("ebpf") or {}
    lines: list[str] = []
    sources = ebpf.get("ipi_sources")
    if sources:
        rows = [(s["callsite"], s["callback"], s["targets"]) for s in sources[:5]]
        lines += table(("IPI CALLSITE", "CALLBACK", "TARGETS"), rows)
    if ebpf.get("tlb_reasons"):
        lines.append("TLB flushes: " + ", ".join(f"{k} {v}" for k, v in ebpf["tlb_reasons"].items()))
    if ebpf.get("tlb_senders"):
        lines.append("shootdown senders: " + ", ".join(f"{k} {v}" for k, v in ebpf["tlb_senders"].items()))
    return lines


def render_diff(report: dict, style: Style, top: int = 10) -> str:
    """`irqtune diff`: the status layout over the gap between two saved snapshots, then what changed."""
    a, b = report["a"], report["b"]
    host = printable(b["hostname"] or a["hostname"] or b["root"] or "-")
    title = f"irqtune diff  {host}  {a['taken_at']} -> {b['taken_at']}  gap {report['interval']:.2f} s"
    out = [
        style.heading(title),
        f"files       {printable(a['file'])} -> {printable(b['file'])} ({report['clock']} clock)",
    ]
    busy = [e for e in report["irqs"] if e["rate"]][:top]
    out += _section(style, "FINDINGS", _findings(report, style))
    out += _section(style, "BUSIEST IRQS", _busiest({"busiest_irqs": busy, "interval": report["interval"]}))
    out += _section(style, "PER CPU (events/s)", _per_cpu(report))
    out += _section(style, "SOFTIRQS (/s)", _softirqs(report))
    out += _section(style, "SOFTNET (/s)", _softnet(report))
    moves = [(e["irq"], *e.get("requested", ("-", "-")), *e.get("effective", ("-", "-")))
             for e in report["affinity_changes"]]  # fmt: skip
    header = ("IRQ", "AFFINITY-A", "AFFINITY-B", "EFFECTIVE-A", "EFFECTIVE-B")
    out += _section(style, "AFFINITY CHANGES", table(header, moves) if moves else [])
    changes = report["changes"]
    moved = [f"{name.replace('_', ' ')}: {printable(', '.join(map(str, items)))}"
             for name, items in changes.items() if items]  # fmt: skip
    out += _section(style, "CHANGED BETWEEN THE SNAPSHOTS", moved)
    return "\n".join(out) + "\n"
