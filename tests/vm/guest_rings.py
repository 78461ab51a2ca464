"""In the guest: ring sizes on a real e1000e over ethtool netlink (RINGS_GET/RINGS_SET). Values are checked with
`ethtool -g` (the tool users trust, not irqtune's own reader): set, read back, refused above the driver's maximum,
restored by `irqtune restore`; and the RSS/rings view of `irqtune status --json` agrees with ethtool."""

from __future__ import annotations

import json

import pytest
from conftest import cli
from guest import sh

pytestmark = pytest.mark.vm


def ethtool_rings(dev: str) -> dict[str, dict[str, int]]:
    """`ethtool -g DEV`: {"max": {"RX": n, "TX": n, ...}, "current": {...}} (numbers only; n/a left out)."""
    out, section = {"max": {}, "current": {}}, None
    for line in sh("ethtool", "-g", dev).splitlines():
        if line.startswith("Pre-set maximums"):
            section = "max"
        elif line.startswith("Current hardware settings"):
            section = "current"
        elif section and ":" in line:
            name, value = (part.strip() for part in line.split(":", 1))
            if value.isdigit():
                out[section][name] = int(value)
    return out


def test_rx_ring_set_read_back_refused_above_the_maximum_and_restored(wire, tmp_path):
    dev = wire.receiver
    before = ethtool_rings(dev)
    maximum, current = before["max"]["RX"], before["current"]["RX"]
    knob = f"net/{dev}/rings/rx"
    code, out, err = cli("get", knob)
    assert (code, out.strip()) == (0, str(current)), err
    target = 512 if current != 512 else 1024
    code, out, err = cli("set", knob, str(target), state=tmp_path)
    assert code == 0, out + err
    assert ethtool_rings(dev)["current"]["RX"] == target
    code, out, err = cli("set", knob, str(maximum + 8), state=tmp_path)
    assert code != 0 and str(maximum) in (out + err), out + err  # refused before writing, the maximum named
    assert ethtool_rings(dev)["current"]["RX"] == target
    code, out, err = cli("status", "--no-probe", "--json", "-i", "0")
    shown = next(d for d in json.loads(out)["devices"] if d["name"] == dev)["rings"]
    assert (shown["rx"], shown["rx_max"]) == (target, maximum), shown  # status agrees with ethtool -g
    assert cli("restore", state=tmp_path).exit_code == 0
    assert ethtool_rings(dev)["current"]["RX"] == current
