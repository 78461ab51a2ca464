"""Which device and queue each IRQ serves, where the device sits, and what may be tuned.

Membership comes from sysfs first (`/sys/class/net/X/device/msi_irqs`, the PCI
function of a virtio device, `/sys/class/nvme`, `/sys/block`, every PCI function's
`msi_irqs`); the action names (`queues.classify_action`) give each IRQ's role and
queue number, and stand in for sysfs on roots that have no /sys (fixtures).

Managed IRQs (affinity chosen by the kernel, writes refused) are known from debugfs
when it is mounted, else from what the write path learned (`statedir.py`), else "unknown":
read-only commands never probe by writing.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass, field, replace

from ..host import Host, PathEscape
from ..parse.common import CpuListError, parse_count, parse_cpulist, parse_signed
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
    return parse_signed(text) if text is not None else None


_MAX_HOPS = 8  # block devices sit a few levels below their HBA: sda -> target -> host -> PCI function


def _irq_function(host: Host, dev_path: str) -> str | None:
    """The nearest directory at or above a device that lists its IRQs (msi_irqs, or a legacy irq).

    A NIC's device is its PCI function; virtio devices hang one level below theirs; SCSI
    disks several levels below the HBA's. The walk stays inside /sys.
    """
    path = dev_path
    for _ in range(_MAX_HOPS):
        if host.has(path, "msi_irqs") or host.has(path, "irq"):
            return path
        try:
            path = host.parent(path)
        except PathEscape:
            return None
        if path == host.sys() or path == host.sys("devices"):
            return None
    return None


def _function_irqs(host: Host, function: str) -> list[int]:
    irqs = [irq for irq in map(parse_count, host.entries(function, "msi_irqs")) if irq is not None]
    if not irqs:
        legacy = parse_count(host.text_under(function, "irq") or "")  # a PCI function's INTx line: never negative
        irqs = [legacy] if legacy else []
    return sorted(irqs)


def _describe(host: Host, name: str, kind: str, base: str, *parts: str) -> tuple[Device, list[int]] | None:
    """Device `name` whose device link is <base>/<parts>; None when absent (virtual) or refused."""
    if not host.has(base, *parts):
        return None  # virtual: lo, ifb0, loop0, zram0
    try:
        dev_path = host.under(base, *parts)
    except PathEscape as err:
        host.refused.append(str(err))
        log.warning("skipping %s %r: %s", kind, name, err)
        return None
    function = _irq_function(host, dev_path)
    if function is None:
        return None
    device = Device(name=name, kind=kind, driver=host.link_name(dev_path, "driver"))
    device.bus_id = os.path.basename(function)
    node = _int(host.text_under(function, "numa_node"))
    device.numa_node = node if node is not None and node >= 0 else None
    local = host.text_under(function, "local_cpulist")
    try:
        device.local_cpus = parse_cpulist(local) if local else None
    except CpuListError:
        device.local_cpus = None
    return device, _function_irqs(host, function)


_DEVICE_DIRS = (("class", "net"), ("class", "nvme"), ("block",), ("bus", "pci", "devices"))


def sysfs_devices_key(host: Host, table: InterruptTable) -> tuple:
    """What `sysfs_devices` depends on, cheaply: the device directories it walks and the numbered IRQs with their
    actions (a driver that re-requests its vectors, a device that comes or goes, changes it)."""
    irqs = tuple((row.irq, row.actions) for row in table.rows.values() if row.irq is not None)
    return (*(tuple(host.entries(host.sys(), *where)) for where in _DEVICE_DIRS), irqs)


def sysfs_devices(host: Host) -> list[tuple[Device, list[int]]]:
    """Each device sysfs knows of, with the IRQs its function lists (msi_irqs, or a legacy irq)."""
    root = host.sys()
    wanted: list[tuple[str, str, str, tuple[str, ...]]] = []
    for kind, where in (("nic", ("class", "net")), ("nvme", ("class", "nvme")), ("block", ("block",))):
        for name in host.entries(root, *where):
            if not (kind == "block" and name.startswith("nvme")):  # NVMe namespaces: their controller has the IRQs
                wanted.append((name, kind, root, (*where, name, "device")))
    found = [d for d in (_describe(host, name, kind, base, *parts) for name, kind, base, parts in wanted) if d]
    claimed = {dev.bus_id for dev, _ in found}
    for bdf in host.entries(root, "bus", "pci", "devices"):
        if bdf in claimed or not host.entries(root, "bus", "pci", "devices", bdf, "msi_irqs"):
            continue
        children = host.entries(root, "bus", "pci", "devices", bdf)
        child = next((c for c in children if c.startswith("virtio") and c[6:].isdigit()), None)
        parts = ("bus", "pci", "devices", bdf, child) if child else ("bus", "pci", "devices", bdf)
        described = _describe(host, child or bdf, "other", root, *parts)
        if described:
            found.append(described)
    return found


def managed_state(host: Host | None, irq: int, learned: dict[int, dict], actions: tuple[str, ...],
                  debugfs: bool = True) -> tuple[str, str]:  # fmt: skip
    """`debugfs` False: the caller found no /sys/kernel/debug/irq/irqs (not mounted), so no IRQ's file is tried."""
    text = host.text("sys", "kernel", "debug", "irq", "irqs", irq) if debugfs else None
    if text is not None:
        return ("yes" if "AFFINITY_MANAGED" in text else "no"), "debugfs"
    entry = learned.get(irq)
    if entry is not None and tuple(entry["actions"]) == actions:
        return ("yes" if entry.get("managed") else "no"), "learned"
    return "unknown", ""


