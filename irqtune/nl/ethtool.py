"""ethtool generic netlink: COALESCE, CHANNELS and RINGS GET/SET, RSS_GET and RSS_SET (pyroute2 0.9 has no
coalesce, channels or RSS message; its rings message matches RINGS_FIELDS). RSS goes over the plain socket; where
the kernel has no RSS_GET (before 6.4) or RSS_SET (before 6.17) the ethtool ioctl does it (nl/ethtool_ioctl.py).

Netlink, not the ioctl: COALESCE_GET returns only the attributes the driver supports,
so "unsupported" and "0" differ, and the kernel's extended ACK explains a refused SET.
Attribute numbers are the kernel's uapi (include/uapi/linux/ethtool_netlink_generated.h).
Values are exchanged as {name: int} with names like "rx_usecs" and "combined_count".
"""

from __future__ import annotations

import errno
import functools
import struct

from . import ethtool_ioctl
from .errors import NetlinkRequestError
from .fields import (
    CHANNELS_FIELDS,
    CHANNELS_SETTABLE,
    COALESCE_FIELDS,
    COALESCE_SETTABLE,
    RINGS_FIELDS,
    RINGS_SETTABLE,
)
from .raw import NLA_F_NESTED, GenericGet, attribute

FAMILY = "ethtool"
VERSION = 1
RINGS_GET, RINGS_SET, CHANNELS_GET, CHANNELS_SET, COALESCE_GET, COALESCE_SET = 15, 16, 17, 18, 19, 20
RSS_GET = 38  # ETHTOOL_MSG_RSS_GET (6.4+)
RSS_SET = 48  # ETHTOOL_MSG_RSS_SET (6.17+; Documentation/netlink/specs/ethtool.yaml, after TSCONFIG_SET 47)
RSS_CONTEXT, RSS_HFUNC, RSS_INDIR, RSS_HKEY = 2, 3, 4, 5  # ETHTOOL_A_RSS_*
RSS_HFUNCS = ("toeplitz", "xor", "crc32")  # ETH_RSS_HASH_*_BIT: bit i of ETHTOOL_A_RSS_HFUNC
TABLES = {"coalesce": (COALESCE_FIELDS, COALESCE_GET), "channels": (CHANNELS_FIELDS, CHANNELS_GET),
          "rings": (RINGS_FIELDS, RINGS_GET)}  # fmt: skip
A_HEADER, A_HEADER_DEV_NAME = 1, 2  # ETHTOOL_A_{COALESCE,CHANNELS}_HEADER, ETHTOOL_A_HEADER_DEV_NAME
UNPACK = {"uint32": struct.Struct("=I"), "uint8": struct.Struct("=B")}

__all__ = ["CHANNELS_SETTABLE", "COALESCE_SETTABLE", "RINGS_SETTABLE", "Ethtool", "EthtoolError", "build"]


