"""The ethtool ioctl (nl/ethtool_ioctl.py): struct layouts as include/uapi/linux/ethtool.h has them, device names
refused before any ioctl, one-line errors, and a veth's private statistics (`ethtool -S`) read in a namespace
the test creates and moving under traffic."""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import subprocess
import sys

import pytest
from conftest import real_linux, require
from netns import can_make_namespaces, veth_pair

from irqtune.nl import ethtool_ioctl as ei
from irqtune.nl.ethtool_ioctl import Guarded


def test_layouts_match_the_uapi():
    assert ei.IFREQ.size == 40 and ei.SSET_INFO.size == 20 and ei.GSTRINGS.size == 12 and ei.GSTATS.size == 8
    assert ei.RXFH.size == 24  # cmd, rss_context, indir_size, key_size, hfunc, input_xfrm, rsvd8[2], rsvd32
    assert (ei.ETHTOOL_GSSET_INFO, ei.ETHTOOL_GSTRINGS, ei.ETHTOOL_GSTATS) == (0x37, 0x1B, 0x1D)
    assert (ei.ETHTOOL_GRSSH, ei.ETHTOOL_SRSSH, ei.SIOCETHTOOL) == (0x46, 0x47, 0x8946)


def test_strings_are_nul_padded_32_byte_names():
    raw = b"peer_ifindex".ljust(32, b"\0") + b"rx_queue_0_xdp_packets".ljust(32, b"\0")
    assert ei.decode_strings(raw, 2) == ["peer_ifindex", "rx_queue_0_xdp_packets"]


@pytest.mark.parametrize("name", ["", "a/b", "x" * 16, "..", "eth0\0", "bad name", 7])
def test_untrusted_device_names_are_refused_before_any_ioctl(name, monkeypatch):
    monkeypatch.setattr(ei.fcntl, "ioctl", lambda *a: pytest.fail("ioctl reached"))
    with pytest.raises(ei.EthtoolIoctlError) as caught:
        ei.get_stats(name)
    assert caught.value.errno == errno.EINVAL and "is not a network device name" in str(caught.value)


def test_kernel_refusals_are_one_line_each():
    require(real_linux(), "needs a real Linux kernel")
    with pytest.raises(ei.EthtoolIoctlError, match=r"^lo: driver has no statistics \(ethtool -S\)$"):
        ei.get_stats("lo")
    with pytest.raises(ei.EthtoolIoctlError, match=r"^lo: driver has no RSS \(ethtool -x\)$"):
        ei.get_rss("lo")
    with pytest.raises(ei.EthtoolIoctlError, match="no such network device"):
        ei.get_stats("irqtnosuch0")


READ = "import json, sys; from irqtune.nl.ethtool_ioctl import get_stats; print(json.dumps(get_stats(sys.argv[1])))"


UDP_BURST = """
import socket
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(200):
    sock.sendto(b"x" * 64, ({ip!r}, 9))
"""


def stats_in(ns: str, dev: str) -> dict[str, int]:
    argv = ["ip", "netns", "exec", ns, sys.executable, "-c", READ, dev]
    return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


@pytest.mark.slow
def test_veth_private_statistics_are_read_and_move_under_traffic():
    """veth's strings (drivers/net/veth.c: peer_ifindex, then rx_queue_N_* / tx_queue_N_*). With GRO on the
    receiver and TSO off on the sender (veth_skb_is_eligible_for_gro), received packets go through veth's NAPI,
    which counts them in rx_queue_0_xdp_packets: 200 UDP datagrams are sent."""
    require(can_make_namespaces() is None, str(can_make_namespaces()))
    with veth_pair(gro=True) as pair:
        pair.run(pair.sender_ns, "ethtool", "-K", pair.sender, "tso", "off")  # test scaffolding, as netns.py
        before = stats_in(pair.receiver_ns, pair.receiver)
        assert {"peer_ifindex", "rx_queue_0_xdp_packets", "rx_queue_0_drops"} <= set(before), sorted(before)
        assert before["peer_ifindex"] > 0
        sender = pair.spawn(pair.sender_ns, UDP_BURST.format(ip=pair.receiver_ip))
        assert sender.wait(timeout=60) == 0
        after = stats_in(pair.receiver_ns, pair.receiver)
        assert after["rx_queue_0_xdp_packets"] >= before["rx_queue_0_xdp_packets"] + 200, (before, after)


def test_a_kernel_copy_past_the_request_buffer_stops_at_the_guard_page():
    """GSTRINGS and GSTATS write as many entries as the driver has now: a list that grew since it was counted
    must fault at the guard page (EFAULT, read again), never write over the agent's own memory. read(2) from
    /dev/zero copies to user space as the ioctl does: asked for more than the buffer, it stops at the guard."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
    libc.read.restype = ctypes.c_ssize_t
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        with Guarded(b"\xff" * 8, 100) as buf:
            assert buf.size == mmap.PAGESIZE and buf.raw[:8] == b"\xff" * 8
            done = libc.read(fd, ctypes.addressof(buf.buffer), buf.size + 4096)
            assert done == buf.size or (done == -1 and ctypes.get_errno() == errno.EFAULT)
            assert buf.raw == bytes(buf.size)  # zeroed up to the guard, not past it (or this process would be dead)
    finally:
        os.close(fd)
