"""Netlink over a plain socket (stdlib only): what the agent does every pass or every event, without pyroute2.

Importing pyroute2 costs about 20 MB of resident memory (its package imports asyncio, sqlite3 and
multiprocessing), more than the rest of the agent. Reading ethtool coalescing and channels (a generic netlink
GET, one reply) and watching link events (rtnetlink RTMGRP_LINK) are small enough to do here; writes, NAPI and
network namespaces stay with pyroute2 (nl/ethtool.py, nl/netdev.py). Layouts are the kernel's uapi
(linux/netlink.h, linux/genetlink.h, linux/rtnetlink.h, linux/if_link.h).
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from .errors import NetlinkRequestError

NETLINK_ROUTE, NETLINK_GENERIC = 0, 16
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CAPPED, NLM_F_ACK_TLVS, NLM_F_DUMP = 0x1, 0x4, 0x100, 0x200, 0x300
SOL_NETLINK, NETLINK_EXT_ACK = 270, 11
NLMSGERR_ATTR_MSG = 1
NLA_F_NESTED, NLA_TYPE_MASK = 0x8000, 0x3FFF
GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 0x10, 3, 1, 2
CTRL_ATTR_OPS, CTRL_ATTR_OP_ID = 6, 1  # the family's commands: a nest of nests, each with the command's id
RTM_NEWLINK, RTM_DELLINK, IFLA_IFNAME, IFF_UP = 16, 17, 3, 0x1
HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
GENL = struct.Struct("=BBH")  # genlmsghdr: command, version, reserved
IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
RECV = 65536


def attribute(kind: int, payload: bytes) -> bytes:
    """One netlink attribute (nlattr), padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def attributes(data: bytes) -> dict[int, bytes]:
    """Attribute type (flags masked) -> payload; a truncated tail is ignored."""
    out, at = {}, 0
    while at + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, at)
        if length < 4 or at + length > len(data):
            break
        out[kind & NLA_TYPE_MASK] = data[at + 4 : at + length]
        at += (length + 3) & ~3
    return out


