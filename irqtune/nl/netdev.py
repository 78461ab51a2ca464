"""netdev generic netlink: per-NAPI settings (napi-get / napi-set) and queue -> NAPI (queue-get).

pyroute2 0.9 has no netdev family. napi-set (Linux 6.13+, CAP_NET_ADMIN) sets
defer-hard-irqs, gro-flush-timeout, irq-suspend-timeout and threaded per NAPI
instance; older kernels only have the per-device sysfs files. gro-flush-timeout and
irq-suspend-timeout are NLA_UINT: 4 bytes when the value fits, else 8 -- replies are
read as raw bytes for exactly that reason (pyroute2's uint64 misreads a 4-byte one).
"""

from __future__ import annotations

import sys

from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, genlmsg
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import GenericNetlinkSocket

from .errors import NetlinkRequestError

FAMILY = "netdev"
VERSION = 1
NAPI_GET, NAPI_SET = 11, 14
NAPI_FIELDS = ("ifindex", "id", "irq", "pid", "defer_hard_irqs", "gro_flush_timeout", "irq_suspend_timeout", "threaded")
NAPI_SETTABLE = frozenset({"defer_hard_irqs", "gro_flush_timeout", "irq_suspend_timeout", "threaded"})
_UINT = frozenset({"gro_flush_timeout", "irq_suspend_timeout"})


def _map(prefix: str, fields: tuple[str, ...], uint_as: str) -> tuple[tuple[str, str], ...]:
    return ((f"{prefix}_UNSPEC", "none"),
            *((f"{prefix}_{f.upper()}", uint_as if f in _UINT else "uint32") for f in fields))  # fmt: skip


class napi_reply(genlmsg):
    nla_map = _map("NETDEV_A_NAPI", NAPI_FIELDS, "cdata")


class napi_request(genlmsg):
    nla_map = _map("NETDEV_A_NAPI", NAPI_FIELDS, "uint64")


class NetdevError(NetlinkRequestError):
    """A refused request; `errno` is the kernel's."""


def uint_value(raw: bytes) -> int:
    """NLA_UINT: host byte order, 4 or 8 bytes."""
    return int.from_bytes(raw, sys.byteorder)


def build_napi_set(napi_id: int, values: dict[str, int]) -> genlmsg:
    msg = napi_request()
    msg["cmd"], msg["version"] = NAPI_SET, VERSION
    msg["attrs"].append(("NETDEV_A_NAPI_ID", napi_id))
    for name, value in values.items():
        if name not in NAPI_SETTABLE:
            raise ValueError(f"napi: {name!r} is not settable")
        msg["attrs"].append((f"NETDEV_A_NAPI_{name.upper()}", int(value)))
    return msg


def _napi_values(reply) -> dict[str, int]:
    out = {}
    for name, value in reply["attrs"]:
        field = name[len("NETDEV_A_NAPI_") :].lower()
        if field in NAPI_FIELDS and value is not None:
            out[field] = uint_value(value) if field in _UINT else value
    return out


class Netdev:
    """Synchronous netdev netlink client in the current network namespace."""

    def __init__(self) -> None:
        self._sock = GenericNetlinkSocket(ext_ack=True)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Netdev:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ask(self, msg, flags: int):
        try:
            self._sock.bind(FAMILY, type(msg))  # fails on kernels without the netdev family (before 6.5)
            return self._sock.nlm_request(msg, msg_type=self._sock.prid, msg_flags=flags)
        except NetlinkError as err:
            detail = getattr(err, "extack", None) or err.args[-1]
            raise NetdevError(f"netdev request refused: {detail}", err.code) from None

    def napis(self, ifindex: int | None = None) -> list[dict[str, int]]:
        msg = napi_reply()
        msg["cmd"], msg["version"] = NAPI_GET, VERSION
        if ifindex is not None:
            msg["attrs"].append(("NETDEV_A_NAPI_IFINDEX", ifindex))
        return [_napi_values(r) for r in self._ask(msg, NLM_F_REQUEST | NLM_F_DUMP)]

    def napi(self, napi_id: int) -> dict[str, int]:
        msg = napi_reply()
        msg["cmd"], msg["version"] = NAPI_GET, VERSION
        msg["attrs"].append(("NETDEV_A_NAPI_ID", napi_id))
        replies = self._ask(msg, NLM_F_REQUEST)
        return _napi_values(replies[0]) if replies else {}

    def set_napi(self, napi_id: int, values: dict[str, int]) -> None:
        self._ask(build_napi_set(napi_id, values), NLM_F_REQUEST | NLM_F_ACK)
