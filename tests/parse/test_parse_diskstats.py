"""/proc/diskstats: completed requests of every kernel's line width, bad lines, and per-disk rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from irqtune.host import Host
from irqtune.measure.rates import compute_rates
from irqtune.measure.snapshot import take_snapshot, to_json
from irqtune.parse.diskstats import parse_diskstats


def line(name: str, reads: int, writes: int = 0, discards: int | None = None, flushes: int | None = None) -> str:
    """One /proc/diskstats line: 11 counters, 15 with discards (4.18+), 17 with flushes (5.5+)."""
    counters = [reads, 0, 8 * reads, 3, writes, 0, 8 * writes, 4, 0, 7, 9]
    if discards is not None:
        counters += [discards, 0, 0, 0]
    if flushes is not None:
        counters += [flushes, 1]
    return f" 259       0 {name} " + " ".join(map(str, counters)) + "\n"


def test_every_width_and_a_bad_line():
    text = line("sda", 10, 5) + line("nvme0n1", 100, 50, 2) + "8 1 sdb 1 2 3\n" + line("vda", 7, 1, 0, 3)
    table = parse_diskstats(text + line("bad", 1).replace(" 8 ", " ² ", 1))
    assert table.disks["sda"] == {"reads": 10, "writes": 5}
    assert table.disks["nvme0n1"] == {"reads": 100, "writes": 50, "discards": 2}
    assert table.disks["vda"] == {"reads": 7, "writes": 1, "discards": 0, "flushes": 3}
    assert [p.line for p in table.problems] == [3, 5] and "sdb" not in table.disks


def test_the_real_file_parses_without_problems():
    path = Path("/proc/diskstats")
    if not path.exists():
        pytest.skip("no /proc/diskstats here")
    assert not parse_diskstats(path.read_text()).problems


def test_completed_requests_per_second_per_disk(tmp_path):
    def snap(text: str, at: float):
        (tmp_path / "proc").mkdir(exist_ok=True)
        (tmp_path / "proc" / "diskstats").write_text(text)
        s = take_snapshot(Host(str(tmp_path)))
        s.monotonic = at
        return s

    before = snap(line("nvme0n1", 1000, 500, 10, 5) + line("sda", 900), 0.0)
    after = snap(line("nvme0n1", 3000, 900, 10, 25) + line("sda", 100) + line("sdc", 5), 2.0)
    rates = compute_rates(before, after)
    assert rates.block["nvme0n1"] == (2000 + 400 + 20) / 2  # reads, writes, discards and flushes completed
    assert rates.block["sda"] == 50  # went down: reset, its count is all new
    assert "sdc" not in rates.block  # appeared: no rate yet
    assert to_json(after)["diskstats"]["sdc"] == {"reads": 5, "writes": 0}
