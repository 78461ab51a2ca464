"""Sub-samples between the agent's passes (measure/bursts.py): the cheap read of a few /proc/interrupts rows and
/proc/net/dev, and a window's bursts from them (sub-interval rates, mean and peak, the rate levels)."""

from __future__ import annotations

import pytest
from conftest import fixture_names, fixture_text

from irqtune.host import Host
from irqtune.measure.bursts import BURSTY, MAX_LEVELS, Burst, Sample, bursts, read_sample, sample_of
from irqtune.measure.snapshot import take_snapshot
from irqtune.parse.interrupts import parse_interrupts, parse_rows

U32 = 1 << 32


@pytest.mark.parametrize("name", [n for n in fixture_names("interrupts-netutils") if n.endswith(".txt")][:4])
def test_parse_rows_reads_the_wanted_rows_as_the_whole_parse_does(name):
    data = fixture_text(name).encode()
    whole = parse_interrupts(data)
    wanted = [*sorted((key for key in whole.rows if key.isdigit()), key=int)[-3:], "LOC"]
    some = parse_rows(data, frozenset(wanted))
    assert set(some.rows) == set(wanted) and some.cpus == whole.cpus
    assert all(some.per_cpu(key) == whole.per_cpu(key) for key in wanted)


def test_parse_rows_of_nothing_readable():
    assert parse_rows(b"", frozenset({"40"})).rows == {}
    assert parse_rows(b"      CPU0\n 41:  5  PCI-MSI  eth0\n", frozenset({"40"})).rows == {}


def sample(t: float, packets: int, irq_counts: dict[int, int] | None = None) -> Sample:
    return Sample(t, {"eth0": packets}, {40: irq_counts if irq_counts is not None else {0: 0}})


def test_bursts_give_each_sub_interval_its_rate_and_the_window_its_mean_and_peak():
    """Four sub-intervals of 0.25 s; the second holds the burst: 500k pps against 200k pps elsewhere."""
    samples = [sample(0.0, 0), sample(0.25, 50_000), sample(0.5, 175_000), sample(0.75, 225_000),
               sample(1.0, 275_000)]  # fmt: skip
    found = bursts(samples, {"eth0": [40]})["eth0"]
    assert [rate for _, rate in found.parts] == pytest.approx([200e3, 500e3, 200e3, 200e3])
    assert found.mean_pps == pytest.approx(275e3) and found.peak_pps == pytest.approx(500e3)
    assert found.bursty == (BURSTY * 275e3 <= 500e3)
    steady = bursts([sample(t, int(t * 200_000)) for t in (0.0, 0.5, 1.0)], {"eth0": [40]})["eth0"]
    assert not steady.bursty


def test_bursts_count_interrupts_per_cpu_across_a_32_bit_wrap():
    samples = [sample(0.0, 0, {0: U32 - 100, 1: 0}), sample(0.5, 1000, {0: 400, 1: 100}),
               sample(1.0, 2000, {0: 900, 1: 150})]  # fmt: skip
    found = bursts(samples, {"eth0": [40]})["eth0"]
    assert found.peak_irqs == pytest.approx(1200) and found.mean_irqs == pytest.approx(1150)


def test_a_sample_keeps_only_the_cpus_that_took_interrupts_and_a_cpu_that_starts_counts_from_zero(tmp_path):
    """A 1152-CPU row is kept as its few busy CPUs, not 1152 entries; a CPU absent from the first sample took
    none there, so all it counts by the next one is the window's (not dropped as a CPU that came online)."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "interrupts").write_text("      CPU0  CPU1  CPU2\n 40:  0  9  0  PCI-MSI 1-edge  eth0-TxRx-0\n")
    kept = read_sample(Host(str(tmp_path)), [40], [], 0.0)
    assert kept.interrupts == {40: {1: 9}}
    samples = [sample(0.0, 0, {1: 9}), sample(0.5, 1000, {1: 9, 2: 300}), sample(1.0, 2000, {1: 109, 2: 300})]
    found = bursts(samples, {"eth0": [40]})["eth0"]
    assert found.peak_irqs == pytest.approx(600) and found.mean_irqs == pytest.approx(400)


def test_bursts_need_two_sub_intervals_and_the_device_in_every_sample():
    assert bursts([sample(0.0, 0), sample(1.0, 10)], {"eth0": [40]}) == {}
    gone = Sample(0.5, {}, {})
    assert bursts([sample(0.0, 0), gone, sample(1.0, 10)], {"eth0": [40]}) == {}


def test_levels_merge_close_rates_and_keep_the_time_weighted_mean():
    parts = ((0.1, 100.0), (0.1, 105.0), (0.1, 500.0), (0.1, 520.0), (0.1, 300.0), (0.1, 200.0), (0.1, 900.0),
             (0.1, 50.0))  # fmt: skip
    burst = Burst(sum(r for _, r in parts) / len(parts), 900.0, 0.0, 0.0, parts)
    levels = burst.levels()
    assert len(levels) <= MAX_LEVELS and sum(share for share, _ in levels) == pytest.approx(1.0)
    assert sum(share * rate for share, rate in levels) == pytest.approx(burst.mean_pps)
    assert [rate for _, rate in levels] == sorted(rate for _, rate in levels)
    two = Burst(0.0, 0.0, 0.0, 0.0, ((0.8, 200.0), (0.1, 1000.0), (0.1, 1050.0))).levels()
    assert [share for share, _ in two] == pytest.approx([0.8, 0.2])
    assert [rate for _, rate in two] == pytest.approx([200.0, 1025.0])


def test_read_sample_reads_what_the_full_snapshot_has(tmp_path):
    """The cheap read of a tree and the same counters taken from a full snapshot of it agree."""
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "interrupts").write_text(
        "      CPU0  CPU1\n 40:  7  9  PCI-MSI 1-edge  eth0-TxRx-0\n 41:  3  4  PCI-MSI 2-edge  nvme0q1\n"
        "LOC:  1  2  Local timer interrupts\n"
    )
    (proc / "net" / "dev").write_text(
        "Inter-|   Receive\n face |bytes packets\n"
        "  eth0: 6400 100 0 5 2 0 0 0 0 0 0 0 0 0 0 0\n    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )
    host = Host(str(tmp_path))
    cheap = read_sample(host, [40], ["eth0", "eth9"], 3.0)
    assert cheap.packets == {"eth0": 107} and cheap.interrupts == {40: {0: 7, 1: 9}} and cheap.monotonic == 3.0
    full = take_snapshot(host)
    full.monotonic = 3.0
    assert sample_of(full, [40], ["eth0", "eth9"]) == cheap
    assert read_sample(Host(str(tmp_path / "none")), [40], ["eth0"], 1.0) == Sample(1.0, {}, {})