_X86_CHIPS = ("IO-APIC", "PCI-MSI", "HPET")
_IOMMU_ACTIONS = ("AMD-Vi", "dmar")  # the IOMMU's own vectors are never remapped


def _remapping(table: InterruptTable) -> str:
    chips = [
        row.chip
        for row in table.rows.values()
        if row.irq is not None and row.chip and not any(a.startswith(_IOMMU_ACTIONS) for a in row.actions)
    ]
    x86 = [c for c in chips if any(k in c for k in _X86_CHIPS)]
    if not x86:
        return "not applicable"
    remapped = sum(c.startswith("IR-") for c in x86)
    return "off" if not remapped else "on" if remapped == len(x86) else "partial"


def _owner(candidates: list[Device], actions: tuple[str, ...]) -> Device | None:
    """Several netdevs can share one PCI function (mlx4 ports): prefer the one the action names."""
    for device in candidates:
        if any(device.name in action for action in actions):
            return device
    return candidates[0] if candidates else None


def build_inventory(
    host: Host | None,
    table: InterruptTable,
    affinity: dict[int, IrqAffinity],
    learned: dict[int, dict] | None = None,
    sysfs: list[tuple[Device, list[int]]] | None = None,
) -> Inventory:
    """`sysfs`: what `sysfs_devices` found in an earlier reading with the same `sysfs_devices_key` (the agent
    keeps it between passes); its devices are copied, not changed. `host` None: from saved snapshots alone
    (`irqtune diff`), devices known by their action names only."""
    iommus = host.entries(host.sys(), "class", "iommu") if host else []
    inv = Inventory(remapping=_remapping(table), iommus=iommus)
    learned = learned or {}
    owners: dict[int, list[Device]] = {}
    debugfs = host is not None and host.has(host.sys(), "kernel", "debug", "irq", "irqs")
    if sysfs is None:
        sysfs = sysfs_devices(host) if host else []
    for found, irqs in sysfs:
        device = replace(found, irqs=[])
        inv.devices.append(device)
        for irq in irqs:
            owners.setdefault(irq, []).append(device)
    by_name = {d.name: d for d in inv.devices}
    for row in table.rows.values():
        irq = row.irq
        if irq is None:
            continue
        info = IrqInfo(irq=irq, actions=row.actions, chip=row.chip, affinity=affinity.get(irq))
        info.managed, info.managed_source = managed_state(host, irq, learned, row.actions, debugfs)
        named = next(filter(None, map(classify_action, row.actions)), None)
        device = _owner(owners.get(irq, []), row.actions)
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


def irq_names(info: IrqInfo) -> tuple[str, ...]:
    """The names a selector may match for one IRQ: its action names, its device, and DEVICE-ROLE-QUEUE."""
    names = list(info.actions)
    if info.device:
        names.append(info.device)
        if info.queue is not None and info.role:
            names.append(f"{info.device}-{info.role}-{info.queue}")
    return tuple(dict.fromkeys(names))


def select_irqs(inventory: Inventory, pattern: str) -> dict[int, str]:
    """IRQ -> the first of its names that the glob `pattern` matches (case-sensitive, as interface names are)."""
    out = {}
    for irq in sorted(inventory.irqs):
        hit = next((n for n in irq_names(inventory.irqs[irq]) if fnmatch.fnmatchcase(n, pattern)), None)
        if hit is not None:
            out[irq] = hit
    return out


def selectable_names(inventory: Inventory) -> list[str]:
    """Every name a selector could match on this host: devices first, then action names."""
    devices = sorted({i.device for i in inventory.irqs.values() if i.device})
    actions = sorted({a for i in inventory.irqs.values() for a in i.actions} - set(devices))
    return [*devices, *actions]
