"""The simulated driver's side of ethtool: the same get/set interface as `irqtune.nl.ethtool.Ethtool`.

On a simulated root each NIC keeps its coalescing, channel and ring settings, and the driver's
limits (and an RSS table or key once set), in `sys/class/net/DEV/irqtune-sim/ethtool.json`; knobs read and write
it through the rooted host layer, and the simulated host reads it every step. A value the driver
would refuse raises the same EthtoolError (EINVAL, EOPNOTSUPP) the netlink client raises.
"""

from __future__ import annotations

import errno
import json

from ..host import Host
from ..nl.errors import NetlinkRequestError
from ..nl.fields import CHANNELS_SETTABLE, COALESCE_SETTABLE, RINGS_SETTABLE
from .kernel import SimTreeError, numbers_damage, read_state, whole

STATE_FILE = ("irqtune-sim", "ethtool.json")


class SimEthtoolError(NetlinkRequestError):
    """What the simulated driver refuses, as the kernel's ethtool netlink would."""


def default_state(queues: int, rx_usecs: int, rx_frames: int, usecs_quantum: int = 1, max_channels: int = 0,
                  ring: int = 1024, ring_max: int = 4096) -> dict:  # fmt: skip
    """`usecs_quantum` > 1: the device keeps rx-usecs in steps of it and reports the rounded value (ENA-like);
    `max_channels`: the driver's channel maximum (0: `queues`), which the agent's advice reads; `ring`, `ring_max`:
    the rx and tx ring sizes and the driver's maximum (ethtool -g), the rx one bounding what a queue holds."""
    return {
        "rx_usecs_quantum": usecs_quantum,
        "coalesce": {"rx_usecs": rx_usecs, "rx_max_frames": rx_frames, "tx_usecs": 16, "tx_max_frames": 32,
                     "use_adaptive_rx": 0, "use_adaptive_tx": 0},
        "coalesce_max": {"rx_usecs": 8192, "rx_max_frames": 4096, "tx_usecs": 8192, "tx_max_frames": 4096,
                         "use_adaptive_rx": 1, "use_adaptive_tx": 1},
        "channels": {"combined_max": max_channels or queues, "combined_count": queues},
        "rings": {"rx": ring, "rx_max": ring_max, "tx": ring, "tx_max": ring_max},
    }  # fmt: skip


def state_damage(state: dict) -> tuple[tuple[str, ...], str] | None:
    """(keys, why) when a device's ethtool.json is not what default_state writes: objects of whole numbers."""
    for key in ("coalesce", "coalesce_max", "channels", "rings"):
        if key == "rings" and key not in state:  # a state written before rings were simulated
            continue
        found = numbers_damage(state.get(key), (key,))
        if found:
            return found
    rss = state.get("rss", {})
    indir, hkey = (rss.get("indir", []), rss.get("hkey", "")) if isinstance(rss, dict) else (None, None)
    if not (isinstance(indir, list) and all(whole(q) for q in indir)):
        return ("rss", "indir"), f"expected a list of whole numbers, got {indir!r:.80}"
    if not (isinstance(hkey, str) and all(c in "0123456789abcdef" for c in hkey) and len(hkey) % 2 == 0):
        return ("rss", "hkey"), f"expected hex bytes, got {hkey!r:.80}"
    quantum = state.get("rx_usecs_quantum", 1)
    if not whole(quantum) or quantum < 1:
        return ("rx_usecs_quantum",), f"expected a whole number from 1, got {quantum!r:.80}"
    return None


def available(host: Host, dev: str) -> bool:
    return host.has(host.sys(), "class", "net", dev, *STATE_FILE)


