"""In the guest: coalescing on a real e1000e over ethtool netlink. Values are checked with ethtool (the tool
users trust, not irqtune's own reader), and the effect is measured: QEMU emulates e1000e's interrupt
throttle (ITR), so a larger rx-usecs must show as fewer interrupts per packet under the same load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import cli
from guest import ethtool_rx_usecs, interrupts_per_packet, udp_load

pytestmark = pytest.mark.vm

TRIED = (0, 100, 1000, 10000)  # rx-usecs: ITR off, then minimum gaps of 100 µs, 1 ms and 10 ms


def _knob(wire) -> str:
    return f"net/{wire.receiver}/coalesce/rx-usecs"


def test_get_set_restore_over_netlink(wire, tmp_path):
    before = ethtool_rx_usecs(wire.receiver)
    code, out, err = cli("get", _knob(wire))
    assert (code, out.strip()) == (0, str(before)), err
    code, out, err = cli("set", _knob(wire), "250", state=tmp_path)
    assert code == 0, out + err
    assert ethtool_rx_usecs(wire.receiver) == 250
    code, out, err = cli("restore", state=tmp_path)
    assert code == 0, out + err
    assert ethtool_rx_usecs(wire.receiver) == before


def _drops_and_squeezes(dev: str) -> int:
    fields = next(line.split(":", 1)[1].split() for line in Path("/proc/net/dev").read_text().splitlines()
                  if line.strip().startswith(dev + ":"))  # fmt: skip
    squeezed = sum(int(line.split()[2], 16) for line in Path("/proc/net/softnet_stat").read_text().splitlines())
    return int(fields[3]) + int(fields[4]) + squeezed  # drop, fifo; time_squeeze of every CPU


def test_interrupts_per_packet_fall_as_rx_usecs_rises(wire, tmp_path, record):
    """Under the same UDP load, each rx-usecs set through irqtune: interrupts per packet on the rx IRQ. A
    minimum gap of G µs allows at most 1e6/G interrupts per second (the throttle QEMU emulates)."""
    seen = {}
    try:
        with udp_load(wire):
            for usecs in TRIED:
                code, out, err = cli("set", _knob(wire), str(usecs), state=tmp_path)
                assert code == 0 and ethtool_rx_usecs(wire.receiver) == usecs, out + err
                interrupts_per_packet(wire, 1.0)  # settle
                lost = _drops_and_squeezes(wire.receiver)
                irq_rate, pps, ipp = interrupts_per_packet(wire, 4.0)
                lost = (_drops_and_squeezes(wire.receiver) - lost) / 4.0
                seen[usecs] = {"irq_per_s": round(irq_rate), "pkt_per_s": round(pps), "irq_per_pkt": round(ipp, 4),
                               "drops_squeezes_per_s": round(lost)}  # fmt: skip
    finally:
        assert cli("restore", state=tmp_path).exit_code == 0
    record(f"{os.uname().release} interrupts per packet by rx-usecs", seen)
    assert all(s["pkt_per_s"] > 500 for s in seen.values()), seen
    assert seen[1000]["irq_per_pkt"] < 0.7 * seen[0]["irq_per_pkt"], seen
    assert seen[10000]["irq_per_pkt"] < seen[1000]["irq_per_pkt"], seen
    for usecs in (1000, 10000):
        assert seen[usecs]["irq_per_s"] <= 1.5e6 / usecs, (usecs, seen)  # seen: 1.1-1.2 x the nominal rate


def test_values_that_are_modes_or_invalid_are_refused_or_named(wire, tmp_path):
    """e1000e takes rx-usecs 2 and 5..9 as invalid (EINVAL): irqtune refuses with the kernel's answer and
    leaves the NIC as it was."""
    before = ethtool_rx_usecs(wire.receiver)
    for bad in ("2", "7"):
        code, out, err = cli("set", _knob(wire), bad, state=tmp_path)
        assert code == 3, (bad, out, err)
        assert ethtool_rx_usecs(wire.receiver) == before
    assert cli("restore", state=tmp_path).exit_code == 0
