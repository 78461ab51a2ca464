"""RX buffer allocation failures as the NIC driver counts them in its private statistics (`ethtool -S`, read by
the ethtool ioctl: nl/ethtool_ioctl.py), one count per device.

A driver that cannot get a page or buffer for its RX ring in NAPI (GFP_ATOMIC) counts it under its own name;
the netdev qstats rx-alloc-fail (6.9+) carries the same for the few drivers that report qstats. The names below
are the drivers' ethtool strings, each from the driver source named beside it (Linux 6.x):

    alloc_rx_buff_failed     e1000e (drivers/net/ethernet/intel/e1000e/ethtool.c), ixgbe (ixgbe/ixgbe_ethtool.c),
                             ixgbevf (ixgbevf/ethtool.c)
    alloc_rx_page_failed     ixgbe (ixgbe/ixgbe_ethtool.c), ixgbevf (ixgbevf/ethtool.c)
    rx_alloc_fail            i40e (i40e/i40e_ethtool.c), ice (ice/ice_ethtool.c): rx_buf_failed
    rx_pg_alloc_fail         i40e (i40e/i40e_ethtool.c), ice (ice/ice_ethtool.c): rx_page_failed
    rx_buff_alloc_err        mlx5 (mellanox/mlx5/core/en_stats.c, the sum over channels)
    rx_total_oom_discards    bnxt_en (broadcom/bnxt/bnxt_ethtool.c, bnxt_ring_err_stats_arr)
    rx_queue_N_alloc_failed  igb (igb/igb_ethtool.c), igc (igc/igc_ethtool.c): per queue, summed

virtio_net, veth and e1000 (the old driver's alloc_rx_buff_failed aside) count no such thing: their devices are
left out. Only devices with a `device` link (a bus device behind them) are read: a host's thousands of veth
and bridge ports have no RX buffers of their own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping

from ..host import Host
from ..nl.errors import NetlinkRequestError

log = logging.getLogger(__name__)

TOTALS = frozenset(("alloc_rx_buff_failed", "alloc_rx_page_failed", "rx_alloc_fail", "rx_pg_alloc_fail",
                    "rx_buff_alloc_err", "rx_total_oom_discards"))  # fmt: skip
PER_QUEUE = re.compile(r"rx_queue_[0-9]+_alloc_failed\Z")  # igb, igc
MAX_DEVICES = 256  # a pass reads at most this many NICs


def rx_alloc_failures(stats: Mapping[str, int]) -> int | None:
    """The driver's RX buffer/page allocation failures, summed over its counters; None when it has none. Per-queue
    counters count only where the driver has no total (so nothing is counted twice)."""
    totals = [value for name, value in stats.items() if name in TOTALS]
    if totals:
        return sum(totals)
    queues = [value for name, value in stats.items() if PER_QUEUE.match(name)]
    return sum(queues) if queues else None


def nic_names(host: Host) -> list[str]:
    """The network devices with a bus device behind them (PCI, virtio, platform), sorted, at most MAX_DEVICES."""
    base = host.sys("class", "net")
    return sorted(name for name in host.entries(base) if host.has(base, name, "device"))[:MAX_DEVICES]


def read_rx_alloc_failures(host: Host, reader: Callable[[str], Mapping[str, int]] | None = None) -> dict[str, int]:
    """NIC -> its driver's RX allocation failures so far, for the NICs whose driver counts them. `reader` is
    the statistics source (the ethtool ioctl on the running kernel); nothing here raises."""
    if reader is None:
        from ..nl.ethtool_ioctl import get_stats

        reader = get_stats
    out: dict[str, int] = {}
    for name in nic_names(host):
        try:
            count = rx_alloc_failures(reader(name))
        except (NetlinkRequestError, OSError) as err:
            log.debug("%s: ethtool -S: %s", name, err)
            continue
        if count is not None:
            out[name] = count
    return out
