"""measure/nic_stats.py: the NIC driver's RX allocation failure counters, found in its `ethtool -S` names (tables
recorded from the drivers' string arrays), one count per device; read for the NICs behind a bus device."""

from __future__ import annotations

import errno

from conftest import make_root

from irqtune.host import Host
from irqtune.measure.memory import read_memory
from irqtune.measure.nic_stats import read_rx_alloc_failures, rx_alloc_failures
from irqtune.nl.ethtool_ioctl import EthtoolIoctlError

# Parts of real `ethtool -S` tables, the names as each driver's string array writes them
E1000E = {"rx_packets": 9120, "rx_no_buffer_count": 4, "rx_header_split": 0, "alloc_rx_buff_failed": 17,
          "tx_smbus": 0, "rx_dma_failed": 0}  # fmt: skip
IXGBE = {"rx_csum_offload_errors": 0, "alloc_rx_page_failed": 5, "alloc_rx_buff_failed": 2, "rx_no_dma_resources": 3}
I40E = {"rx_unknown_protocol": 0, "tx_linearize": 0, "rx_alloc_fail": 11, "rx_pg_alloc_fail": 30, "rx_cache_reuse": 9}
MLX5 = {"rx_oversize_pkts_sw_drop": 0, "rx_buff_alloc_err": 8, "rx_cqe_compress_blks": 0, "rx0_buff_alloc_err": 8}
BNXT = {"rx_total_buf_errors": 1, "rx_total_oom_discards": 6, "rx_total_netpoll_discards": 0}
IGB = {"rx_queue_0_packets": 100, "rx_queue_0_alloc_failed": 2, "rx_queue_1_alloc_failed": 3, "alloc_failed": 99}
VIRTIO = {"rx_drops": 0, "rx_xdp_packets": 0, "rx_kicks": 16187, "rx_queue_0_drops": 0}  # this host's eth0
VETH = {"peer_ifindex": 2, "rx_queue_0_xdp_packets": 202, "rx_queue_0_drops": 0}


def test_each_drivers_counters_map_to_one_count():
    assert rx_alloc_failures(E1000E) == 17
    assert rx_alloc_failures(IXGBE) == 7  # page and buffer failures are different events: summed
    assert rx_alloc_failures(I40E) == 41
    assert rx_alloc_failures(MLX5) == 8  # the total, not also its per-channel rx0_buff_alloc_err
    assert rx_alloc_failures(BNXT) == 6
    assert rx_alloc_failures(IGB) == 5  # per-queue only: summed


def test_drivers_without_such_a_counter_have_none():
    assert rx_alloc_failures(VIRTIO) is None and rx_alloc_failures(VETH) is None and rx_alloc_failures({}) is None


def fake_nics(tmp_path):
    files = {"sys/class/net/eth1/device/vendor": "0x8086\n", "sys/class/net/eth2/device/vendor": "0x1af4\n",
             "sys/class/net/veth7/ifindex": "7\n", "sys/class/net/eth3/device/vendor": "0x8086\n"}  # fmt: skip
    return Host(str(make_root(tmp_path, files)))


def test_only_nics_with_a_bus_device_and_a_counter_are_read(tmp_path):
    tables = {"eth1": E1000E, "eth2": VIRTIO}
    asked = []

    def reader(name: str):
        asked.append(name)
        if name == "eth3":
            raise EthtoolIoctlError("eth3: driver has no statistics (ethtool -S)", errno.EOPNOTSUPP)
        return tables[name]

    assert read_rx_alloc_failures(fake_nics(tmp_path), reader) == {"eth1": 17}
    assert asked == ["eth1", "eth2", "eth3"]  # veth7 has no device: never asked


def test_a_fake_root_reads_no_driver_statistics(tmp_path):
    assert read_memory(fake_nics(tmp_path)).nic_rx_alloc_failures == {}  # the ioctl acts on the running kernel only
