"""parse_softirqs and parse_softnet against the procfs fixtures in tests/fixtures/procfs.

Upstream assertions are quoted from SOURCES.md (and node_exporter's expected .prom output) as
literals; every fixture is also cross-checked against its SOURCES.md "Derived:" line, read at
test time.
"""

from __future__ import annotations

import re
from functools import cache

import pytest
from conftest import FIXTURES, fixture_names, fixture_text

from irqtune.parse.softirqs import SoftirqTable, parse_softirqs
from irqtune.parse.softnet import SoftnetTable, parse_softnet

SOURCES = FIXTURES / "SOURCES.md"
PROM = FIXTURES / "expected-node_exporter-e2e-interrupts-softnet-softirqs.prom"


def _sections() -> dict[str, str]:
    """SOURCES.md `### \\`name\\`` heading -> body text (read at collection: a missing file fails loudly)."""
    text = SOURCES.read_text(encoding="utf-8")
    return {m.group(1): m.group(2) for m in re.finditer(r"^### `([^`]+)`\n(.*?)(?=^##|\Z)", text, re.M | re.S)}


SECTIONS = _sections()


def names(prefix: str) -> list[str]:
    return sorted({n for n in SECTIONS if n.startswith(prefix)} | set(fixture_names(prefix)))


def derived_line(name: str) -> str:
    body = SECTIONS.get(name)
    assert body is not None, f"{name} is not described in SOURCES.md"
    line = re.search(r"^- Derived: (.+)$", body, re.M)
    assert line, f"{name}: SOURCES.md has no Derived line"
    return line.group(1)


def number(text: str, pattern: str, name: str) -> int:
    m = re.search(pattern, text)
    assert m, f"{name}: Derived line lacks {pattern!r}: {text!r}"
    return int(m.group(1))


def prom(family: str) -> list[tuple[dict[str, str], int]]:
    assert PROM.is_file(), f"{PROM} not found"
    out = []
    for m in re.finditer(rf"^{family}\{{(.*)\}} (\S+)$", PROM.read_text(encoding="utf-8"), re.M):
        value = float(m.group(2))
        assert value.is_integer()
        out.append((dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))), int(value)))
    assert out, f"no {family} series in {PROM.name}"
    return out


@cache
def softirqs(name: str) -> SoftirqTable:
    return parse_softirqs(fixture_text(name), name)


@cache
def softnet(name: str) -> SoftnetTable:
    return parse_softnet(fixture_text(name), source=name)


@pytest.mark.parametrize("prefix", ["softirqs-", "softnet_stat-"])
def test_sources_lists_every_fixture(prefix: str) -> None:
    heading = {"softirqs-": "/proc/softirqs", "softnet_stat-": "/proc/net/softnet_stat"}[prefix]
    declared = re.search(rf"^## {re.escape(heading)} samples \((\d+)\)", SOURCES.read_text(encoding="utf-8"), re.M)
    assert declared
    listed = sorted(n for n in SECTIONS if n.startswith(prefix))
    assert len(listed) == int(declared.group(1))
    assert fixture_names(prefix) == listed
    assert all("- Derived: " in SECTIONS[n] for n in listed)


# ---------------------------------------------------------------- softirqs

VECTORS = ["HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU"]


def test_softirqs_procfs() -> None:
    s = softirqs("softirqs-procfs-2cpu.txt")
    v = s.vectors
    assert (v["HI"][0], v["TIMER"][1], v["NET_TX"][0], v["NET_RX"][1], v["BLOCK"][1]) == (
        3,
        247490,
        2419,
        28694,
        262755,
    )
    assert (v["IRQ_POLL"][0], v["TASKLET"][0], v["SCHED"][0], v["HRTIMER"][0], v["RCU"][1]) == (
        0,
        209,
        2278692,
        1281,
        532783,
    )


