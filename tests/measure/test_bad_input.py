"""Bad input never gives a traceback: one clear message, the rest still measured."""

from __future__ import annotations

import json
import os
import time

import fakehost
import pytest
from conftest import cli
from test_rates import snap, table

from irqtune.cli import EXIT_OK, EXIT_PARTIAL
from irqtune.measure.inventory import _remapping
from irqtune.measure.rates import compute_rates, counter_delta
from irqtune.measure.topology import Topology, parse_cmdline
from irqtune.parse.common import CpuListError, parse_cpulist
from irqtune.parse.interrupts import parse_interrupts


@pytest.fixture
def root(tmp_path):
    return fakehost.build(tmp_path / "host")


def test_damaged_state_file_is_ignored(root):
    state = root / "var" / "lib" / "irqtune"
    state.mkdir(parents=True)
    (state / "managed-irqs.json").write_text('{"boot_id":"boot-1","irqs":{"36":{"managed":true,"actions":5}}}')
    code, out, err = cli("status", "-i", "0", "--json", root=root)
    assert code == EXIT_OK, err
    assert json.loads(out)["devices"]


def test_irq_number_with_leading_zero_is_a_problem(root):
    path = root / "proc" / "interrupts"
    path.write_text(path.read_text().replace("  36:", " 036:"))
    code, out, err = cli("status", "-i", "0", "--json", root=root)
    assert code == EXIT_PARTIAL
    assert "expected an IRQ number, got '036'" in err
    assert all(e["irq"] != 36 for e in json.loads(out)["busiest_irqs"])


def test_escaping_symlinks_become_problems(root, tmp_path):
    outside = tmp_path / "outside"
    (outside / "36").mkdir(parents=True)
    (outside / "36" / "smp_affinity_list").write_text("0\n")
    irq = root / "proc" / "irq" / "36"
    for f in irq.iterdir():
        f.unlink()
    irq.rmdir()
    os.symlink(outside / "36", irq)
    os.symlink("/etc", root / "sys" / "class" / "nvme" / "nvme9")
    os.symlink(outside, root / "proc" / "sys" / "kernel" / "hostname")
    code, out, _ = cli("status", "-i", "0", "--json", root=root)
    assert code == EXIT_PARTIAL
    report = json.loads(out)
    refused = [f"{p['file']}: {p['message']}" for p in report["problems"]]  # the refused path is the FILE
    assert any("proc/irq/36" in m and "outside" in m for m in refused), refused
    assert any("nvme9" in m for m in refused)
    assert report["host"]["hostname"] == ""
    assert {d["name"] for d in report["devices"]} == {"ens1f0", "nvme0", "eth0", "vda"}


def test_huge_cpu_range_is_refused_quickly(root):
    (root / "proc" / "irq" / "36" / "smp_affinity_list").write_text("0-300000000\n")
    start = time.monotonic()
    code, _, err = cli("snapshot", "--json", root=root)
    assert time.monotonic() - start < 10
    assert code == EXIT_PARTIAL and "/proc/irq/36/smp_affinity_list:1: CPU 300000000" in err
    with pytest.raises(CpuListError):
        parse_cpulist("1_0")


def test_cmdline_typos_are_reported_and_n_all_understood(root):
    (root / "proc" / "cmdline").write_text("isolcpus=abc nohz_full=2-N rcu_nocbs=all\n")
    (root / "sys" / "devices" / "system" / "cpu" / "nohz_full").unlink()  # else sysfs, the kernel's word, wins
    code, out, err = cli("status", "-i", "0", "--json", root=root)
    assert code == EXIT_PARTIAL and "isolcpus=" in err
    topo = json.loads(out)["topology"]
    assert topo["nohz_full"] == list(range(2, 16)) and topo["rcu_nocbs"] == list(range(16))
    t = Topology()
    parse_cmdline("isolcpus=managed_irq,2-N", t, last=7)
    assert t.isolcpus == [2, 3, 4, 5, 6, 7]


def test_problems_are_reported_once_with_a_window(root):
    path = root / "proc" / "interrupts"
    path.write_text(path.read_text() + "garbage line\n")
    code, out, err = cli("status", "-i", "0.05", "--json", root=root)
    assert code == EXIT_PARTIAL
    assert err.count("found no ':'") == 1
    assert len(json.loads(out)["problems"]) == 1


def test_fifo_under_root_does_not_hang(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "sys").mkdir()
    os.mkfifo(tmp_path / "proc" / "interrupts")
    (tmp_path / "proc" / "softirqs").write_text("    CPU0\n   TIMER: 5\n")
    code, out, _ = cli("snapshot", "--json", root=tmp_path)
    assert code == EXIT_OK
    assert "not a regular file" in json.loads(out)["unavailable"]["/proc/interrupts"]


def test_driver_rerequesting_its_vector_is_not_a_storm():
    head = "   CPU0 CPU1"
    a = snap(0, table(head, " 40: 50000000 0 IR-PCI-MSI 1-edge"))
    b = snap(1, table(head, " 40: 50000100 0 IR-PCI-MSI 1-edge i40e-eth0-TxRx-0"))
    rates = compute_rates(a, b)
    assert rates.appeared == ["40"] and rates.interrupts["40"].total == 100.0


def test_reset_of_a_large_counter_is_not_a_wrap():
    assert counter_delta(3_000_000_000, 500, interval=1.0) == 500
    assert counter_delta(4_294_967_000, 500, interval=1.0) == 796


def test_amd_iommu_vector_does_not_make_remapping_partial():
    text = (
        "   CPU0\n  0: 1 IR-IO-APIC 2-edge timer\n 25: 0 PCI-MSI 4096-edge AMD-Vi\n 30: 9 IR-PCI-MSI 1-edge nvme0q1\n"
    )
    assert _remapping(parse_interrupts(text)) == "on"
    assert _remapping(parse_interrupts(text.replace("IR-PCI-MSI", "PCI-MSI"))) == "partial"


def test_counts_with_leading_zeros_are_still_counts():
    t = parse_interrupts("   CPU0 CPU1\n 40: 007 00 PCI-MSI 1-edge eth0\n")
    assert t.rows["40"].counts == (7, 0) and not t.problems
