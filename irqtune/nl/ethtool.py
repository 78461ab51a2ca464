"""ethtool generic netlink: COALESCE_GET/SET and CHANNELS_GET/SET (pyroute2 0.9 has neither).

Netlink, not the ioctl: COALESCE_GET returns only the attributes the driver supports,
so "unsupported" and "0" differ, and the kernel's extended ACK explains a refused SET.
Attribute numbers are the kernel's uapi (include/uapi/linux/ethtool_netlink_generated.h).
Values are exchanged as {name: int} with names like "rx_usecs" and "combined_count".
"""

from __future__ import annotations

from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, genlmsg
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import GenericNetlinkSocket
from pyroute2.netlink.generic.ethtool import ethtoolheader

from .errors import NetlinkRequestError
from .fields import CHANNELS_FIELDS, CHANNELS_SETTABLE, COALESCE_FIELDS, COALESCE_SETTABLE

FAMILY = "ethtool"
VERSION = 1
CHANNELS_GET, CHANNELS_SET, COALESCE_GET, COALESCE_SET = 17, 18, 19, 20

__all__ = ["CHANNELS_SETTABLE", "COALESCE_SETTABLE", "Ethtool", "EthtoolError", "build"]


def _nla_map(prefix: str, fields: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return ((f"{prefix}_UNSPEC", "none"), (f"{prefix}_HEADER", "ethtoolheader"),
            *((f"{prefix}_{name.upper()}", kind) for name, kind in fields))  # fmt: skip


class coalesce_msg(genlmsg):
    nla_map = _nla_map("ETHTOOL_A_COALESCE", COALESCE_FIELDS)
    ethtoolheader = ethtoolheader


class channels_msg(genlmsg):
    nla_map = _nla_map("ETHTOOL_A_CHANNELS", CHANNELS_FIELDS)
    ethtoolheader = ethtoolheader


class EthtoolError(NetlinkRequestError):
    """A refused request; `errno` is the kernel's, the message includes its extended ACK."""


def build(kind: str, command: str, ifname: str, values: dict[str, int] | None = None) -> genlmsg:
    """The request message (also what tests check attribute by attribute)."""
    cls, prefix, fields, cmd = {
        ("coalesce", "get"): (coalesce_msg, "ETHTOOL_A_COALESCE", COALESCE_FIELDS, COALESCE_GET),
        ("coalesce", "set"): (coalesce_msg, "ETHTOOL_A_COALESCE", COALESCE_FIELDS, COALESCE_SET),
        ("channels", "get"): (channels_msg, "ETHTOOL_A_CHANNELS", CHANNELS_FIELDS, CHANNELS_GET),
        ("channels", "set"): (channels_msg, "ETHTOOL_A_CHANNELS", CHANNELS_FIELDS, CHANNELS_SET),
    }[(kind, command)]
    msg = cls()
    msg["cmd"], msg["version"] = cmd, VERSION
    msg["attrs"].append((f"{prefix}_HEADER", {"attrs": [["ETHTOOL_A_HEADER_DEV_NAME", ifname]]}))
    known = dict(fields)
    for name, value in (values or {}).items():
        if known.get(name) in (None, "none"):
            raise ValueError(f"{kind}: {name!r} is not a settable attribute")
        msg["attrs"].append((f"{prefix}_{name.upper()}", int(value)))
    return msg


def _values(reply, prefix: str) -> dict[str, int]:
    out = {}
    for name, value in reply["attrs"]:
        if name.startswith(prefix) and not name.endswith(("_HEADER", "_UNSPEC", "_PROFILE")) and value is not None:
            out[name[len(prefix) + 1 :].lower()] = value
    return out


class Ethtool:
    """Synchronous ethtool netlink client; `netns` opens the socket inside a namespace."""

    def __init__(self, netns: str | None = None) -> None:
        kwargs = {"ext_ack": True}
        if netns:
            kwargs.update(netns=netns, flags=0)  # flags=0: never create a namespace by typo
        self._sock = GenericNetlinkSocket(**kwargs)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Ethtool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, kind: str, command: str, ifname: str, values: dict[str, int] | None = None) -> dict[str, int]:
        msg = build(kind, command, ifname, values)
        flags = NLM_F_REQUEST | (NLM_F_ACK if command == "set" else 0)
        try:
            self._sock.bind(FAMILY, type(msg))  # fails on kernels without ethtool netlink (before 5.6)
            replies = self._sock.nlm_request(msg, msg_type=self._sock.prid, msg_flags=flags)
        except NetlinkError as err:
            detail = getattr(err, "extack", None) or err.args[-1]
            raise EthtoolError(f"{ifname}: {kind} {command} refused: {detail}", err.code) from None
        prefix = f"ETHTOOL_A_{kind.upper()}"
        return _values(replies[0], prefix) if command == "get" and replies else {}

    def get_coalesce(self, ifname: str) -> dict[str, int]:
        return self._request("coalesce", "get", ifname)

    def set_coalesce(self, ifname: str, values: dict[str, int]) -> None:
        self._request("coalesce", "set", ifname, values)

    def get_channels(self, ifname: str) -> dict[str, int]:
        return self._request("channels", "get", ifname)

    def set_channels(self, ifname: str, values: dict[str, int]) -> None:
        self._request("channels", "set", ifname, values)
