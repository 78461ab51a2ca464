"""One look at the host: the snapshot, the rates since the last one, topology, inventory and what irqtune
learned (managed IRQs), taken once per pass or command and handed to everything that reports or decides.

Reading /proc once per pass keeps the numbers consistent (every finding, proposal and check sees the same
counts) and the agent cheap; decide/ takes a Reading and does no I/O of its own.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from ..host import Host
from ..parse.common import CpuListError, Problem, format_cpulist, parse_cpumask
from ..parse.interrupts import InterruptTable
from ..statedir import boot_id, load_learned_managed
from .inventory import Device, Inventory, build_inventory, sysfs_devices, sysfs_devices_key
from .rates import Rates, compute_rates
from .snapshot import IrqStatics, Snapshot, take_snapshot
from .tasks import ThreadPlacement, find_process_threads
from .topology import Topology, read_topology, topology_key

log = logging.getLogger(__name__)


@dataclass
class Reading:
    snapshot: Snapshot
    topology: Topology
    inventory: Inventory
    rates: Rates | None = None  # None on the first reading: nothing to compare with
    learned: dict[int, dict] = field(default_factory=dict)  # IRQ -> what a refused write taught (this boot)

    @property
    def interrupts(self) -> InterruptTable:
        return self.snapshot.interrupts or InterruptTable(cpus=[])


@dataclass
class ReadCache:
    """What does not change from one pass to the next unless a CPU or a device comes or goes: the topology (per-CPU
    sysfs files, keyed by the CPU lists and the command line) and which sysfs device owns which IRQs (keyed by the
    device directories and the IRQ rows' actions). The agent keeps one; each reading checks the keys (a few small
    reads) and reads again what changed."""

    topology_key: tuple = ()
    topology: Topology | None = None
    devices_key: tuple = ()
    devices: list[tuple[Device, list[int]]] | None = None
    statics: IrqStatics = field(default_factory=IrqStatics)  # each IRQ's node and hint (measure/snapshot.py)

    def topology_for(self, host: Host, online: list[int]) -> Topology:
        key = (*topology_key(host), tuple(online))
        if self.topology is None or key != self.topology_key:
            self.topology, self.topology_key = read_topology(host, fallback_online=online), key
        return self.topology

    def devices_for(self, host: Host, table: InterruptTable) -> list[tuple[Device, list[int]]]:
        key = sysfs_devices_key(host, table)
        if self.devices is None or key != self.devices_key:
            self.devices, self.devices_key = sysfs_devices(host), key
        return self.devices


def read_host(host: Host, state_dir: str | None = None, before: Snapshot | None = None, with_affinity: bool = True,
              monotonic: float | None = None, cache: ReadCache | None = None) -> Reading:  # fmt: skip
    """Read everything once. `before`: the previous reading's snapshot, for rates; `monotonic`: the caller's
    clock (the agent's is injected, so a simulated host keeps simulated time); `cache`: what an earlier reading
    found that cannot have changed (the agent's, between passes)."""
    snap = take_snapshot(host, with_affinity=with_affinity, statics=cache.statics if cache else None, previous=before)
    if monotonic is not None:
        snap.monotonic = monotonic
    rates = compute_rates(before, snap) if before is not None and snap.monotonic > before.monotonic else None
    table = snap.interrupts or InterruptTable(cpus=[])
    if cache is None:
        topology, sysfs = read_topology(host, fallback_online=snap.cpus), None
    else:
        topology, sysfs = cache.topology_for(host, snap.cpus), cache.devices_for(host, table)
    learned = load_learned_managed(state_dir, boot_id(host)) if state_dir else {}
    inventory = build_inventory(host, table, snap.affinity, learned, sysfs)
    return Reading(snap, topology, inventory, rates, learned)


def input_problems(reading: Reading, host: Host) -> list[Problem]:
    """What `status` names as malformed in this reading (FILE:LINE: what), bad topology files, and paths
    refused under the root: every command that reads the host reports them alike (exit 3)."""
    return [*reading.snapshot.problems, *reading.topology.problems, *refused_problems(host)]


def refused_problems(host: Host) -> list[Problem]:
    """The paths the host refused (a link out of the root, a bad component) as problems of that path: FILE:1: why,
    as a whole-file problem is named (line 1), so every message reads FILE:LINE: what."""
    out = []
    for message in host.refused:
        found = _REFUSED.match(message)
        out.append(Problem(found[1], 1, f"refused: {found[2]}") if found else Problem(host.root, 1, message))
    return out


_REFUSED = re.compile(r"\Arefused (/\S*): (.+)\Z", re.S)


def read_threads(host: Host, colocate: dict[str, tuple[str, str]]) -> dict[str, tuple[list[ThreadPlacement], str]]:
    """For co-location: device -> (the configured process's threads, "irq" or "threads")."""
    return {device: (find_process_threads(host, name), how) for device, (name, how) in colocate.items()}


def read_queue_masks(host: Host, devices: frozenset[str]) -> dict[str, str]:
    """For steering: the RPS/XPS mask of every queue of these devices, as knob id -> CPU list ("" for none).
    A queue whose mask cannot be read (no XPS map without multiqueue TX, a vanished queue) is left out."""
    out = {}
    for device in sorted(devices):
        for queue in host.entries(host.sys(), "class", "net", device, "queues"):
            kind = "rps" if queue.startswith("rx-") else "xps" if queue.startswith("tx-") else None
            text = host.text("sys", "class", "net", device, "queues", queue, f"{kind}_cpus") if kind else None
            if text is None:
                continue
            try:
                out[f"net/{device}/{queue}/{kind}-cpus"] = format_cpulist(parse_cpumask(text.strip()))
            except CpuListError as err:  # not a mask: that queue's steering is not planned
                log.debug("%s/%s %s_cpus: %s", device, queue, kind, err)
    return out
