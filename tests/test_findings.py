"""Findings on the fake two-socket host: each check fires on its case and stays quiet otherwise."""

from __future__ import annotations

import re
from pathlib import Path

import fakehost
import pytest

from irqtune.findings import Measurements, find_all
from irqtune.host import Host
from irqtune.measure.inventory import build_inventory
from irqtune.measure.rates import compute_rates
from irqtune.measure.snapshot import take_snapshot
from irqtune.measure.topology import read_topology
from irqtune.render import Style, render_status
from irqtune.status import build_report, collect


@pytest.fixture
def root(tmp_path) -> Path:
    return fakehost.build(tmp_path / "host")


def bump(root: Path, irq_key: str, deltas: dict[int, int]) -> None:
    """Add counts to one row of the fake /proc/interrupts (what a second reading would show)."""
    path = root / "proc" / "interrupts"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        key, _, rest = line.partition(":")
        if key.strip() == irq_key:
            tokens = rest.split(None, fakehost.CPUS)
            counts = [int(t) + deltas.get(c, 0) for c, t in enumerate(tokens[: fakehost.CPUS])]
            lines[i] = f"{key}:" + "".join(f"{n:10d} " for n in counts) + (tokens[fakehost.CPUS :] or [""])[0]
    path.write_text("\n".join(lines) + "\n")


def measure(root: Path, changes=()) -> Measurements:
    host = Host(str(root))
    before = take_snapshot(host)
    for key, deltas in changes:
        bump(root, key, deltas)
    after = take_snapshot(host)
    after.monotonic = before.monotonic + 1.0
    rates = compute_rates(before, after) if changes else None
    inv = build_inventory(host, after.interrupts, after.affinity)
    return Measurements(read_topology(host), inv, rates)


def codes(m: Measurements) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in find_all(m):
        out.setdefault(f.code, []).append(f.message)
    return out


def test_static_findings_from_affinity(root):
    found = codes(measure(root))
    assert "nic-queues-one-cpu" not in found  # eth0's rx 0 and tx 0 share CPU 2: one queue pair, no finding
    assert any(re.match(r"NIC ens1f0 IRQs on a remote NUMA node \(device on node 1\): IRQ 100 on CPU 0, IRQ 101", m)
               for m in found["remote-numa"])  # fmt: skip
    assert found["irq-on-isolated-cpu"] == ["IRQ 103 (ens1f0 rxtx 3) serviced on isolated CPU 6 (effective affinity)"]
    assert found["remapping-off"]
    assert "irq-storm" not in found and "nohz-full-ticking" not in found


def test_storm_and_isolated_cpu_from_rates(root):
    found = codes(measure(root, [("36", {1: 250_000}), ("122", {7: 500}), ("LOC", {6: 1000})]))
    assert found["irq-storm"] == ["interrupt storm on IRQ 36 (vda io 0): 250,000/s"]
    assert "IRQ 122 (nvme0 io 2) serviced on isolated CPU 7 at 500/s" in found["irq-on-isolated-cpu"]
    assert found["nohz-full-ticking"] == ["nohz_full CPU 6 still takes 1000 timer interrupts/s"]
    assert "remote-numa" in found and not any("nvme0" in m for m in found["remote-numa"])  # managed spread


def test_all_queues_on_one_cpu(root):
    for irq in (100, 101, 102, 103):
        (root / "proc" / "irq" / str(irq) / "effective_affinity_list").write_text("4\n")
    found = codes(measure(root))
    assert found["nic-queues-one-cpu"] == ["all 4 queue IRQs of ens1f0 land on CPU 4"]
    assert "remote-numa" not in found  # CPU 4 is on the NIC's node


def test_quiet_host_has_no_warnings(tmp_path):
    root = fakehost.build(tmp_path / "quiet", cmdline="ro quiet")
    for name in ("isolated", "nohz_full"):
        (root / "sys" / "devices" / "system" / "cpu" / name).write_text("\n")
    for irq in (38, 39):
        (root / "proc" / "irq" / str(irq) / "effective_affinity_list").write_text(f"{irq - 38}\n")
    for irq in (100, 101):
        (root / "proc" / "irq" / str(irq) / "effective_affinity_list").write_text(f"{irq - 96}\n")
    (root / "proc" / "irq" / "122" / "effective_affinity_list").write_text("1\n")  # nvme0 is on node 0
    found = codes(measure(root))
    assert set(found) == {"remapping-off"}


def test_status_report_and_text_agree(root, tmp_path):
    collected = collect(Host(str(root)), 0, str(tmp_path / "state"))
    report = build_report(collected, top=3)
    assert [e["irq"] for e in report["busiest_irqs"]] == [100, 101, 102]
    assert report["topology"]["housekeeping"] == [0, 1, 2, 3, 4, 5]
    text = render_status(report, Style(False))
    for finding in report["findings"]:
        assert finding["message"] in text
    assert "isolated 6-7, nohz_full 6-7, isolcpus 6-7, rcu_nocbs 6-7; housekeeping 0-5" in text
    coloured = render_status(report, Style(True))
    assert "\033[33m" in coloured  # warnings in yellow on a terminal
