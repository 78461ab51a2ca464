"""page_pool statistics and RX allocation failures from the netdev generic netlink family, over a plain
socket (nl/raw.py).

Layouts from the kernel's Documentation/netlink/specs/netdev.yaml (include/uapi/linux/netdev.h):
page-pool-get (cmd 5, Linux 6.8) dumps each pool's id, ifindex, napi-id, inflight, inflight-mem and
detach-time; page-pool-stats-get (cmd 9, Linux 6.8 with CONFIG_PAGE_POOL_STATS) dumps the allocation and
recycling counters, each pool named by a nested `info` (id, ifindex). Counters are NLA_UINT: 4 or 8 bytes.
A kernel without the family, the op or the config says so as `unavailable`, with the version needed.
qstats-get (cmd 12, Linux 6.9) with scope=queue gives each RX queue's rx-alloc-fail (attr 12) and
rx-hw-drops (attr 13) where the driver reports them (the standard counters; per-driver ethtool -S strings
such as rx_alloc_fail are not read yet).
"""

from __future__ import annotations

import errno
import sys
from dataclasses import dataclass, field

from .errors import NetlinkRequestError
from .raw import GenericGet, attribute, attributes

FAMILY, VERSION = "netdev", 1
PAGE_POOL_GET, PAGE_POOL_STATS_GET, QSTATS_GET = 5, 9, 12
QSTATS_IFINDEX, QSTATS_QUEUE_TYPE, QSTATS_QUEUE_ID, QSTATS_SCOPE, SCOPE_QUEUE, QUEUE_TYPE_RX = 1, 2, 3, 4, 1, 0
QSTATS_ATTRS = {12: "rx_alloc_fail", 13: "rx_hw_drops"}
POOL_ATTRS = {1: "id", 2: "ifindex", 3: "napi_id", 4: "inflight", 5: "inflight_mem", 6: "detach_time"}
STATS_INFO = 1
STATS_ATTRS = {
    8: "alloc_fast", 9: "alloc_slow", 10: "alloc_slow_high_order", 11: "alloc_empty", 12: "alloc_refill",
    13: "alloc_waive", 14: "recycle_cached", 15: "recycle_cache_full", 16: "recycle_ring",
    17: "recycle_ring_full", 18: "recycle_released_refcnt",
}  # fmt: skip
COUNTERS = tuple(STATS_ATTRS.values())
NEEDS = "Linux 6.8+ with CONFIG_PAGE_POOL_STATS"


@dataclass(slots=True)
class PagePool:
    """One page_pool: who owns it (device, NAPI) and its counters since it was created."""

    id: int
    ifindex: int | None = None  # absent for a pool of the loopback device or a detached one
    napi_id: int | None = None
    inflight: int | None = None  # pages handed out and not yet returned
    inflight_mem: int | None = None  # bytes
    detach_time: int | None = None  # seconds since the epoch when its device let go; None while in use
    stats: dict[str, int] = field(default_factory=dict)  # COUNTERS; empty without CONFIG_PAGE_POOL_STATS


@dataclass(slots=True)
class PagePools:
    pools: list[PagePool] = field(default_factory=list)
    unavailable: str | None = None  # why nothing (or no stats) could be read


def uint(raw: bytes) -> int:
    """NLA_UINT / u32 / u64 in host byte order."""
    return int.from_bytes(raw, sys.byteorder)


def decode_pool(attrs: dict[int, bytes]) -> PagePool | None:
    """A page-pool-get reply; None without an id."""
    values = {name: uint(attrs[kind]) for kind, name in POOL_ATTRS.items() if kind in attrs}
    return PagePool(**values) if "id" in values else None


def decode_stats(attrs: dict[int, bytes]) -> tuple[int, int | None, dict[str, int]] | None:
    """A page-pool-stats-get reply -> (pool id, ifindex, counters); None without an id."""
    info = attributes(attrs.get(STATS_INFO, b""))
    if 1 not in info:
        return None
    counters = {name: uint(attrs[kind]) for kind, name in STATS_ATTRS.items() if kind in attrs}
    return uint(info[1]), uint(info[2]) if 2 in info else None, counters


def _why(err: NetlinkRequestError, what: str) -> str:
    if err.errno in (errno.ENOENT, errno.EOPNOTSUPP, errno.EINVAL):
        return f"{what} unavailable on this kernel (needs {NEEDS}): {err}"
    return f"{what}: {err}"


def read_page_pools(get: GenericGet | None = None) -> PagePools:
    """Every page_pool of this network namespace with its stats; never raises for an old kernel."""
    own = get is None
    try:
        get = get or GenericGet()
    except OSError as err:
        return PagePools(unavailable=f"netlink: {err.strerror or err}")
    out = PagePools()
    try:
        try:
            pools = [p for p in map(decode_pool, get.dump(FAMILY, PAGE_POOL_GET, VERSION)) if p is not None]
        except NetlinkRequestError as err:
            out.unavailable = _why(err, "page-pool-get")
            return out
        out.pools = pools
        by_id = {p.id: p for p in pools}
        try:
            for reply in get.dump(FAMILY, PAGE_POOL_STATS_GET, VERSION):
                found = decode_stats(reply)
                if found is not None and found[0] in by_id:
                    by_id[found[0]].stats = found[2]
        except NetlinkRequestError as err:
            out.unavailable = _why(err, "page-pool-stats-get")
    finally:
        if own:
            get.close()
    return out


@dataclass(frozen=True, slots=True)
class RxQueueStats:
    """One RX queue's standard allocation counters; a field is None where the driver does not report it."""

    ifindex: int
    queue: int
    rx_alloc_fail: int | None = None
    rx_hw_drops: int | None = None


def decode_qstats(attrs: dict[int, bytes]) -> RxQueueStats | None:
    """A qstats-get reply for one RX queue; None for a TX queue or a reply without its queue."""
    if not {QSTATS_IFINDEX, QSTATS_QUEUE_ID} <= attrs.keys():
        return None
    if uint(attrs.get(QSTATS_QUEUE_TYPE, b"\0\0\0\0")) != QUEUE_TYPE_RX:
        return None
    values = {name: uint(attrs[kind]) for kind, name in QSTATS_ATTRS.items() if kind in attrs}
    return RxQueueStats(uint(attrs[QSTATS_IFINDEX]), uint(attrs[QSTATS_QUEUE_ID]), **values)


def read_rx_queue_stats(get: GenericGet) -> tuple[list[RxQueueStats], str | None]:
    """(each RX queue's counters, why none could be read)."""
    try:
        replies = get.dump(FAMILY, QSTATS_GET, VERSION, attribute(QSTATS_SCOPE, SCOPE_QUEUE.to_bytes(4, sys.byteorder)))
    except NetlinkRequestError as err:
        return [], f"qstats-get unavailable (needs Linux 6.9+): {err}"
    return [q for q in map(decode_qstats, replies) if q is not None], None
