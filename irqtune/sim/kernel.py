"""The simulated kernel's rules for writes under a simulated root.

A plain directory cannot refuse a write, but a kernel does: affinity writes to managed
IRQs fail with EIO before Linux 6.12 and EPERM since, and CPUs that are not online are
EINVAL; the device-wide NAPI sysfs files set every NAPI's value. The simulated host
records its rules in `ROOT/.irqtune-sim.json`; commands opened on such a root get a
`SimulatedKernel` host whose writes obey them, so the knob layer meets the same errors
as on a real kernel.
"""

from __future__ import annotations

import errno
import json
import os
import re
from dataclasses import dataclass, field

from ..fileio import read_regular
from ..host import Host
from ..parse.common import CpuListError, parse_cpulist

RULES_FILE = ".irqtune-sim.json"
_AFFINITY = re.compile(r"/proc/irq/(\d+)/smp_affinity(_list)?\Z")
_NAPI_SYSFS = re.compile(r"/sys/devices/.+/net/([^/]+)/(gro_flush_timeout|napi_defer_hard_irqs)\Z")


def kernel_at_least(kernel: str, major: int, minor: int) -> bool:
    parts = [int(p) for p in re.findall(r"\d+", kernel)[:2]] + [0, 0]
    return (parts[0], parts[1]) >= (major, minor)


def managed_errno(kernel: str) -> int:
    """EIO up to 6.11, EPERM from 6.12 (genirq/proc: Change the return value for set affinity permission error)."""
    return errno.EPERM if kernel_at_least(kernel, 6, 12) else errno.EIO


def rules_text(kernel: str, managed_irqs: list[int], online: list[int]) -> str:
    """The rules file's JSON (the tree writer puts it in the tree)."""
    return json.dumps({"kernel": kernel, "managed_irqs": managed_irqs, "online": online}, indent=1)


@dataclass
class SimulatedKernel(Host):
    rules: dict = field(default_factory=dict)

    @classmethod
    def for_root(cls, root: str) -> SimulatedKernel | None:
        """The simulated kernel of a root the simulator made, or None for any other root."""
        if root == "/":
            return None
        try:
            text = read_regular(os.path.join(root, RULES_FILE), "simulator rules")
        except OSError:  # none (any other root), or not a regular file: a plain host
            return None
        return cls(root, rules=json.loads(text))

    def ethtool(self):
        """The simulated driver's ethtool (each NIC's state file in the tree)."""
        from .ethtool import SimEthtool

        return SimEthtool(self)

    def netdev(self):
        """The simulated kernel's netdev family (napi-get/napi-set as of the simulated kernel version)."""
        from .netdev import SimNetdev

        return SimNetdev(self, self.rules.get("kernel", "6.18"))

    def write(self, path: str, text: str) -> None:
        shown = self.display(os.path.realpath(path))
        match = _AFFINITY.match(shown)
        if match:
            if int(match.group(1)) in self.rules.get("managed_irqs", []):
                code = managed_errno(self.rules.get("kernel", "6.18"))
                raise OSError(code, os.strerror(code), path)
            try:
                cpus = parse_cpulist(text) if match.group(2) else []
            except CpuListError:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path) from None
            if any(cpu not in self.rules.get("online", []) for cpu in cpus):
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
        super().write(path, text)
        napi = _NAPI_SYSFS.match(shown)
        if napi and text.strip().isdigit():  # since 6.13 the device-wide file sets every NAPI's value
            from .netdev import SimNetdev

            SimNetdev(self, self.rules.get("kernel", "6.18")).set_device(napi.group(1), napi.group(2), int(text))