class SimEthtool:
    """Same methods as nl.ethtool.Ethtool, backed by the simulated device's state file."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def __enter__(self) -> SimEthtool:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _load(self, dev: str) -> dict:
        """The device's state; a damaged file is EIO with its FILE:LINE, as a driver that cannot answer."""
        try:
            state = read_state(self.host, self.host.sys("class", "net", dev, *STATE_FILE), state_damage)
        except SimTreeError as err:
            raise SimEthtoolError(str(err), errno.EIO) from None
        if state is None:
            raise SimEthtoolError(f"{dev}: no such simulated device", errno.ENODEV)
        return state

    def _save(self, dev: str, state: dict) -> None:
        self.host.write(self.host.sys("class", "net", dev, *STATE_FILE), json.dumps(state, indent=1, sort_keys=True))

    def get_coalesce(self, dev: str) -> dict[str, int]:
        return dict(self._load(dev)["coalesce"])

    def set_coalesce(self, dev: str, values: dict[str, int]) -> None:
        state = self._load(dev)
        for name, value in values.items():
            if name not in COALESCE_SETTABLE or name not in state["coalesce"]:
                raise SimEthtoolError(f"{dev}: coalesce {name} not supported by this driver", errno.EOPNOTSUPP)
            if not 0 <= value <= state["coalesce_max"].get(name, (1 << 32) - 1):
                raise SimEthtoolError(f"{dev}: coalesce {name}={value} out of range", errno.EINVAL)
            quantum = state.get("rx_usecs_quantum", 1) if name == "rx_usecs" else 1
            state["coalesce"][name] = round(value / quantum) * quantum
        self._save(dev, state)

    def get_channels(self, dev: str) -> dict[str, int]:
        return dict(self._load(dev)["channels"])

    def set_channels(self, dev: str, values: dict[str, int]) -> None:
        state = self._load(dev)
        for name, value in values.items():
            limit = state["channels"].get(name.replace("_count", "_max"))
            if name not in CHANNELS_SETTABLE or limit is None:
                raise SimEthtoolError(f"{dev}: channels {name} not supported by this driver", errno.EOPNOTSUPP)
            if not 1 <= value <= limit:
                raise SimEthtoolError(f"{dev}: channels {name}={value} outside 1..{limit}", errno.EINVAL)
            state["channels"][name] = value
        self._save(dev, state)

    def get_rings(self, dev: str) -> dict[str, int]:
        return dict(self._load(dev).get("rings", {}))

    def set_rings(self, dev: str, values: dict[str, int]) -> None:
        """As the kernel's ethnl_set_rings: a size above the driver's maximum is EINVAL, a ring the driver does not
        report (no maximum) EOPNOTSUPP."""
        state = self._load(dev)
        rings = state.setdefault("rings", {})
        for name, value in values.items():
            limit = rings.get(f"{name}_max")
            if name not in RINGS_SETTABLE or not limit:
                raise SimEthtoolError(f"{dev}: rings {name} not supported by this driver", errno.EOPNOTSUPP)
            if not 1 <= value <= limit:
                raise SimEthtoolError(f"{dev}: requested ring size {name}={value} exceeds maximum {limit}",
                                      errno.EINVAL)  # fmt: skip
            rings[name] = value
        self._save(dev, state)

    def get_rss(self, dev: str) -> dict:
        """A 128-entry indirection table spread round-robin over the channels in use, Toeplitz hashing (what a
        driver sets by default, ethtool_rxfh_indir_default), until a table or key is set."""
        state = self._load(dev)
        queues = max(1, state["channels"].get("combined_count", 1))
        rss = {"hfunc": "toeplitz", "indir": [i % queues for i in range(128)], "hkey": "6d5a" * 20}
        saved = state.get("rss")
        if isinstance(saved, dict):
            rss.update({k: v for k, v in saved.items() if k in ("indir", "hkey")})
        return rss

    def set_rss(self, dev: str, indir: list[int] | None = None, hkey: bytes | None = None) -> str:
        """As the kernel's ETHTOOL_SRSSH: the table at its size with entries below the channels (EINVAL), the key
        at its length."""
        state, rss = self._load(dev), self.get_rss(dev)
        queues = max(1, state["channels"].get("combined_count", 1))
        if indir is not None:
            if len(indir) != len(rss["indir"]) or any(not 0 <= q < queues for q in indir):
                raise SimEthtoolError(f"{dev}: RSS table refused (size {len(rss['indir'])}, {queues} queues)",
                                      errno.EINVAL)  # fmt: skip
            rss["indir"] = list(indir)
        if hkey is not None:
            if len(hkey) * 2 != len(rss["hkey"]):
                raise SimEthtoolError(f"{dev}: RSS key of {len(hkey)} bytes refused", errno.EINVAL)
            rss["hkey"] = hkey.hex()
        state["rss"] = {"indir": rss["indir"], "hkey": rss["hkey"]}
        self._save(dev, state)
        return "set in the simulated driver"
