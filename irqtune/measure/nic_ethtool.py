"""Each NIC's ring sizes and RSS (indirection table, hash function) over ethtool netlink, read only.

Read for `status` and the ring advice (findings.check_ring_drops): a NIC dropping received packets with its rx
ring below the driver's maximum can hold a longer burst. A driver without rings or RSS (veth, lo), a kernel
without RSS_GET (before 6.4) or a root with no netlink (a fake tree) leaves that part out; nothing here raises.
"""

from __future__ import annotations

import logging

from ..host import Host, NoNetlink
from ..nl.errors import NetlinkRequestError

log = logging.getLogger(__name__)


def read_nic_ethtool(host: Host, names: list[str]) -> dict[str, dict]:
    """NIC -> {"rings": {rx, rx_max, ...}, "rss": {hfunc, indir, hkey}}, each part only where the driver answers."""
    if not names:
        return {}
    try:
        client = host.ethtool()
    except (NoNetlink, OSError) as err:
        log.debug("no ethtool netlink: %s", err)
        return {}
    out: dict[str, dict] = {}
    with client:
        for name in names:
            entry = {key: value for key in ("rings", "rss") if (value := _get(client, key, name))}
            if entry:
                out[name] = entry
    return out


def _get(client, key: str, name: str) -> dict:
    try:
        return getattr(client, f"get_{key}")(name)
    except (NetlinkRequestError, OSError) as err:
        log.debug("%s: %s: %s", name, key, err)
        return {}


def rss_summary(rss: dict) -> dict:
    """What a person reads of RSS: the hash function, the queues the table spreads over, the table's size."""
    indir = rss.get("indir") or []
    return {"hfunc": rss.get("hfunc") or None, "queues": sorted(set(indir)), "table_size": len(indir),
            "hkey": rss.get("hkey")}  # fmt: skip