def messages(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, flags, payload) of each message in one datagram."""
    out, at = [], 0
    while at + HEADER.size <= len(data):
        length, kind, flags, _, _ = HEADER.unpack_from(data, at)
        if length < HEADER.size or at + length > len(data):
            break
        out.append((kind, flags, data[at + HEADER.size : at + length]))
        at += (length + 3) & ~3
    return out


def error_of(payload: bytes, flags: int) -> tuple[int, str]:
    """(errno, the kernel's extended ACK message or the errno's text) of an NLMSG_ERROR; errno 0 is an ACK."""
    code = -struct.unpack_from("=i", payload)[0]
    detail = os.strerror(code) if code else ""
    if flags & NLM_F_ACK_TLVS and len(payload) >= 4 + HEADER.size:
        echoed = HEADER.size if flags & NLM_F_CAPPED else HEADER.unpack_from(payload, 4)[0]  # the request, echoed
        extack = attributes(payload[4 + ((echoed + 3) & ~3) :]).get(NLMSGERR_ATTR_MSG)
        if extack:
            detail = extack.rstrip(b"\0").decode("utf-8", "replace")
    return code, detail


class GenericGet:
    """Generic netlink GET requests, one reply each. A family's id is resolved once per process: ids are fixed
    while the family is registered, and ethtool's is built into the kernel."""

    known: dict[str, int] = {}  # noqa: RUF012 - shared by every socket on purpose
    commands: dict[str, frozenset[int]] = {}  # noqa: RUF012 - the commands each family's kernel side has

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            self.sock.bind((0, 0))
        except OSError:
            self.sock.close()
            raise
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def family(self, name: str) -> int:
        if name not in self.known:
            asked = attribute(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0")
            reply = self._ask(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, asked)
            found = attributes(reply).get(CTRL_ATTR_FAMILY_ID)
            if found is None:
                raise NetlinkRequestError(f"generic netlink family {name!r}: no id in the reply", errno.ENOENT)
            self.known[name] = struct.unpack("=H", found[:2])[0]
            self.commands[name] = family_commands(attributes(reply).get(CTRL_ATTR_OPS, b""))
        return self.known[name]

    def has_command(self, family: str, command: int) -> bool:
        """Whether this kernel's family has `command` (e.g. ethtool's RSS_SET, 6.17+)."""
        self.family(family)
        return command in self.commands.get(family, frozenset())

    def do(self, family: str, command: int, version: int, payload: bytes) -> None:
        """A request answered by an ACK only (a SET); NetlinkRequestError (errno, extended ACK) when refused."""
        self._ask(self.family(family), command, version, payload, ack=True)

    def get(self, family: str, command: int, version: int, payload: bytes) -> dict[int, bytes]:
        """The reply's attributes; NetlinkRequestError (errno, extended ACK) when the kernel refuses."""
        return attributes(self._ask(self.family(family), command, version, payload))

    def dump(self, family: str, command: int, version: int, payload: bytes = b"") -> list[dict[int, bytes]]:
        """Every reply of a dump request (page pools, their stats), each as its attributes."""
        kind = self.family(family)
        self._send(kind, command, version, payload, NLM_F_REQUEST | NLM_F_DUMP)
        out: list[dict[int, bytes]] = []
        while True:
            for got, flags, data in messages(self.sock.recv(RECV)):
                if got == NLMSG_DONE:
                    return out
                if got == NLMSG_ERROR:
                    code, detail = error_of(data, flags)
                    if code:
                        raise NetlinkRequestError(detail, code)
                elif got == kind:
                    out.append(attributes(data[GENL.size :]))

    def _send(self, kind: int, command: int, version: int, payload: bytes, flags: int) -> None:
        self.seq += 1
        body = GENL.pack(command, version, 0) + payload
        self.sock.send(HEADER.pack(HEADER.size + len(body), kind, flags, self.seq, 0) + body)

    def _ask(self, kind: int, command: int, version: int, payload: bytes, ack: bool = False) -> bytes:
        """The reply's payload; with `ack`, the request asks for an ACK and that is the answer (empty)."""
        self._send(kind, command, version, payload, NLM_F_REQUEST | (NLM_F_ACK if ack else 0))
        while True:
            for got, flags, data in messages(self.sock.recv(RECV)):
                if got == NLMSG_ERROR:
                    code, detail = error_of(data, flags)
                    if code:
                        raise NetlinkRequestError(detail, code)
                    if ack:
                        return b""
                elif got == kind and not ack:
                    return data[GENL.size :]


def family_commands(nest: bytes) -> frozenset[int]:
    """The command ids in CTRL_ATTR_OPS: an array of nests (typed 1, 2, ...), each with CTRL_ATTR_OP_ID and the
    op's flags."""
    ids = (attributes(op).get(CTRL_ATTR_OP_ID, b"") for op in attributes(nest).values())
    return frozenset(struct.unpack_from("=I", found)[0] for found in ids if len(found) >= 4)


def link_events(data: bytes) -> list[tuple[str, str]]:
    """(name, 'up' | 'down' | 'removed') of each link message in one rtnetlink datagram."""
    out = []
    for kind, _, payload in messages(data):
        if kind not in (RTM_NEWLINK, RTM_DELLINK) or len(payload) < IFINFO.size:
            continue
        flags = IFINFO.unpack_from(payload)[3]
        name = attributes(payload[IFINFO.size :]).get(IFLA_IFNAME, b"").rstrip(b"\0").decode("utf-8", "replace")
        out.append((name or "?", "removed" if kind == RTM_DELLINK else "up" if flags & IFF_UP else "down"))
    return out


class LinkEvents:
    """rtnetlink link messages (RTMGRP_LINK): a device up, down, appearing or leaving."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            self.sock.bind((0, 1))  # RTMGRP_LINK
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> list[tuple[str, str]]:
        """(name, 'up' | 'down' | 'removed') of each message waiting; [] when none."""
        try:
            return link_events(self.sock.recv(RECV))
        except BlockingIOError:
            return []

    def close(self) -> None:
        self.sock.close()
