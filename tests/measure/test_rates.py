"""Rates between two snapshots: wraps, resets, IRQs and CPUs that come and go."""

from __future__ import annotations

import pytest
from conftest import fixture_text

from irqtune.measure.rates import compute_rates, counter_delta
from irqtune.measure.snapshot import Snapshot
from irqtune.parse.interrupts import parse_interrupts
from irqtune.parse.softirqs import parse_softirqs
from irqtune.parse.softnet import parse_softnet
from irqtune.parse.stat import parse_stat

U32 = 1 << 32


def snap(t: float, interrupts: str = "", softirqs: str = "", softnet: str = "", stat: str = "") -> Snapshot:
    s = Snapshot(taken_at=t, monotonic=t, root="/")
    s.interrupts = parse_interrupts(interrupts) if interrupts else None
    s.softirqs = parse_softirqs(softirqs) if softirqs else None
    s.softnet = parse_softnet(softnet, online=s.cpus or None) if softnet else None
    s.stat = parse_stat(stat) if stat else None
    return s


def table(header: str, *rows: str) -> str:
    return "\n".join((header, *rows)) + "\n"


def test_counter_delta_wraps_and_resets():
    assert counter_delta(10, 25) == 15
    assert counter_delta(U32 - 5, 10) == 15  # wrapped
    assert counter_delta(1000, 10) == 10  # reset: re-requested IRQ counts from zero


def test_interrupt_rates_per_cpu_id():
    head = "      CPU0 CPU2"
    a = snap(0.0, table(head, " 40:  100  4294967290  PCI-MSI 1-edge  eth0-TxRx-0", "LOC: 10 20 Local timer"))
    b = snap(2.0, table(head, " 40:  300  4          PCI-MSI 1-edge  eth0-TxRx-0", "LOC: 30 60 Local timer"))
    rates = compute_rates(a, b)
    assert rates.interval == 2.0
    assert rates.interrupts["40"].per_cpu == {0: 100.0, 2: 5.0}
    assert rates.interrupts["LOC"].total == 30.0
    assert rates.cpus == [0, 2]


def test_irqs_that_appear_vanish_or_change_owner():
    head = "   CPU0 CPU1"
    a = snap(0, table(head, " 40: 5 5 PCI-MSI 1-edge nvme0q1", " 41: 9 9 PCI-MSI 2-edge nvme0q2", "ERR: 3"))
    b = snap(1, table(head, " 40: 2 0 PCI-MSI 1-edge eth0-TxRx-0", " 42: 7 1 PCI-MSI 3-edge nvme0q3", "ERR: 5"))
    rates = compute_rates(a, b)
    assert rates.appeared == ["40", "42"]
    assert rates.vanished == ["41"]
    assert rates.interrupts["40"].per_cpu == {0: 2.0, 1: 0.0}  # new owner: counts since it appeared
    assert rates.interrupts["42"].total == 8.0
    assert rates.interrupts["ERR"].total == 2.0


def test_cpu_going_offline_and_coming_online():
    a = snap(0, table("   CPU0 CPU1 CPU2", "LOC: 1 1 1 x"))
    b = snap(1, table("   CPU0 CPU2 CPU3", "LOC: 4 9 5 x"))
    rates = compute_rates(a, b)
    assert rates.cpus_removed == [1] and rates.cpus_added == [3]
    assert rates.interrupts["LOC"].per_cpu == {0: 3.0, 2: 8.0}


def test_real_series_from_netutils():
    a = snap(0, fixture_text("interrupts-netutils-x86_64-4cpu-multiqueue-series-t1.txt"))
    b = snap(1, fixture_text("interrupts-netutils-x86_64-4cpu-multiqueue-series-t2.txt"))
    rates = compute_rates(a, b)
    assert rates.interrupts["LOC"].total == 444720655 - 444717631  # SOURCES.md LOC sums
    assert rates.interrupts["RES"].total == 6588820 - 6588645
    assert rates.appeared == [] and rates.vanished == []


def test_softnet_series_from_netutils():
    a = snap(0, softnet=fixture_text("softnet_stat-netutils-series-t1.txt"))
    b = snap(1, softnet=fixture_text("softnet_stat-netutils-series-t2.txt"))
    rates = compute_rates(a, b)
    processed = sum(r["processed"] for r in rates.softnet.values())
    assert processed == 17669044261 - 17669041612  # SOURCES.md processed sums


def test_softnet_wrap_near_u32():
    row = "{:08x} 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000"
    a = snap(0, softnet=row.format(U32 - 16) + "\n")
    b = snap(1, softnet=row.format(16) + "\n")
    assert compute_rates(a, b).softnet[0]["processed"] == 32.0


def test_softirq_and_stat_time():
    head = "                    CPU0       CPU1"
    a = snap(
        0, softirqs=table(head, "      NET_RX:   10   20"), stat="cpu0 1 2 3 4 5 100 200 0\ncpu1 1 2 3 4 5 0 0 0\n"
    )
    b = snap(
        2, softirqs=table(head, "      NET_RX:   30   20"), stat="cpu0 1 2 3 44 25 150 240 0\ncpu1 1 2 3 4 5 0 0 0\n"
    )
    rates = compute_rates(a, b)
    assert rates.softirqs["NET_RX"] == {0: 10.0, 1: 0.0}
    assert rates.irq_time[0] == pytest.approx(0.25)  # 50 ticks of 10 ms in 2 s
    assert rates.softirq_time[0] == pytest.approx(0.2)
    assert rates.idle_time == {0: pytest.approx(0.3), 1: 0.0}  # idle + iowait: 40 + 20 ticks in 2 s


def test_snapshots_out_of_order_are_refused():
    with pytest.raises(ValueError):
        compute_rates(snap(2, table("  CPU0", "LOC: 1 x")), snap(1, table("  CPU0", "LOC: 1 x")))
