"""Which device and queue each IRQ serves, where the device sits, and what may be tuned.

Membership comes from sysfs first (`/sys/class/net/X/device/msi_irqs`, the PCI
function of a virtio device, `/sys/class/nvme`, `/sys/block`, every PCI function's
`msi_irqs`); the action names (`queues.classify_action`) give each IRQ's role and
queue number, and stand in for sysfs on roots that have no /sys (fixtures).

Managed IRQs (affinity chosen by the kernel, writes refused) are known from debugfs
when it is mounted, else from what the write path learned (`state.py`), else "unknown":
read-only commands never probe by writing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from ..host import Host, PathEscape
from ..parse.common import CpuListError, parse_cpulist
from ..parse.interrupts import InterruptTable
from .queues import classify_action
from .snapshot import IrqAffinity

log = logging.getLogger(__name__)


@dataclass(slots=True)
class QueueIrq:
    irq: int
    action: str
    role: str  # rx, tx, rxtx, io, admin, config, control, other
    queue: int | None


@dataclass(slots=True)
class Device:
    name: str  # eth0, vda, nvme0, virtio3, 0000:01:00.0
    kind: str  # nic, nvme, block, other
    driver: str | None = None
    bus_id: str | None = None  # PCI address
    numa_node: int | None = None
    local_cpus: list[int] | None = None
    irqs: list[QueueIrq] = field(default_factory=list)
    source: str = "sysfs"  # or "names" (inferred from action names only)


@dataclass(slots=True)
class IrqInfo:
    irq: int
    actions: tuple[str, ...]
    chip: str
    device: str | None = None
    kind: str | None = None
    role: str | None = None
    queue: int | None = None
    managed: str = "unknown"  # yes, no, unknown
    managed_source: str = ""  # debugfs, learned
    affinity: IrqAffinity | None = None


@dataclass(slots=True)
class Inventory:
    devices: list[Device] = field(default_factory=list)
    irqs: dict[int, IrqInfo] = field(default_factory=dict)
    remapping: str = "unknown"  # on, off, partial, not applicable
    iommus: list[str] = field(default_factory=list)

    def device(self, name: str) -> Device | None:
        return next((d for d in self.devices if d.name == name), None)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _pci_function(host: Host, dev_path: str) -> str | None:
    """The directory with msi_irqs for a device link: itself, or its parent (virtio)."""
    if host.exists(dev_path + "/msi_irqs") or host.exists(dev_path + "/irq"):
        return dev_path
    parent = host.resolve_parent(dev_path)
    if host.exists(parent + "/msi_irqs") or host.exists(parent + "/irq"):
        return parent
    return None


def _function_irqs(host: Host, pci: str) -> list[int]:
    irqs = [int(n) for n in host.listdir(pci + "/msi_irqs") if n.isdigit()]
    if not irqs:
        legacy = _int(host.read_or_none(pci + "/irq"))
        irqs = [legacy] if legacy else []
    return sorted(irqs)


def _describe(host: Host, name: str, kind: str, *parts: str) -> tuple[Device, list[int]] | None:
    """Device `name` whose sysfs device link is /sys/<parts>; None when absent or escaping /sys."""
    try:
        if not host.exists(os.path.join(host.sys(*parts[:-1]), parts[-1])):
            return None  # virtual: lo, ifb0, loop0, zram0
        dev_path = host.sys(*parts)
        pci = _pci_function(host, dev_path)
    except PathEscape as err:
        log.warning("skipping %s %r: %s", kind, name, err)
        return None
    if pci is None:
        return None
    device = Device(name=name, kind=kind, driver=host.basename_of_link(dev_path + "/driver"))
    device.bus_id = pci.rsplit("/", 1)[-1]
    node = _int(host.read_or_none(pci + "/numa_node"))
    device.numa_node = node if node is not None and node >= 0 else None
    local = host.read_or_none(pci + "/local_cpulist")
    try:
        device.local_cpus = parse_cpulist(local) if local else None
    except CpuListError:
        device.local_cpus = None
    return device, _function_irqs(host, pci)


def _sysfs_devices(host: Host) -> list[tuple[Device, list[int]]]:
    wanted: list[tuple[str, str, tuple[str, ...]]] = []
    wanted += [(n, "nic", ("class", "net", n, "device")) for n in host.listdir(host.sys("class", "net"))]
    wanted += [(n, "nvme", ("class", "nvme", n, "device")) for n in host.listdir(host.sys("class", "nvme"))]
    wanted += [
        (n, "block", ("block", n, "device")) for n in host.listdir(host.sys("block")) if not n.startswith("nvme")
    ]
    found = [d for d in (_describe(host, name, kind, *parts) for name, kind, parts in wanted) if d]
    claimed = {dev.bus_id for dev, _ in found}
    pci_root = host.sys("bus", "pci", "devices")
    for bdf in host.listdir(pci_root):
        if bdf in claimed or not host.listdir(os.path.join(pci_root, bdf, "msi_irqs")):
            continue
        child = next((c for c in host.listdir(os.path.join(pci_root, bdf)) if c.startswith("virtio")), None)
        parts = ("bus", "pci", "devices", bdf, child) if child else ("bus", "pci", "devices", bdf)
        described = _describe(host, child or bdf, "other", *parts)
        if described:
            found.append(described)
    return found


def managed_state(host: Host, irq: int, learned: dict[int, dict], actions: tuple[str, ...]) -> tuple[str, str]:
    text = host.read_or_none(host.sys("kernel", "debug", "irq", "irqs", irq))
    if text is not None:
        return ("yes" if "AFFINITY_MANAGED" in text else "no"), "debugfs"
    entry = learned.get(irq)
    if entry is not None and tuple(entry.get("actions", ())) == actions:
        return ("yes" if entry.get("managed") else "no"), "learned"
    return "unknown", ""


def _remapping(table: InterruptTable) -> str:
    chips = [row.chip for row in table.rows.values() if row.irq is not None and row.chip]
    x86 = [c for c in chips if any(k in c for k in ("IO-APIC", "PCI-MSI", "HPET", "DMAR"))]
    remapped = [c for c in x86 if c.startswith("IR-")]
    if not x86:
        return "not applicable"
    if not remapped:
        return "off"
    return "on" if len(remapped) == len([c for c in x86 if "DMAR" not in c]) else "partial"


def build_inventory(
    host: Host,
    table: InterruptTable,
    affinity: dict[int, IrqAffinity],
    learned: dict[int, dict] | None = None,
) -> Inventory:
    inv = Inventory(remapping=_remapping(table), iommus=host.listdir(host.sys("class", "iommu")))
    learned = learned or {}
    owner: dict[int, Device] = {}
    for device, irqs in _sysfs_devices(host):
        inv.devices.append(device)
        for irq in irqs:
            owner.setdefault(irq, device)
    by_name = {d.name: d for d in inv.devices}
    for row in table.rows.values():
        irq = row.irq
        if irq is None:
            continue
        info = IrqInfo(irq=irq, actions=row.actions, chip=row.chip, affinity=affinity.get(irq))
        info.managed, info.managed_source = managed_state(host, irq, learned, row.actions)
        named = next(filter(None, map(classify_action, row.actions)), None)
        device = owner.get(irq)
        if device is None and named is not None and named.kind:
            device = by_name.get(named.device)
            if device is None:
                device = by_name[named.device] = Device(name=named.device, kind=named.kind, source="names")
                inv.devices.append(device)
        if device is not None:
            role = named.role if named else "other"
            queue = named.queue if named else None
            device.irqs.append(QueueIrq(irq, ", ".join(row.actions), role, queue))
            info.device, info.kind, info.role, info.queue = device.name, device.kind, role, queue
        inv.irqs[irq] = info
    return inv
