"""Knob ids: the stable name of everything irqtune may change, parsed into what it touches (pure, no I/O).

    irq/N/affinity              irq/default/affinity          sysctl/net.core.NAME, sysctl/vm.NAME (allow-listed)
    net/DEV/gro-flush-timeout   net/DEV/napi-defer-hard-irqs  net/DEV/threaded
    net/DEV/rx-Q/rps-cpus       net/DEV/tx-Q/xps-cpus         net/DEV/coalesce/FIELD   net/DEV/channels/KIND
    net/DEV/rings/{rx,tx,rx-jumbo,rx-mini}   net/DEV/rss/{indir,hkey}
    napi/DEV/ID/{defer-hard-irqs,gro-flush-timeout,irq-suspend-timeout,threaded}

One canonical spelling per knob (`irq/0100/affinity` is `irq/100/affinity`), so a plan, the journal and the
config's [bounds] agree on names. How each knob is read and written lives in `act/knobs.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..nl.fields import CHANNELS_SETTABLE, COALESCE_ALIASES, COALESCE_SETTABLE, RINGS_SETTABLE
from ..parse.common import brief, brief_text, parse_count

SYSCTLS: dict[str, tuple[int, int]] = {  # net.core name -> allowed range
    "netdev_budget": (1, 1 << 20),
    "netdev_budget_usecs": (1, 1 << 20),
    "netdev_max_backlog": (1, 1 << 24),
    "busy_read": (0, 1 << 20),
    "busy_poll": (0, 1 << 20),
    "dev_weight": (1, 1 << 16),
}
VM_SYSCTLS: dict[str, tuple[int, int]] = {  # vm name -> allowed range (the free-page reserve atomic allocations use)
    "min_free_kbytes": (128, 1 << 22),  # 128 kB .. 4 GiB; the kernel's own default stops at 256 MiB
    "watermark_scale_factor": (1, 1000),  # 0.01 % .. 10 % of a zone; 1000 is the ceiling before Linux 5.14
}
SYSCTL_GROUPS: dict[str, dict[str, tuple[int, int]]] = {"net.core": SYSCTLS, "vm": VM_SYSCTLS}
NETDEV_FILES: dict[str, tuple[str, int, int]] = {  # knob -> (sysfs file, min, max)
    "gro-flush-timeout": ("gro_flush_timeout", 0, (1 << 32) - 1),
    "napi-defer-hard-irqs": ("napi_defer_hard_irqs", 0, (1 << 31) - 1),
    "threaded": ("threaded", 0, 1),
}
KNOB_FORMS = (
    "irq/N/affinity",
    "irq/SELECTOR/affinity (set, plan, apply: a device or glob, e.g. eth0, eth0*, nvme0q*: every IRQ it names)",
    "irq/default/affinity",
    "sysctl/net.core.{" + ",".join(SYSCTLS) + "}",
    "sysctl/vm.{" + ",".join(VM_SYSCTLS) + "}",
    "net/DEV/{" + ",".join(NETDEV_FILES) + "}",
    "net/DEV/rx-Q/rps-cpus",
    "net/DEV/tx-Q/xps-cpus",
    "net/DEV/coalesce/{rx-usecs,rx-max-frames,tx-usecs,tx-max-frames,use-adaptive-rx,...} (ethtool -C names too)",
    "net/DEV/channels/{rx,tx,other,combined}",
    "net/DEV/rings/{rx,tx,rx-jumbo,rx-mini}",
    "net/DEV/rss/{indir,hkey}",
    "napi/DEV/ID/{defer-hard-irqs,gro-flush-timeout,irq-suspend-timeout,threaded}",
)


_DEVICE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}\Z")  # IFNAMSIZ, and never "/" or ".."


class KnobError(ValueError):
    """A knob id or value irqtune will not accept; the message is one clear line."""


def _device(name: str, knob_id: str) -> str:
    if not _DEVICE.match(name) or name in (".", ".."):
        raise KnobError(f"{brief_text(knob_id)}: {brief(name)} is not a network device name")
    return name


def _number(text: str) -> int | None:
    return parse_count(text)


_SELECTOR = re.compile(r"[A-Za-z0-9_.:@*?\[\]!-]{1,64}\Z")  # a device, queue or action name, or a glob of them


def irq_selector(knob_id: str) -> str | None:
    """The selector of `irq/SEL/affinity` when SEL is a device name or glob (eth0, eth0*, nvme0q*), not an IRQ
    number or `default`; None for every other id. Resolved to IRQs against the inventory (measure/inventory.py)."""
    parts = knob_id.split("/")
    if len(parts) != 3 or parts[0] != "irq" or parts[2] != "affinity" or parts[1] == "default":
        return None
    if _number(parts[1]) is not None or not _SELECTOR.match(parts[1]):
        return None
    return parts[1]


RSS_SETTABLE = ("indir", "hkey")  # the indirection table, the hash key (ethtool -X DEV weight/equal/hkey)
NAPI_SETTINGS = ("defer-hard-irqs", "gro-flush-timeout", "irq-suspend-timeout", "threaded")


@dataclass(frozen=True)
class KnobId:
    """A parsed knob id: one canonical spelling per knob, and what it touches (pure, no I/O)."""

    canonical: str
    kind: str  # irq-affinity, default-affinity, sysctl, netdev, queue-mask, coalesce, channels, rings, rss, napi
    device: str | None = None
    irq: int | None = None
    name: str = ""  # the sysctl (without its group) / file / attribute / setting
    group: str = ""  # a sysctl's group: net.core or vm
    number: int | None = None  # NAPI id

    @property
    def cpulist(self) -> bool:
        return self.kind in ("irq-affinity", "default-affinity", "queue-mask")

    @property
    def sysctl_range(self) -> tuple[int, int]:
        """The allowed range of a sysctl knob."""
        return SYSCTL_GROUPS[self.group][self.name]

    @property
    def sysctl_path(self) -> tuple[str, ...]:
        """Below /proc: sys/net/core/NAME or sys/vm/NAME."""
        return ("sys", *self.group.split("."), self.name)


def parse_knob_id(knob_id: str) -> KnobId:
    """Raises KnobError for ids irqtune does not know; `irq/0100/affinity/` is `irq/100/affinity`."""
    parts = knob_id.split("/")
    unknown = KnobError(f"unknown knob {brief(knob_id)}; knobs look like: {', '.join(KNOB_FORMS)}")
    if len(parts) == 3 and parts[0] == "irq" and parts[2] == "affinity":
        if parts[1] == "default":
            return KnobId("irq/default/affinity", "default-affinity")
        irq = _number(parts[1])
        if irq is not None:
            return KnobId(f"irq/{irq}/affinity", "irq-affinity", irq=irq)
    if len(parts) == 2 and parts[0] == "sysctl":
        group, _, name = parts[1].rpartition(".")
        if name in SYSCTL_GROUPS.get(group, {}):
            return KnobId(f"sysctl/{group}.{name}", "sysctl", name=name, group=group)
    if len(parts) == 3 and parts[0] == "net" and parts[2] in NETDEV_FILES:
        dev = _device(parts[1], knob_id)
        return KnobId(f"net/{dev}/{parts[2]}", "netdev", device=dev, name=parts[2])
    if len(parts) == 4 and parts[0] == "net":
        dev = _device(parts[1], knob_id)
        queue = re.fullmatch(r"(rx|tx)-([0-9]+)", parts[2])
        if queue and parts[3] == ("rps-cpus" if queue.group(1) == "rx" else "xps-cpus"):
            return KnobId(f"net/{dev}/{queue.group(1)}-{int(queue.group(2))}/{parts[3]}", "queue-mask", device=dev,
                          name=f"{queue.group(1)}-{int(queue.group(2))}")  # fmt: skip
        field_name = parts[3].replace("-", "_")
        if parts[2] == "coalesce":
            field_name = COALESCE_ALIASES.get(field_name, field_name)  # ethtool's rx-frames is rx-max-frames
        if parts[2] == "coalesce" and field_name in COALESCE_SETTABLE:
            return KnobId(f"net/{dev}/coalesce/{field_name.replace('_', '-')}", "coalesce", device=dev, name=field_name)
        if parts[2] == "channels" and f"{field_name}_count" in CHANNELS_SETTABLE:
            return KnobId(f"net/{dev}/channels/{field_name}", "channels", device=dev, name=f"{field_name}_count")
        if parts[2] == "rss" and parts[3] in RSS_SETTABLE:
            return KnobId(f"net/{dev}/rss/{parts[3]}", "rss", device=dev, name=parts[3])
        if parts[2] == "rings" and field_name in RINGS_SETTABLE:
            return KnobId(f"net/{dev}/rings/{parts[3].replace('_', '-')}", "rings", device=dev, name=field_name)
    if len(parts) == 4 and parts[0] == "napi" and parts[3] in NAPI_SETTINGS:
        dev, napi = _device(parts[1], knob_id), _number(parts[2])
        if napi is not None:
            return KnobId(f"napi/{dev}/{napi}/{parts[3]}", "napi", device=dev, name=parts[3], number=napi)
    raise unknown