def _nla_map(prefix: str, fields: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return ((f"{prefix}_UNSPEC", "none"), (f"{prefix}_HEADER", "ethtoolheader"),
            *((f"{prefix}_{name.upper()}", kind) for name, kind in fields))  # fmt: skip


@functools.cache
def _messages() -> dict[str, type]:
    """pyroute2's message classes, built when a write (or a test) first needs them: reads go without pyroute2."""
    from pyroute2.netlink import genlmsg
    from pyroute2.netlink.generic.ethtool import ethtoolheader

    class coalesce_msg(genlmsg):
        nla_map = _nla_map("ETHTOOL_A_COALESCE", COALESCE_FIELDS)

    class channels_msg(genlmsg):
        nla_map = _nla_map("ETHTOOL_A_CHANNELS", CHANNELS_FIELDS)

    class rings_msg(genlmsg):
        nla_map = _nla_map("ETHTOOL_A_RINGS", RINGS_FIELDS)

    coalesce_msg.ethtoolheader = channels_msg.ethtoolheader = rings_msg.ethtoolheader = ethtoolheader
    return {"coalesce": coalesce_msg, "channels": channels_msg, "rings": rings_msg}


class EthtoolError(NetlinkRequestError):
    """A refused request; `errno` is the kernel's, the message includes its extended ACK."""


def build(kind: str, command: str, ifname: str, values: dict[str, int] | None = None):
    """The request message, a pyroute2 genlmsg (also what tests check attribute by attribute)."""
    prefix, fields, cmd = {
        ("coalesce", "get"): ("ETHTOOL_A_COALESCE", COALESCE_FIELDS, COALESCE_GET),
        ("coalesce", "set"): ("ETHTOOL_A_COALESCE", COALESCE_FIELDS, COALESCE_SET),
        ("channels", "get"): ("ETHTOOL_A_CHANNELS", CHANNELS_FIELDS, CHANNELS_GET),
        ("channels", "set"): ("ETHTOOL_A_CHANNELS", CHANNELS_FIELDS, CHANNELS_SET),
        ("rings", "get"): ("ETHTOOL_A_RINGS", RINGS_FIELDS, RINGS_GET),
        ("rings", "set"): ("ETHTOOL_A_RINGS", RINGS_FIELDS, RINGS_SET),
    }[(kind, command)]
    msg = _messages()[kind]()
    msg["cmd"], msg["version"] = cmd, VERSION
    msg["attrs"].append((f"{prefix}_HEADER", {"attrs": [["ETHTOOL_A_HEADER_DEV_NAME", ifname]]}))
    known = dict(fields)
    for name, value in (values or {}).items():
        if known.get(name) in (None, "none") or (kind == "rings" and name not in RINGS_SETTABLE):
            raise ValueError(f"{kind}: {name!r} is not a settable attribute")
        msg["attrs"].append((f"{prefix}_{name.upper()}", int(value)))
    return msg


def _values(reply, prefix: str) -> dict[str, int]:
    out = {}
    for name, value in reply["attrs"]:
        if name.startswith(prefix) and not name.endswith(("_HEADER", "_UNSPEC", "_PROFILE")) and value is not None:
            out[name[len(prefix) + 1 :].lower()] = value
    return out


def decode(found: dict[int, bytes], fields: tuple[tuple[str, str], ...]) -> dict[str, int]:
    """A GET reply's attributes as {name: int}: only those the driver reported (nested profiles left out)."""
    out = {}
    for number, (name, kind) in enumerate(fields, start=A_HEADER + 1):
        payload = found.get(number)
        if payload is not None and kind in UNPACK and len(payload) >= UNPACK[kind].size:
            out[name] = UNPACK[kind].unpack_from(payload)[0]
    return out


class Ethtool:
    """Synchronous ethtool netlink client; `netns` opens the socket inside a namespace. Reads in this namespace
    go over a plain socket (nl/raw.py); writes and other namespaces through pyroute2, imported for them."""

    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns
        self._sock = None
        self._get = None if netns else GenericGet()
        if netns:
            self._pyroute2()

    def _pyroute2(self):
        if self._sock is None:
            from pyroute2.netlink.generic import GenericNetlinkSocket

            kwargs = {"ext_ack": True}
            if self._netns:
                kwargs.update(netns=self._netns, flags=0)  # flags=0: never create a namespace by typo
            self._sock = GenericNetlinkSocket(**kwargs)
        return self._sock

    def close(self) -> None:
        for sock in (self._sock, self._get):
            if sock is not None:
                sock.close()

    def __enter__(self) -> Ethtool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, kind: str, command: str, ifname: str, values: dict[str, int] | None = None) -> dict[str, int]:
        if command == "get" and self._get is not None:
            return self._read(kind, ifname)
        from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
        from pyroute2.netlink.exceptions import NetlinkError

        msg = build(kind, command, ifname, values)
        flags = NLM_F_REQUEST | (NLM_F_ACK if command == "set" else 0)
        sock = self._pyroute2()
        try:
            sock.bind(FAMILY, type(msg))  # fails on kernels without ethtool netlink (before 5.6)
            replies = sock.nlm_request(msg, msg_type=sock.prid, msg_flags=flags)
        except NetlinkError as err:
            detail = getattr(err, "extack", None) or err.args[-1]
            raise EthtoolError(f"{ifname}: {kind} {command} refused: {detail}", err.code) from None
        prefix = f"ETHTOOL_A_{kind.upper()}"
        return _values(replies[0], prefix) if command == "get" and replies else {}

    def _read(self, kind: str, ifname: str) -> dict[str, int]:
        assert self._get is not None
        fields, command = TABLES[kind]
        return decode(self._raw_get(kind, command, ifname), fields)

    def _raw_get(self, kind: str, command: int, ifname: str) -> dict[int, bytes]:
        assert self._get is not None
        header = attribute(A_HEADER | NLA_F_NESTED, attribute(A_HEADER_DEV_NAME, ifname.encode() + b"\0"))
        try:
            return self._get.get(FAMILY, command, VERSION, header)  # ENOENT: no ethtool netlink (before 5.6)
        except NetlinkRequestError as err:
            raise EthtoolError(f"{ifname}: {kind} get refused: {err}", err.errno) from None

    def get_coalesce(self, ifname: str) -> dict[str, int]:
        return self._request("coalesce", "get", ifname)

    def set_coalesce(self, ifname: str, values: dict[str, int]) -> None:
        self._request("coalesce", "set", ifname, values)

    def get_channels(self, ifname: str) -> dict[str, int]:
        return self._request("channels", "get", ifname)

    def set_channels(self, ifname: str, values: dict[str, int]) -> None:
        self._request("channels", "set", ifname, values)

    def get_rings(self, ifname: str) -> dict[str, int]:
        return self._request("rings", "get", ifname)

    def set_rings(self, ifname: str, values: dict[str, int]) -> None:
        self._request("rings", "set", ifname, values)

    def get_rss(self, ifname: str) -> dict:
        """The RSS indirection table, hash key and function: RSS_GET (6.4+), else the ioctl ETHTOOL_GRSSH."""
        if self._get is None:
            raise EthtoolError(f"{ifname}: rss get: only in this network namespace", errno.EOPNOTSUPP)
        try:
            return decode_rss(self._raw_get("rss", RSS_GET, ifname))
        except EthtoolError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.ENOENT):
                raise
        return ethtool_ioctl.get_rss(ifname)  # no RSS_GET here, or a driver without RSS: the ioctl says which

    def set_rss(self, ifname: str, indir: list[int] | None = None, hkey: bytes | None = None) -> str:
        """Write the indirection table and/or hash key; returns how: netlink RSS_SET where this kernel has it,
        else the ioctl ETHTOOL_SRSSH."""
        if self._get is None:
            raise EthtoolError(f"{ifname}: rss set: only in this network namespace", errno.EOPNOTSUPP)
        if not self._get.has_command(FAMILY, RSS_SET):
            ethtool_ioctl.set_rss(ifname, indir, hkey)
            return "set via ioctl: kernel has no RSS_SET"
        try:
            self._get.do(FAMILY, RSS_SET, VERSION, rss_set_payload(ifname, indir, hkey))
        except NetlinkRequestError as err:
            raise EthtoolError(f"{ifname}: rss set refused: {err}", err.errno) from None
        return "set via netlink RSS_SET"


