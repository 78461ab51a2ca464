"""The simulated kernel's netdev netlink family: napi-get and napi-set, the same methods as `nl.netdev.Netdev`.

Each NIC keeps its NAPI instances' settings in `sys/class/net/DEV/irqtune-sim/napi.json`
(id -> attributes, named as `nl.netdev` reports them). The device-wide sysfs files
`gro_flush_timeout` and `napi_defer_hard_irqs` set every NAPI of the device, as in the
kernel since 6.13 (the simulated kernel applies such writes here too). napi-set and
irq-suspend-timeout exist from 6.13; older simulated kernels answer EOPNOTSUPP.
"""

from __future__ import annotations

import errno
import json

from ..host import Host
from ..nl.errors import NetlinkRequestError
from .kernel import SimTreeError, kernel_at_least, numbers_damage, read_state

STATE_FILE = ("irqtune-sim", "napi.json")
SETTABLE = ("defer_hard_irqs", "gro_flush_timeout", "irq_suspend_timeout", "threaded")  # as nl.netdev names them
SYSFS = {"gro_flush_timeout": "gro_flush_timeout", "napi_defer_hard_irqs": "defer_hard_irqs"}


class SimNetdevError(NetlinkRequestError):
    """What the simulated kernel refuses, as netdev netlink would."""


def napi_state(ifindex: int, irq: int) -> dict[str, int]:
    return {"ifindex": ifindex, "irq": irq, "defer_hard_irqs": 0, "gro_flush_timeout": 0, "irq_suspend_timeout": 0,
            "threaded": 0}  # fmt: skip


def napis_damage(napis: dict) -> tuple[tuple[str, ...], str] | None:
    """(keys, why) when a device's napi.json is not NAPI id -> attributes (whole numbers, ifindex and irq)."""
    for napi_id, values in napis.items():
        if not (napi_id.isdigit() and napi_id.isascii() and len(napi_id) < 12):
            return (napi_id,), f"expected a NAPI id, got {napi_id[:80]!r}"
        found = numbers_damage(values, (napi_id,))
        if found:
            return found
        missing = [key for key in ("ifindex", "irq") if key not in values]
        if missing:
            return (napi_id,), f"NAPI {napi_id} has no {missing[0]}"
    return None


def available(host: Host) -> bool:
    return any(host.has(host.sys(), "class", "net", dev, *STATE_FILE) for dev in host.entries(host.sys("class", "net")))


class SimNetdev:
    """napi-get/napi-set against the simulated devices under `host`."""

    def __init__(self, host: Host, kernel: str) -> None:
        self.host, self.kernel = host, kernel

    def __enter__(self) -> SimNetdev:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _devices(self) -> dict[str, dict[str, dict[str, int]]]:
        """Every device's NAPIs; a damaged file is EIO with its FILE:LINE."""
        out = {}
        for dev in self.host.entries(self.host.sys("class", "net")):
            try:
                napis = read_state(self.host, self.host.sys("class", "net", dev, *STATE_FILE), napis_damage)
            except SimTreeError as err:
                raise SimNetdevError(str(err), errno.EIO) from None
            if napis is not None:
                out[dev] = napis
        return out

    def _visible(self, napi_id: str, values: dict[str, int]) -> dict[str, int]:
        shown = {"id": int(napi_id), **values}
        if not kernel_at_least(self.kernel, 6, 13):  # per-NAPI config and irq suspension are 6.13
            for name in SETTABLE:
                shown.pop(name, None)
        return shown

    def napis(self, ifindex: int | None = None) -> list[dict[str, int]]:
        return [self._visible(i, v) for napis in self._devices().values() for i, v in sorted(napis.items())
                if ifindex is None or v["ifindex"] == ifindex]  # fmt: skip

    def napi(self, napi_id: int) -> dict[str, int]:
        for napis in self._devices().values():
            if str(napi_id) in napis:
                return self._visible(str(napi_id), napis[str(napi_id)])
        raise SimNetdevError(f"napi {napi_id}: no such NAPI instance", errno.ENOENT)

    def set_napi(self, napi_id: int, values: dict[str, int]) -> None:
        if not kernel_at_least(self.kernel, 6, 13):
            raise SimNetdevError("napi-set: not supported by this kernel (6.13+)", errno.EOPNOTSUPP)
        for dev, napis in self._devices().items():
            if str(napi_id) in napis:
                for name, value in values.items():
                    if name not in SETTABLE:
                        raise SimNetdevError(f"napi-set: unknown attribute {name}", errno.EINVAL)
                    napis[str(napi_id)][name] = int(value)
                self._save(dev, napis)
                return
        raise SimNetdevError(f"napi {napi_id}: no such NAPI instance", errno.ENOENT)

    def set_device(self, dev: str, sysfs_name: str, value: int) -> None:
        """A write to the device-wide sysfs file: every NAPI of the device takes the value (a damaged state file:
        the write fails with EIO)."""
        path = self.host.sys("class", "net", dev, *STATE_FILE)
        try:
            napis = read_state(self.host, path, napis_damage)
        except SimTreeError as err:
            raise OSError(errno.EIO, str(err), path) from None
        if napis is None:
            return
        for values in napis.values():
            values[SYSFS[sysfs_name]] = value
        self._save(dev, napis)

    def _save(self, dev: str, napis: dict) -> None:
        Host.write(
            self.host, self.host.sys("class", "net", dev, *STATE_FILE), json.dumps(napis, indent=1, sort_keys=True)
        )