PCP_SOFTIRQS = {
    "softirqs-pcp-x86_64-8cpu-BLOCK_IOPOLL.txt": "HI::cpu0=12 HI::cpu7=0 TIMER::cpu7=12521062 NET_TX::cpu7=91"
    " NET_RX::cpu7=326415 BLOCK::cpu7=89285 BLOCK_IOPOLL::cpu7=0 TASKLET::cpu7=14721 SCHED::cpu7=2226145"
    " HRTIMER::cpu7=0 RCU::cpu7=1790731",
    "softirqs-pcp-i686-1cpu.txt": "TIMER::cpu0=6403664 NET_TX::cpu0=28234 NET_RX::cpu0=2315415 BLOCK::cpu0=649022"
    " IRQ_POLL::cpu0=0 TASKLET::cpu0=25 SCHED::cpu0=0 HRTIMER::cpu0=6675",
    "softirqs-pcp-x86_64-1152cpu.txt.bz2": "HI::cpu0=1 HI::cpu1151=0 TIMER::cpu1151=28403 NET_TX::cpu1151=0"
    " NET_RX::cpu1151=0 BLOCK::cpu1151=0 IRQ_POLL::cpu1151=0 TASKLET::cpu1151=0 SCHED::cpu1151=9257"
    " HRTIMER::cpu1151=0 RCU::cpu1151=2706",
}
PCP_CASES = [
    (name, *re.fullmatch(r"(\w+)::cpu(\d+)=(\d+)", item).groups())  # type: ignore[union-attr]
    for name, items in PCP_SOFTIRQS.items()
    for item in items.split()
]


@pytest.mark.parametrize(
    ("name", "vector", "cpu", "value"), PCP_CASES, ids=[f"{n}-{v}::cpu{c}" for n, v, c, _ in PCP_CASES]
)
def test_softirqs_pcp_samples(name: str, vector: str, cpu: str, value: str) -> None:
    vector = {"BLOCK_IOPOLL": "IRQ_POLL"}.get(vector, vector)  # our parser reports the current name
    assert softirqs(name).per_cpu(vector)[int(cpu)] == int(value)


def test_softirqs_node_exporter_matches_e2e_output() -> None:
    s = softirqs("softirqs-node_exporter.txt")
    series = prom("node_softirqs_functions_total")
    assert len(series) == 20
    assert {(labels["type"], int(labels["cpu"])): value for labels, value in series} == {
        (vector, cpu): count for vector in s.vectors for cpu, count in s.per_cpu(vector).items()
    }


def test_softirqs_sysstat_root3_lists_possible_cpus() -> None:
    s = softirqs("softirqs-sysstat-root3-9possible-cpus.txt")
    assert s.cpus == list(range(9))
    assert s.per_cpu("TIMER")[8] == 123456


@pytest.mark.parametrize(
    "name",
    [
        "softirqs-pcp-x86_64-8cpu-BLOCK_IOPOLL.txt",
        "softirqs-i5info-arm32-mt6589-4possible-BLOCK_IOPOLL.txt",
        "softirqs-netutils-8cpu-old-8wide-names-BLOCK_IOPOLL.txt",
        "softirqs-netutils-i7-series-t1.txt",
    ],
)
def test_softirqs_block_iopoll_reported_as_irq_poll(name: str) -> None:
    assert "BLOCK_IOPOLL:" in fixture_text(name)
    s = softirqs(name)
    assert list(s.vectors) == VECTORS
    assert "BLOCK_IOPOLL" not in s.vectors


@pytest.mark.parametrize("name", names("softirqs-"))
def test_softirqs_derived_cross_check(name: str) -> None:
    text = derived_line(name)
    s = softirqs(name)
    assert [str(p) for p in s.problems] == []
    assert len(s.cpus) == number(text, r"\bheader CPUs=(\d+)", name)
    listed = re.search(r"\bvectors=([A-Z_,]+)", text)
    assert listed, f"{name}: Derived line lacks vectors="
    assert list(s.vectors) == [{"BLOCK_IOPOLL": "IRQ_POLL"}.get(v, v) for v in listed.group(1).split(",")]
    assert sum(s.vectors["NET_RX"]) == number(text, r"\bNET_RX total=(\d+)", name)
    assert s.per_cpu("TIMER")[s.cpus[0]] == number(text, r"\bTIMER cpu0=(\d+)", name)
    assert "NET_RX" in s.vectors


# ---------------------------------------------------------------- softnet_stat

MIXED = "softnet_stat-procfs-mixed-columns.txt"
BROKEN = "softnet_stat-procfs-broken.txt"
ROOT3 = "softnet_stat-sysstat-root3-offline-11col-noindex.txt"
ROOT4 = "softnet_stat-sysstat-root4-offline-cpu6-13col-index.txt"
FIELDS = ("processed", "dropped", "time_squeeze", "cpu_collision", "received_rps", "flow_limit_count", "backlog_len")