def rss_set_payload(ifname: str, indir: list[int] | None, hkey: bytes | None) -> bytes:
    """RSS_SET's attributes: the header naming the device, then the table (u32 each) and the key, where given."""
    out = attribute(A_HEADER | NLA_F_NESTED, attribute(A_HEADER_DEV_NAME, ifname.encode() + b"\0"))
    if indir is not None:
        out += attribute(RSS_INDIR, struct.pack(f"={len(indir)}I", *indir))
    if hkey is not None:
        out += attribute(RSS_HKEY, hkey)
    return out


def decode_rss(found: dict[int, bytes]) -> dict:
    """RSS_GET's reply: {"hfunc": name or "", "indir": [queue, ...], "hkey": hex}; absent attributes left out."""
    out: dict = {}
    if RSS_HFUNC in found and len(found[RSS_HFUNC]) >= 4:
        bits = struct.unpack_from("=I", found[RSS_HFUNC])[0]
        named = ",".join(name for i, name in enumerate(RSS_HFUNCS) if bits >> i & 1)
        out["hfunc"] = named or (f"0x{bits:x}" if bits else "")
    if RSS_INDIR in found:
        raw = found[RSS_INDIR]
        out["indir"] = list(struct.unpack(f"={len(raw) // 4}I", raw[: len(raw) // 4 * 4]))
    if RSS_HKEY in found:
        out["hkey"] = found[RSS_HKEY].hex()
    return out
