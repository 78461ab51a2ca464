"""Netlink over a plain socket (nl/raw.py): ethtool reads and link events without pyroute2, byte for byte the
kernel's uapi; the same values and refusals as pyroute2's client."""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys

import pytest
from conftest import real_linux, require

from irqtune.nl import ethtool as nl
from irqtune.nl.raw import HEADER, IFINFO, RTM_DELLINK, RTM_NEWLINK, attribute, attributes, error_of, link_events


def link_message(kind: int, name: bytes, flags: int) -> bytes:
    body = IFINFO.pack(0, 1, 7, flags, 0) + attribute(3, name + b"\0")
    return HEADER.pack(HEADER.size + len(body), kind, 0, 0, 0) + body


def test_link_messages_say_which_device_went_up_down_or_away():
    data = link_message(RTM_NEWLINK, b"eth1", 1) + link_message(RTM_NEWLINK, b"eth2", 0)
    data += link_message(RTM_DELLINK, b"veth9", 0) + link_message(24, b"route", 0)  # RTM_NEWROUTE: not a link
    assert link_events(data) == [("eth1", "up"), ("eth2", "down"), ("veth9", "removed")]
    assert link_events(data[:-3]) == [("eth1", "up"), ("eth2", "down"), ("veth9", "removed")]  # truncated tail


def test_attributes_are_padded_and_a_truncated_one_is_ignored():
    packed = attribute(2, b"abc") + attribute(0x8000 | 5, b"\1\0\0\0")
    assert len(packed) == 16
    assert attributes(packed) == {2: b"abc", 5: b"\1\0\0\0"}
    assert attributes(packed + struct.pack("=HH", 40, 9)) == {2: b"abc", 5: b"\1\0\0\0"}


def test_an_error_carries_the_kernels_extended_ack():
    request = HEADER.pack(HEADER.size + 8, 30, 1, 1, 0) + b"\0" * 8  # echoed back whole (not capped)
    payload = struct.pack("=i", -errno.ENODEV) + request + attribute(1, b"no device matches name\0")
    assert error_of(payload, 0x200) == (errno.ENODEV, "no device matches name")
    assert error_of(payload, 0) == (errno.ENODEV, os.strerror(errno.ENODEV))


def test_coalescing_and_channels_read_as_pyroute2_reads_them():
    require(real_linux() and os.path.exists("/sys/class/net/eth0"), "needs this host's eth0")
    with nl.Ethtool() as raw, nl.Ethtool() as pyroute2:  # read only: eth0 is never written
        pyroute2._get = None  # the pyroute2 path, as writes and other namespaces take it
        assert raw.get_coalesce("eth0") == pyroute2.get_coalesce("eth0")
        assert raw.get_channels("eth0") == pyroute2.get_channels("eth0")
        for device, code in (("lo", errno.EOPNOTSUPP), ("nosuchdev0", errno.ENODEV)):
            with pytest.raises(nl.EthtoolError) as ours:
                raw.get_coalesce(device)
            with pytest.raises(nl.EthtoolError) as theirs:
                pyroute2.get_coalesce(device)
            assert ours.value.errno == theirs.value.errno == code
            assert str(ours.value) == str(theirs.value)


@pytest.mark.slow
def test_reading_coalescing_does_not_import_pyroute2():
    require(real_linux() and os.path.exists("/sys/class/net/eth0"), "needs this host's eth0")
    program = ("import sys; from irqtune.nl.ethtool import Ethtool; c = Ethtool(); c.get_coalesce('eth0'); "
               "c.get_channels('eth0'); c.close(); print('pyroute2' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
