"""What this host has, by name: devices and possible CPUs, so a typo (`--exclude eht0`, `banned = "5"` on a
2-CPU host) is refused with what exists instead of silently planning around nothing.

Device names are those the inventory gives (NICs by interface, NVMe controllers, block devices, PCI
functions and their virtio devices) and the names sysfs lists beside them (every interface of the current
network namespace, block devices, virtio devices, PCI addresses): a config may name any of them.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from ..host import Host
from ..measure.inventory import build_inventory
from ..measure.snapshot import take_snapshot
from ..measure.topology import read_topology
from ..parse.common import format_cpulist, printable
from ..parse.interrupts import InterruptTable

SHOWN_NAMES = 12  # a host with hundreds of block devices: name the closest, then a few, then a count
SYSFS_NAME_DIRS = (("class", "net"), ("class", "nvme"), ("block",), ("bus", "virtio", "devices"),
                   ("bus", "pci", "devices"))  # fmt: skip


@dataclass(frozen=True)
class KnownNames:
    devices: tuple[str, ...]  # devices with interrupts first (what plans act on), then every other name
    cpus: frozenset[int]  # possible CPUs (offline ones included: they may come online); empty = unknown


def known_names(host: Host) -> KnownNames:
    """Every device name and possible CPU of this host (of its network namespace, for interfaces)."""
    snap = take_snapshot(host, with_affinity=False)
    inventory = build_inventory(host, snap.interrupts or InterruptTable(cpus=[]), {})
    others: set[str] = set()
    for where in SYSFS_NAME_DIRS:
        others.update(host.entries(host.sys(), *where))
    for bdf in host.entries(host.sys(), "bus", "pci", "devices"):  # virtio devices whose netdev or disk has a name
        others.update(c for c in host.entries(host.sys(), "bus", "pci", "devices", bdf) if _virtio(c))
    with_irqs = sorted({d.name for d in inventory.devices if d.irqs}, key=_listing_order)
    rest = sorted(others.union(d.name for d in inventory.devices) - set(with_irqs), key=_listing_order)
    topology = read_topology(host, fallback_online=snap.cpus)
    return KnownNames((*with_irqs, *rest), frozenset(topology.possible or topology.online or snap.cpus))


def _virtio(name: str) -> bool:
    return name.startswith("virtio") and name[6:].isdigit()


def _listing_order(name: str) -> tuple[bool, str]:
    """Names people type (eth0, nvme0, vda) before PCI addresses."""
    return (name[:1].isdigit(), name)


def device_problem(name: str, devices: Sequence[str]) -> str | None:
    """None when this host has a device `name`; else one line naming it and what exists, closest first."""
    if name in devices:
        return None
    close = difflib.get_close_matches(name, devices, n=3, cutoff=0.6)
    shown = [*close, *(d for d in devices if d not in close)][:SHOWN_NAMES]
    more = f" and {len(devices) - len(shown)} more" if len(devices) > len(shown) else ""
    hint = f"did you mean {printable(close[0])}? " if close else ""
    listed = ", ".join(printable(d) for d in shown) or "none"
    return f"no device '{printable(name)}' on this host ({hint}devices here: {listed}{more})"


def cpu_problem(cpus: Iterable[int], possible: Collection[int]) -> str | None:
    """None when every CPU exists (or the host's CPUs are unknown); else one line naming the missing ones."""
    missing = sorted(set(cpus) - set(possible)) if possible else []
    if not missing:
        return None
    return f"CPU {format_cpulist(missing)} does not exist on this host (possible CPUs: {format_cpulist(possible)})"
