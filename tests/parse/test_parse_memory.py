"""Parsers of the interrupt-context memory inputs: /proc/vmstat, /proc/zoneinfo, /dev/kmsg records."""

from __future__ import annotations

from pathlib import Path

from irqtune.parse.kmsg import parse_kmsg
from irqtune.parse.vmstat import parse_vmstat
from irqtune.parse.zoneinfo import parse_zoneinfo

KMSG = Path(__file__).parent.parent / "fixtures" / "kmsg" / "real-failures.kmsg"

ZONEINFO = """Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 131899
  pages free     3840
        boost    0
        min      23
        low      28
        high     33
        promo    38
        spanned  4095
        present  3998
        managed  3840
        cma      0
        protection: (0, 3018, 10698, 10698, 10698)
  pagesets
    cpu: 0
              count:    0
              high:     0
Node 0, zone    DMA32
  pages free     772722
        boost    0
        min      4760
        low      5950
        high     7140
        managed  772848
"""


def test_vmstat_keeps_pressure_counters_only() -> None:
    text = "nr_free_pages 10\nallocstall_normal 3\nallocstall_movable 4\npgalloc_normal 99\ncompact_stall 2\n"
    got = parse_vmstat(text)
    assert got.counters == {"allocstall_normal": 3, "allocstall_movable": 4, "pgalloc_normal": 99, "compact_stall": 2}
    assert got.total("allocstall_") == 7 and got.total("nope_") is None and not got.problems


def test_vmstat_bad_lines_named_file_line() -> None:
    got = parse_vmstat("pgalloc_normal 1\nallocstall_normal -3\nbroken\n")
    assert [(p.file, p.line) for p in got.problems] == [("/proc/vmstat", 2), ("/proc/vmstat", 3)]
    assert got.counters == {"pgalloc_normal": 1}


def test_zoneinfo_watermarks_per_zone_not_pagesets() -> None:
    zones = parse_zoneinfo(ZONEINFO).zones
    assert [(z.node, z.name, z.free, z.min, z.low, z.high, z.managed) for z in zones] == [
        (0, "DMA", 3840, 23, 28, 33, 3840),
        (0, "DMA32", 772722, 4760, 5950, 7140, 772848),
    ]
    assert zones[1].headroom == 772722 - 4760


def test_zoneinfo_bad_lines_named_file_line() -> None:
    got = parse_zoneinfo("Node x, zone DMA\nNode 0, zone Normal\n  pages free  lots\n        min 5\n")
    assert [str(p).split(":")[:2] for p in got.problems] == [["/proc/zoneinfo", "1"], ["/proc/zoneinfo", "3"]]
    assert got.zones[0].min == 5


def test_zoneinfo_of_this_kernel_parses_cleanly() -> None:
    text = Path("/proc/zoneinfo").read_text()
    got = parse_zoneinfo(text)
    assert got.zones and not got.problems
    assert any(z.managed and z.min < z.low < z.high for z in got.zones)


def test_kmsg_real_reports_counted_with_cpu_and_task() -> None:
    scan = parse_kmsg(KMSG.read_text())
    assert not scan.problems and scan.last_seq == 1010
    got = [(f.seq, f.task, f.order, f.cpu, f.atomic) for f in scan.failures]
    assert got == [
        (1001, "java", 0, 7, True),
        (1004, "swapper/21", 0, 21, None),
        (1006, "irq/5-600c0004.", 0, 0, True),
        (1008, "swapper", 3, None, None),
        (1009, "node_exporter", 5, None, None),
    ]
    assert scan.failures[0].flags == ("GFP_ATOMIC", "__GFP_COLD", "__GFP_COMP")
    assert scan.failures[2].mode == 0x820


def test_kmsg_reads_only_after_the_last_seen_sequence() -> None:
    scan = parse_kmsg(KMSG.read_text(), after=1005)
    assert [f.seq for f in scan.failures] == [1006, 1008, 1009]
    assert parse_kmsg(KMSG.read_text(), after=1010).last_seq == 1010


def test_kmsg_bad_lines_named_file_line() -> None:
    scan = parse_kmsg("6,1,2,-;fine\nnot a record\n6,x,2,-;bad seq\n")
    assert [(p.file, p.line) for p in scan.problems] == [("/dev/kmsg", 2), ("/dev/kmsg", 3)]
