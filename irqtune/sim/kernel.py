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

from .. import jsonfile
from ..fileio import read_regular
from ..host import Host, PathEscape
from ..parse.common import MAX_COUNT, CpuListError, brief, brief_text, parse_cpulist

RULES_FILE = ".irqtune-sim.json"
_AFFINITY = re.compile(r"/proc/irq/(\d+)/smp_affinity(_list)?\Z")
_NAPI_SYSFS = re.compile(r"/sys/devices/.+/net/([^/]+)/(gro_flush_timeout|napi_defer_hard_irqs)\Z")


class SimTreeError(ValueError):
    """A simulated tree's own file (its rules, a device's state) that cannot be used: `FILE:LINE: what`."""


def kernel_at_least(kernel: str, major: int, minor: int) -> bool:
    parts = [int(p) for p in re.findall(r"\d{1,9}", kernel)[:2]] + [0, 0]
    return (parts[0], parts[1]) >= (major, minor)


def managed_errno(kernel: str) -> int:
    """EIO up to 6.11, EPERM from 6.12 (genirq/proc: Change the return value for set affinity permission error)."""
    return errno.EPERM if kernel_at_least(kernel, 6, 12) else errno.EIO


def rules_text(kernel: str, managed_irqs: list[int], online: list[int]) -> str:
    """The rules file's JSON (the tree writer puts it in the tree)."""
    return json.dumps({"kernel": kernel, "managed_irqs": managed_irqs, "online": online}, indent=1)


def state_file(path: str, text: str, damage) -> dict:
    """A JSON object the simulator keeps in its tree, checked by `damage` (object -> (key, why) or None):
    SimTreeError `FILE:LINE: what` for bad JSON or a value of the wrong kind, not a traceback later."""
    try:
        data = jsonfile.loads(path, text)
    except jsonfile.JsonError as err:
        raise SimTreeError(str(err)) from None
    found = damage(data) if isinstance(data, dict) else ((), "expected a JSON object")
    if found:
        keys, why = found
        named = brief_text(".".join(keys)) + ": " if keys else ""
        raise SimTreeError(f"{path}:{jsonfile.key_line(text, *keys)}: {named}{why}")
    return data


def read_state(host: Host, path: str, damage) -> dict | None:
    """The state file at `path` (state_file), None when it is missing or unreadable; its raw text, so that lines
    count from the file's first."""
    try:
        text = host.read(path)
    except (OSError, PathEscape):
        return None
    return state_file(path, text, damage)


def whole(value: object) -> bool:
    """A count or setting: an int (not a bool) from 0 to 2**64-1."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def numbers_damage(table: object, keys: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    """(keys, why) when `table` is not an object of whole numbers."""
    if not isinstance(table, dict):
        return keys, f"expected an object of whole numbers, got {brief(table)}"
    for key, value in table.items():
        if not whole(value):
            return (*keys, key), f"expected a whole number, got {brief(value)}"
    return None


def _rules_damage(rules: dict) -> tuple[tuple[str, ...], str] | None:
    if not isinstance(rules.get("kernel", ""), str):
        return ("kernel",), f"expected a version string, got {brief(rules['kernel'])}"
    for key in ("managed_irqs", "online"):
        value = rules.get(key, [])
        if not (isinstance(value, list) and all(whole(v) for v in value)):
            return (key,), f"expected a list of whole numbers, got {brief(value)}"
    return None


@dataclass
class SimulatedKernel(Host):
    rules: dict = field(default_factory=dict)

    @classmethod
    def for_root(cls, root: str) -> SimulatedKernel | None:
        """The simulated kernel of a root the simulator made, or None for any other root."""
        if root == "/":
            return None
        path = os.path.join(root, RULES_FILE)
        try:
            text = read_regular(path, "simulator rules").decode("utf-8")
        except FileNotFoundError:  # any other root: a plain host
            return None
        except (OSError, ValueError) as err:  # not a regular file, too big, not text: refused, not followed
            raise SimTreeError(f"{path}: unreadable ({err})") from None
        return cls(root, rules=state_file(path, text, _rules_damage))

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