def test_softnet_procfs_mixed_columns() -> None:
    t = softnet(MIXED)
    assert t.problems == []
    got = [tuple(getattr(r, f) for f in FIELDS) for r in t.rows]
    assert got == [
        (0x358FE3, 0x6283, 0, 0, 0x855FC, 0x76, 0),
        (0x953D1A, 0x446, 0xB1, 0, 0x8EEB9A, 0x2B, 0xDC),
        (0x15C73, 0x20E76, 0xF0000769, 4, 3, 2, None),
        (0x1663FB2, 0, 0x109A4, 0x20E76, None, None, None),  # CPUCollision = column 9 (index 8)
        (0x8E78, 1, 0x11, 0x20, 0x10, None, None),
    ]
    assert [r.width for r in t.rows] == [13, 13, 11, 9, 10]
    # procfs' Index falls back to the line number; ours keeps the index column apart from the CPU id
    assert [r.index for r in t.rows] == [0, 1, None, None, None]
    assert [r.cpu for r in t.rows] == [0, 1, 2, 3, 4]
    assert t.cpu_source == "row"


def test_softnet_procfs_broken() -> None:
    t = softnet(BROKEN)
    assert t.rows == []
    assert len(t.problems) == 1
    problem = t.problems[0]
    assert problem.line == 1
    assert str(problem).startswith(f"{BROKEN}:1: ")


def test_softnet_node_exporter_matches_e2e_output() -> None:
    t = softnet("softnet_stat-node_exporter.txt")
    assert t.cpu_source == "row"
    by_row = {str(number): r for number, r in enumerate(t.rows)}  # node_exporter's cpu label: the row number
    families = {
        "processed_total": "processed",
        "dropped_total": "dropped",
        "times_squeezed_total": "time_squeeze",
        "cpu_collision_total": "cpu_collision",
        "received_rps_total": "received_rps",
        "flow_limit_count_total": "flow_limit_count",
    }
    for family, field in families.items():
        series = prom(f"node_softnet_{family}")
        assert {labels["cpu"]: value for labels, value in series} == {k: getattr(r, field) for k, r in by_row.items()}
    # node_exporter exports backlog_len 0 for 11-column rows, which have no backlog column
    assert {labels["cpu"]: value for labels, value in prom("node_softnet_backlog_len")} == dict.fromkeys(by_row, 0)
    assert [r.backlog_len for r in t.rows] == [None] * 4
    assert [r.processed for r in t.rows] == [299641, 916354, 5577791, 3113785]
    assert [r.time_squeeze for r in t.rows] == [1, 10, 85, 50]
    assert t.rows[1].dropped == 41


INSIGHTS = [
    # name, dropped, time_squeeze, cpu_collision, received_rps, flow_limit_count, backlog_len
    (
        "softnet_stat-insights-rhel7-10col.txt",
        [18, 255, 0, 1],
        [1, 2, 3, 4],
        [117, 196, 73, 33],
        [5, 6, 7, 8],
        [None] * 4,
        [None] * 4,
    ),
    (
        "softnet_stat-insights-rhel7-10col-squeeze-0xf003eca7.txt",
        [1, 238],
        [17, 4026789031],
        [32, 16],
        [16, 1],
        [None, None],
        [None, None],
    ),
    (
        "softnet_stat-insights-rhel9-13col.txt",
        [25219, 1094, 19399, 32302, 187284],
        [0, 177, 0, 123, 1],
        [0] * 5,
        [546300, 9366426, 36865171, 36179273, 9365818],
        [118, 43, 0, 189, 0],
        [0, 220, 10, 0, 140],
    ),
    ("softnet_stat-insights-rhel5-9col.txt", [0], [1], [5], [None], [None], [None]),
    ("softnet_stat-insights-rhel8-11col.txt", [254], [18], [3], [2], [1], [None]),
]


@pytest.mark.parametrize(
    ("name", "dropped", "squeeze", "collision", "rps", "flow", "backlog"), INSIGHTS, ids=[c[0] for c in INSIGHTS]
)
def test_softnet_insights(name, dropped, squeeze, collision, rps, flow, backlog) -> None:
    t = softnet(name)
    assert t.problems == []
    assert len(t.rows) == len(dropped)  # insights' cpu_instances
    assert [r.dropped for r in t.rows] == dropped
    assert [r.time_squeeze for r in t.rows] == squeeze
    assert [r.cpu_collision for r in t.rows] == collision
    assert [r.received_rps for r in t.rows] == rps
    assert [r.flow_limit_count for r in t.rows] == flow
    assert [r.backlog_len for r in t.rows] == backlog


def test_softnet_time_squeeze_above_2_31() -> None:
    t = softnet("softnet_stat-insights-rhel7-10col-squeeze-0xf003eca7.txt")
    assert t.rows[1].time_squeeze == 0xF003ECA7 == 4026789031


