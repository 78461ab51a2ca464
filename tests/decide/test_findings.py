"""Findings on the fake two-socket host: each check fires on its case and stays quiet otherwise."""

from __future__ import annotations

import json
import re
from pathlib import Path

import fakehost
import pytest
from conftest import cli, make_root

from irqtune.cli import EXIT_OK
from irqtune.findings import Measurements, Thresholds, check_ring_drops, check_rx_drops, find_all
from irqtune.host import Host
from irqtune.measure.inventory import Inventory, build_inventory
from irqtune.measure.rates import Rates, compute_rates
from irqtune.measure.snapshot import take_snapshot
from irqtune.measure.topology import read_topology
from irqtune.parse.netdev import parse_netdev
from irqtune.render import render_status
from irqtune.status import build_report, collect
from irqtune.table import Style


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
    assert found["irq-storm"] == ["interrupt storm on IRQ 36 (vda io 0): 250,000/s (no measure of the work it brings)"]
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


def status_json(*args: str) -> dict:
    result = cli(*args, "--json")
    assert result.exit_code == EXIT_OK, result.output
    return json.loads(result.stdout)


# -- 7d: interface rx drops -----------------------------------------------------------------------------------------

NETDEV = """Inter-|   Receive                                                |  Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed
    lo:  100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0
  eth1: 9000 900 0 1200 34 0 0 0 500 5 0 0 0 0 0 0
"""


def drops_measurements(per_s: dict[str, float] | None) -> Measurements:
    topology = read_topology(Host("/nonexistent"), fallback_online=[0, 1])
    rates = None
    if per_s is not None:
        rates = Rates(interval=1.0, cpus=[0, 1], netdev={n: {"rx_drop": r, "rx_fifo": 0.0} for n, r in per_s.items()})
    return Measurements(topology, Inventory(), rates, netdev=parse_netdev(NETDEV))


def test_rx_drops_sustained_is_a_warning_rare_is_info():
    sustained = list(check_rx_drops(drops_measurements({"eth1": 55.0, "lo": 0.0}), Thresholds()))
    assert [(f.severity, f.device) for f in sustained] == [("warning", "eth1")]
    assert sustained[0].message == "eth1 drops 55.0 received packets/s (drop+fifo; 1,234 since boot)"
    rare = list(check_rx_drops(drops_measurements({"eth1": 0.5}), Thresholds()))
    assert [(f.severity, f.code) for f in rare] == [("info", "rx-drops")] and "0.5 received packets/s" in rare[
        0
    ].message
    assert list(check_rx_drops(drops_measurements({"eth1": 0.0}), Thresholds())) == []  # old drops only: quiet


def test_ring_drops_advise_a_bigger_ring_only_below_the_maximum():
    base = drops_measurements({"eth1": 55.0})
    small = Measurements(base.topology, base.inventory, base.rates, rings={"eth1": {"rx": 512, "rx_max": 4096}})
    found = list(check_ring_drops(small, Thresholds()))
    assert [(f.severity, f.code, f.device) for f in found] == [("warning", "rx-ring-small", "eth1")]
    assert found[0].message == ("eth1 drops 55.0 received packets/s with its rx ring at 512 of the driver's maximum "
                                "4096: raise it (irqtune set net/eth1/rings/rx 1024)")  # fmt: skip
    full = Measurements(base.topology, base.inventory, base.rates, rings={"eth1": {"rx": 4096, "rx_max": 4096}})
    assert list(check_ring_drops(full, Thresholds())) == []  # at the maximum: nothing a ring can do
    assert list(check_ring_drops(base, Thresholds())) == []  # rings not read (a fake tree, veth)


def test_rx_drops_without_a_window_report_the_total(root):
    (root / "proc" / "net").mkdir(exist_ok=True)
    (root / "proc" / "net" / "dev").write_text(NETDEV)
    report = status_json("--root", str(root), "status", "--interval", "0")
    drops = [f for f in report["findings"] if f["code"] == "rx-drops"]
    assert drops == [{"severity": "info", "code": "rx-drops", "device": "eth1", "irq": None, "cpu": None,
                      "message": "eth1 dropped 1,234 received packets since boot (drop+fifo; no window)"}]  # fmt: skip


# -- 7e: all queues on one CPU from /proc/interrupts counts alone ---------------------------------------------------


def sosreport_interrupts(counts: dict[int, list[int]]) -> str:
    """A 4-CPU /proc/interrupts with an i40e NIC's queue IRQs (queue -> per-CPU counts), as a sosreport has it."""
    lines = ["           CPU0       CPU1       CPU2       CPU3", "  0:   40   0   0   0   IO-APIC   2-edge      timer"]
    for queue, row in counts.items():
        cells = "".join(f"{n:11d}" for n in row)
        lines.append(f" {50 + queue}:{cells}   PCI-MSI {524288 + queue}-edge      i40e-eth2-TxRx-{queue}")
    lines.append("LOC:       100        100        100        100   Local timer interrupts")
    return "\n".join(lines) + "\n"


def on_cpus(cpu_of_queue: dict[int, int], count: int = 9000, extra: list[int] | None = None) -> dict[int, list[int]]:
    return {
        q: [(count if c == cpu else 0) + (extra or [0] * 4)[c] for c in range(4)] for q, cpu in cpu_of_queue.items()
    }


SPREAD = {0: 0, 1: 1, 2: 2, 3: 3}


def test_nic_queues_on_one_cpu_found_from_counts_without_affinity_files(tmp_path):
    root = make_root(tmp_path / "one", {"proc/interrupts": sosreport_interrupts(on_cpus(dict.fromkeys(range(4), 2)))})
    found = [f for f in status_json("--root", str(root), "status", "-i", "0")["findings"]
             if f["code"] == "nic-queues-one-cpu"]  # fmt: skip
    assert [(f["device"], f["cpu"]) for f in found] == [("eth2", 2)]
    assert found[0]["message"] == (
        "all 4 queue IRQs of eth2 land on CPU 2 (evidence: their /proc/interrupts counts since boot; no affinity files)"
    )
    spread = make_root(tmp_path / "spread", {"proc/interrupts": sosreport_interrupts(on_cpus(SPREAD))})
    report = status_json("--root", str(spread), "status", "-i", "0")
    assert not [f for f in report["findings"] if f["code"] == "nic-queues-one-cpu"]


def test_nic_queues_on_one_cpu_from_the_window_counts(tmp_path):
    """Spread since boot, but in the window every queue IRQ's interrupts land on CPU 3: the window decides."""
    make_root(tmp_path, {"proc/interrupts": sosreport_interrupts(on_cpus(SPREAD))})
    host = Host(str(tmp_path))
    before = take_snapshot(host)
    (tmp_path / "proc" / "interrupts").write_text(sosreport_interrupts(on_cpus(SPREAD, extra=[0, 0, 0, 500])))
    after = take_snapshot(host)
    after.monotonic = before.monotonic + 1.0
    m = Measurements(
        read_topology(host, fallback_online=after.cpus),
        build_inventory(host, after.interrupts, after.affinity),
        compute_rates(before, after),
        after.interrupts,
    )
    found = [f.message for f in find_all(m) if f.code == "nic-queues-one-cpu"]
    assert found == [
        "all 4 queue IRQs of eth2 land on CPU 3 at 2,000/s "
        "(evidence: their /proc/interrupts counts in the window; no affinity files)"
    ]
