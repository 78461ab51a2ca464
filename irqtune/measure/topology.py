"""CPU topology and isolation: who may take interrupts.

Reads /sys/devices/system/{cpu,node} and the kernel command line. The housekeeping
set is the online CPUs minus every CPU isolated by any means (the `isolated` file,
nohz_full, isolcpus): the CPUs an interrupt may land on without disturbing an
isolated workload.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..host import Host
from ..parse.common import CpuListError, Problem, parse_count, parse_cpulist

CPU_FLAGS = ("isolcpus", "nohz_full", "rcu_nocbs", "irqaffinity")
ISOLCPUS_FLAGS = frozenset({"nohz", "domain", "managed_irq"})


@dataclass(slots=True)
class Topology:
    online: list[int] = field(default_factory=list)
    possible: list[int] = field(default_factory=list)
    nodes: dict[int, list[int]] = field(default_factory=dict)  # NUMA node -> CPUs
    smt_groups: list[list[int]] = field(default_factory=list)  # hyperthread siblings
    l3_groups: list[list[int]] = field(default_factory=list)  # CPUs sharing a last-level cache
    isolated: list[int] = field(default_factory=list)  # /sys/devices/system/cpu/isolated
    nohz_full: list[int] = field(default_factory=list)
    isolcpus: list[int] = field(default_factory=list)
    isolcpus_flags: list[str] = field(default_factory=list)
    rcu_nocbs: list[int] = field(default_factory=list)
    irqaffinity: list[int] = field(default_factory=list)  # default IRQ affinity from the cmdline
    housekeeping: list[int] = field(default_factory=list)
    source: str = "sysfs"  # or "proc headers" when /sys is absent (fixture roots)
    problems: list[Problem] = field(default_factory=list)

    @property
    def isolated_any(self) -> set[int]:
        """CPUs isolated by any means: the sysfs `isolated` list, nohz_full or isolcpus."""
        return set(self.isolated) | set(self.nohz_full) | set(self.isolcpus)

    def node_of(self, cpu: int) -> int | None:
        return next((node for node, cpus in self.nodes.items() if cpu in cpus), None)


def _cpulist(host: Host, topo: Topology, *parts: str) -> list[int] | None:
    text = host.text("sys", *parts)
    if text is None:
        return None
    try:
        return parse_cpulist(text)
    except CpuListError as err:
        topo.problems.append(Problem("/sys/" + "/".join(parts), 1, str(err)))
        return None


def _groups(host: Host, topo: Topology, cpus: list[int], *tail: str) -> list[list[int]]:
    seen: dict[tuple[int, ...], None] = {}
    for cpu in cpus:
        group = _cpulist(host, topo, "devices", "system", "cpu", f"cpu{cpu}", *tail)
        if group:
            seen[tuple(group)] = None
    return [list(g) for g in seen]


def _l3_index(host: Host, cpu: int) -> str | None:
    """The cache index directory with the highest level (index3 on x86; not always 3 elsewhere)."""
    best: tuple[int, str] | None = None
    for index in host.entries(host.sys(), "devices", "system", "cpu", f"cpu{cpu}", "cache"):
        text = host.text("sys", "devices", "system", "cpu", f"cpu{cpu}", "cache", index, "level")
        level = parse_count(text) if text and index.startswith("index") else None
        if level is not None and (best is None or level > best[0]):
            best = (level, index)
    return best[1] if best else None


def parse_cmdline(cmdline: str, topo: Topology, last: int | None = None) -> None:
    """CPU-list flags of the kernel command line; `last` (highest CPU id) resolves `N` and `all`."""
    for word in cmdline.split():
        if word == "--":
            break  # the rest belongs to init
        name, eq, value = word.partition("=")
        if not eq or name not in CPU_FLAGS:
            continue
        parts = value.split(",")
        if name == "isolcpus":
            flags = [p for p in parts if p in ISOLCPUS_FLAGS]
            topo.isolcpus_flags = flags
            value = ",".join(p for p in parts if p not in ISOLCPUS_FLAGS)
        try:
            setattr(topo, name, parse_cpulist(value, last=last))
        except CpuListError as err:
            topo.problems.append(Problem("/proc/cmdline", 1, f"{name}=: {err}"))


def topology_key(host: Host) -> tuple[str | None, ...]:
    """The files whose change means `read_topology` must read again (CPU hotplug, a cpuset isolated partition)."""
    cpu = ("devices", "system", "cpu")
    return (*(host.text("sys", *cpu, name) for name in ("online", "possible", "isolated", "nohz_full")),
            host.text("proc", "cmdline"), *host.entries(host.sys(), "devices", "system", "node"))  # fmt: skip


def read_topology(host: Host, fallback_online: list[int] | None = None) -> Topology:
    """`fallback_online` (the /proc/interrupts header) stands in when /sys is absent."""
    topo = Topology()
    online = _cpulist(host, topo, "devices", "system", "cpu", "online")
    if online is None:
        topo.source = "proc headers"
        online = list(fallback_online or [])
    topo.online = online
    topo.possible = _cpulist(host, topo, "devices", "system", "cpu", "possible") or list(online)
    for entry in host.entries(host.sys(), "devices", "system", "node"):
        node = parse_count(entry[4:]) if entry.startswith("node") else None
        if node is not None:
            cpus = _cpulist(host, topo, "devices", "system", "node", entry, "cpulist")
            if cpus is not None:
                topo.nodes[node] = cpus
    topo.smt_groups = [g for g in _groups(host, topo, online, "topology", "thread_siblings_list") if len(g) > 1]
    index = _l3_index(host, online[0]) if online else None
    if index:
        topo.l3_groups = _groups(host, topo, online, "cache", index, "shared_cpu_list")
    topo.isolated = _cpulist(host, topo, "devices", "system", "cpu", "isolated") or []
    cmdline = host.text("proc", "cmdline") or ""
    parse_cmdline(cmdline, topo, last=max(topo.possible or online or [0]))
    nohz = _cpulist(host, topo, "devices", "system", "cpu", "nohz_full")
    if nohz:
        topo.nohz_full = nohz
    isolated = topo.isolated_any
    topo.housekeeping = [cpu for cpu in online if cpu not in isolated]
    return topo