def test_softnet_sysstat_root3_rows_mapped_onto_online_cpus() -> None:
    text = fixture_text(ROOT3)
    online = [0, 1, 2, 3, 4, 5, 7]
    t = parse_softnet(text, online=online)
    assert (t.cpu_source, t.problems) == ("online", [])
    assert [r.cpu for r in t.rows] == online
    assert t.rows[-1].cpu == 7
    assert all(r.index is None and r.width == 11 for r in t.rows)
    guessed = parse_softnet(text)
    assert (guessed.cpu_source, guessed.problems) == ("row", [])
    assert [r.cpu for r in guessed.rows] == list(range(7))
    mismatched = parse_softnet(text, online=list(range(9)))
    assert mismatched.cpu_source == "row"
    assert [p.line for p in mismatched.problems] == [1]  # whole-file problems too read FILE:LINE


@pytest.mark.parametrize("online", [None, [0, 1, 2, 3, 4, 5, 6, 7]], ids=["no-online", "wrong-online"])
def test_softnet_sysstat_root4_uses_index_column(online: list[int] | None) -> None:
    t = parse_softnet(fixture_text(ROOT4), online=online)
    assert (t.cpu_source, t.problems) == ("index", [])
    assert [r.cpu for r in t.rows] == [0, 1, 2, 3, 4, 5, 7, 8]
    # SOURCES.md calls row 1's 0x0a its flow_limit_count, but it is column 12 of 13: backlog_len
    # (flow_limit_count is column 11, as procfs' own mixed-columns fixture shows: SoftnetBacklogLen 0xdc)
    assert (t.rows[1].flow_limit_count, t.rows[1].backlog_len) == (0, 0x0A)


@pytest.mark.parametrize("extra", [0, 2], ids=["15-columns", "17-columns"])
def test_softnet_synthetic_15_column_kernel_format(extra: int) -> None:
    # net/core/net-procfs.c (Linux >= 6.4): processed, dropped, time_squeeze, 0, 0, 0, 0, 0, 0 (was
    # cpu_collision), received_rps, flow_limit_count, input_qlen + process_qlen, index, input_qlen, process_qlen
    fmt = "%08x " * 13 + "%08x %08x"
    rows = [
        (0x1234, 5, 0xF003ECA7, 0, 0, 0, 0, 0, 0, 77, 3, 9 + 4, 2, 9, 4),
        (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0),
    ]
    text = "".join(fmt % r + " 00000001" * extra + "\n" for r in rows)
    t = parse_softnet(text, online=[0, 1])
    assert (t.cpu_source, t.problems) == ("index", [])
    first, second = t.rows
    assert (first.cpu, first.index, first.width) == (2, 2, 15 + extra)
    assert (first.processed, first.dropped, first.time_squeeze, first.cpu_collision) == (0x1234, 5, 0xF003ECA7, 0)
    assert (first.received_rps, first.flow_limit_count, first.backlog_len) == (77, 3, 13)
    assert (first.input_qlen, first.process_qlen) == (9, 4)
    assert (second.cpu, second.input_qlen, second.process_qlen) == (5, 0, 0)


def _broken(text: str) -> bool:
    """A fixture the parser must reject: every row narrower than the 9 columns of the oldest kernels."""
    widths = re.search(r"column counts=\[([\d, ]+)\]", text)
    assert widths
    return all(int(w) < 9 for w in widths.group(1).split(","))


def test_softnet_only_procfs_broken_is_expected_broken() -> None:
    assert [n for n in names("softnet_stat-") if _broken(derived_line(n))] == [BROKEN]


@pytest.mark.parametrize("name", names("softnet_stat-"))
def test_softnet_derived_cross_check(name: str) -> None:
    text = derived_line(name)
    t = softnet(name)
    if _broken(text):
        assert t.rows == []
        assert len(t.problems) == number(text, r"\brows=(\d+)", name)
        return
    assert [str(p) for p in t.problems] == []
    assert len(t.rows) == number(text, r"\brows=(\d+)", name)
    widths = re.search(r"column counts=\[([\d, ]+)\]", text)
    assert sorted({r.width for r in t.rows}) == [int(w) for w in widths.group(1).split(",")]  # type: ignore[union-attr]
    assert sum(r.processed for r in t.rows) == number(text, r"\bprocessed sum=(\d+)", name)
    assert sum(r.dropped for r in t.rows) == number(text, r"\bdropped sum=(\d+)", name)
    assert sum(r.time_squeeze for r in t.rows) == number(text, r"\btime_squeeze sum=(\d+)", name)
    index = re.search(r"index column=\[([^\]]*)\]", text)
    if index:
        listed = [int(i) for i in re.findall(r"\d+", index.group(1))]
        assert [r.index for r in t.rows][: len(listed)] == listed
        assert t.cpu_source == "index"
