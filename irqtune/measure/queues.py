"""What an IRQ action name says about its device and queue.

Drivers name their vectors by convention: `eth0-TxRx-3`, `i40e-eth0-TxRx-3`,
`mlx5_comp3@pci:0000:01:00.0`, `virtio2-input.0`, `nvme0q1`, `megasas0-msix4`. The
names are untrusted kernel strings: they are matched, never used as paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..parse.common import parse_count


@dataclass(frozen=True, slots=True)
class QueueName:
    device: str  # netdev, controller, virtio device or PCI address named in the action
    kind: str  # "nic", "nvme", "block" or "" (unknown: virtio, resolved through sysfs)
    role: str  # "rx", "tx", "rxtx", "io", "admin", "config", "control", "other"
    queue: int | None


_VIRTIO_ROLES = {
    "input": "rx", "output": "tx", "rx": "rx", "tx": "tx", "req": "io", "request": "io",
    "virtqueues": "rxtx", "config": "config", "control": "control",
}  # fmt: skip

_RULES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"(?P<dev>nvme\d+)q(?P<q>\d+)\Z"), "nvme", "io"),
    (re.compile(r"(?P<dev>virtio\d+)-(?P<role>[a-z_]+)(?:\.(?P<q>\d+))?\Z"), "", "virtio"),
    (re.compile(r"mlx5_comp(?P<q>\d+)@(?:pci:)?(?P<dev>\S+)\Z"), "nic", "rxtx"),
    (re.compile(r"mlx4-(?:comp-)?(?P<q>\d+)@(?:pci:)?(?P<dev>\S+)\Z"), "nic", "rxtx"),
    (re.compile(r"mlx[45][-_](?:async|pages|cmd)(?:_eq)?@(?:pci:)?(?P<dev>\S+)\Z"), "nic", "control"),
    (re.compile(r"(?:[a-z0-9]+-)?(?P<dev>\S+?)[-:](?:misc|fdir-TxRx-\d+)\Z"), "nic", "control"),
    (re.compile(r"(?:[a-z0-9]+-)?(?P<dev>\S+?)-(?:TxRx|txrx|Tx-Rx|rxtx|combined|fp)-(?P<q>\d+)\Z"), "nic", "rxtx"),
    (re.compile(r"(?P<dev>\S+?)-tx-\d+-rx-(?P<q>\d+)\Z"), "nic", "rxtx"),
    (re.compile(r"(?P<dev>\S+?)-(?P<role>rx|tx)-(?P<q>\d+)\Z"), "nic", "dir"),
    (re.compile(r"(?P<dev>(?:eth|en|eno|ens|enp|ib|bond)\S*?)-(?P<q>\d+)\Z"), "nic", "rxtx"),
    (re.compile(r"(?P<dev>(?:megasas|hpsa|mpt3sas|smartpqi)\d*)-msix(?P<q>\d+)\Z"), "block", "io"),
]


@lru_cache(maxsize=8192)  # every pass asks again for the same names (a 1152-CPU host: 1,000 per pass)
def classify_action(name: str) -> QueueName | None:
    """Device, role and queue number named by one IRQ action, or None when unrecognised."""
    for pattern, kind, role in _RULES:
        m = pattern.match(name)
        if not m:
            continue
        groups = m.groupdict()
        queue = parse_count(groups["q"]) if groups.get("q") is not None else None  # \d takes any script
        if role == "virtio":
            role = _VIRTIO_ROLES.get(groups["role"], "other")
        elif role == "dir":
            role = groups["role"]
        elif kind == "nvme" and queue == 0:
            role = "admin"
        return QueueName(groups["dev"], kind, role, queue)
    return None
