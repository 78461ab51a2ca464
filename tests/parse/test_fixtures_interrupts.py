"""parse_interrupts against the /proc/interrupts fixtures in tests/fixtures/procfs.

Two kinds of checks: the values upstream projects assert for these files (quoted from
SOURCES.md as literals), and a cross-check of every fixture against the "Derived:" line
that SOURCES.md gives for it (read from the markdown at test time).
"""

from __future__ import annotations

import ast
import re
from functools import cache

import pytest
from conftest import FIXTURES, fixture_names, fixture_text

from irqtune.parse.interrupts import InterruptTable, parse_header, parse_interrupts

SOURCES = FIXTURES / "SOURCES.md"
PREFIX = "interrupts-"


def _sections() -> dict[str, str]:
    """SOURCES.md `### \\`name\\`` heading -> body text (read at collection: a missing file fails loudly)."""
    text = SOURCES.read_text(encoding="utf-8")
    found = re.finditer(r"^### `([^`]+)`\n(.*?)(?=^##|\Z)", text, re.M | re.S)
    return {m.group(1): m.group(2) for m in found}


SECTIONS = _sections()
LISTED = sorted(name for name in SECTIONS if name.startswith(PREFIX))
ALL_NAMES = sorted(set(LISTED) | set(fixture_names(PREFIX)))


@cache
def table(name: str) -> InterruptTable:
    return parse_interrupts(fixture_text(name), name)


def row(name: str, key: str):
    rows = table(name).rows
    assert key in rows, f"{name}: no row {key!r}"
    return rows[key]


def test_sources_lists_every_interrupts_fixture() -> None:
    declared = re.search(r"^## /proc/interrupts samples \((\d+)\)", SOURCES.read_text(encoding="utf-8"), re.M)
    assert declared, "SOURCES.md has no '## /proc/interrupts samples (N)' heading"
    assert len(LISTED) == int(declared.group(1))
    assert fixture_names(PREFIX) == LISTED


# ---------------------------------------------------------------- upstream assertions

PROCFS = "interrupts-procfs-x86-kvm-4cpu.txt"
NODE_X86 = "interrupts-node_exporter-x86-laptop-4cpu-IR-legacy.txt"
NODE_ARM = "interrupts-node_exporter-arm64-gicv3-no-space.txt"
INSIGHTS8 = "interrupts-insights-x86_64-8cpu-laptop-nodevice-row.txt"
INSIGHTS1 = "interrupts-insights-x86_64-1cpu-legacy-IO-APIC-edge-HYP.txt"
TELEGRAF = "interrupts-telegraf-arm32-rpi3-bcm2836-4cpu-FIQ-tabs.txt"
PCP8 = "interrupts-pcp-x86_64-8cpu-laptop.txt"
PCP686 = "interrupts-pcp-i686-1cpu-qemu.txt"
S390_16 = "interrupts-pcp-s390x-16cpu-mlx5.txt"
S390_2 = "interrupts-pcp-s390x-2cpu-minimal.txt"
PCP1152 = "interrupts-pcp-x86_64-1152cpu-i40e-lpfc.txt.bz2"


def test_procfs_kvm() -> None:
    t = table(PROCFS)
    assert len(t.rows) == 47  # the empty line between MIS and PIN is skipped, ERR/MIS kept
    r0 = row(PROCFS, "0")
    assert (r0.counts, r0.chip, r0.hwirq, r0.flow, r0.actions) == ((49, 0, 0, 0), "IO-APIC", "2", "edge", ("timer",))
    piw = row(PROCFS, "PIW")
    assert (piw.description, piw.counts, piw.actions) == ("Posted-interrupt wakeup event", (0, 0, 0, 0), ())
    loc = row(PROCFS, "LOC")
    assert (loc.description, loc.counts) == ("Local timer interrupts", (10196, 7429, 8542, 8229))
    err = row(PROCFS, "ERR")
    assert (err.counts, err.total, err.description) == (None, 0, "")


def test_node_exporter_x86_legacy_chip_format() -> None:
    t = table(NODE_X86)
    assert t.per_cpu("NMI")[1] == 5031
    assert t.per_cpu("NMI")[3] == 4968
    r12 = row(NODE_X86, "12")  # "IR-IO-APIC-edge      i8042": glued chip-flow token is split
    assert (r12.chip, r12.flow, r12.hwirq, r12.actions) == ("IR-IO-APIC", "edge", "", ("i8042",))
    r16 = row(NODE_X86, "16")
    assert (r16.chip, r16.flow, r16.actions) == ("IR-IO-APIC", "fasteoi", ("ehci_hcd:usb1", "mmc0"))
    assert t.per_cpu("16")[0] == 328511
    assert t.per_cpu("TLB")[0] == 10460334


def _prom(family: str) -> list[tuple[dict[str, str], float]]:
    text = (FIXTURES / "expected-node_exporter-e2e-interrupts-softnet-softirqs.prom").read_text(encoding="utf-8")
    out = []
    for m in re.finditer(rf"^{family}\{{(.*)\}} (\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        out.append((labels, float(m.group(2))))
    return out


def test_node_exporter_x86_matches_e2e_output() -> None:
    t = table(NODE_X86)
    series = _prom("node_interrupts_total")
    assert len(series) == 112
    for labels, value in series:
        r = row(NODE_X86, labels["type"])
        assert t.per_cpu(r.key)[int(labels["cpu"])] == value, labels
        if r.irq is None:  # named row: node_exporter's info is the description
            assert (labels["info"], labels["devices"]) == (r.description, ""), labels
        else:  # numbered row, old format: info is the glued chip-flow token
            assert labels["info"] == f"{r.chip}-{r.flow}", labels
            assert labels["devices"] == ", ".join(r.actions), labels
    # node_exporter drops the single-value rows; every per-CPU row is in its output
    exported = {labels["type"] for labels, _ in series}
    assert exported == {k for k, r in t.rows.items() if r.counts is not None}


def test_node_exporter_arm64_ipi0_without_space_after_colon() -> None:
    ipi0 = row(NODE_ARM, "IPI0")
    assert ipi0.counts is not None
    assert ipi0.counts[0] == 2768808080
    assert len(ipi0.counts) == 8
    assert ipi0.description == "Rescheduling interrupts"


PCP_CPU_TOTALS = [
    (PCP8, {0: 26111240, 1: 7662936, 2: 20042205, 3: 6568091, 4: 19451440}),
    (PCP686, {0: 7538223}),
    (
        S390_16,
        {0: 62206, 1: 12957, 3: 38152, 4: 40647, 6: 44207, 7: 33175, 9: 15015}
        | {10: 65355, 12: 47888, 13: 11493, 15: 14673},
    ),
    (S390_2, {0: 38892}),
    (
        PCP1152,
        {0: 14375370, 115: 1137884, 230: 1128818, 345: 1118591, 460: 1335621, 575: 1367200}
        | {690: 1120085, 805: 1124226, 920: 1107381, 1035: 1485470, 1151: 1245475},
    ),
]


@pytest.mark.parametrize(("name", "expected"), PCP_CPU_TOTALS, ids=[n for n, _ in PCP_CPU_TOTALS])
def test_pcp_percpu_intr_is_cpu_totals(name: str, expected: dict[int, int]) -> None:
    totals = table(name).cpu_totals()
    assert {cpu: totals[cpu] for cpu in expected} == expected


PCP_SAMPLES = {
    PCP8: "0::cpu0=38 9::cpu4=206 23::cpu1=3 27::cpu6=59367 31::cpu2=97997 34::cpu7=59 SPU::cpu4=0"
    " RES::cpu0=448998 TRM::cpu5=0 MCP::cpu2=2525 PIW::cpu7=0",
    PCP686: "0::cpu0=9 9::cpu0=0 12::cpu0=1080 24::cpu0=0 LOC::cpu0=6651207 IWI::cpu0=0 CAL::cpu0=0"
    " THR::cpu0=0 MCP::cpu0=276 HVS::cpu0=0 PIW::cpu0=0",
    S390_16: "EXT::cpu0=30368 5::cpu12=0 11::cpu9=0 17::cpu6=0 23::cpu2=0 TMR::cpu15=0 IUC::cpu12=0"
    " C15::cpu8=0 ADM::cpu5=0 PCD::cpu2=0 RST::cpu15=1",
    S390_2: "EXT::cpu0=31903",
    PCP1152: "0::cpu0=844 130::cpu691=0 236::cpu230=0 PIW::cpu1151=0",
}
PCP_SAMPLE_CASES = [
    (name, *re.fullmatch(r"(.+)::cpu(\d+)=(\d+)", item).groups())  # type: ignore[union-attr]
    for name, items in PCP_SAMPLES.items()
    for item in items.split()
]


@pytest.mark.parametrize(
    ("name", "key", "cpu", "value"), PCP_SAMPLE_CASES, ids=[f"{n}-{k}::cpu{c}" for n, k, c, _ in PCP_SAMPLE_CASES]
)
def test_pcp_percpu_interrupts_samples(name: str, key: str, cpu: str, value: str) -> None:
    assert table(name).per_cpu(key)[int(cpu)] == int(value)


def test_insights_8cpu_laptop() -> None:
    t = table(INSIGHTS8)
    assert len(t.rows) == 37
    assert len(t.cpus) == 8
    assert [k for k, r in t.rows.items() if "i8042" in r.actions] == ["1", "12"]
    assert sum(r.chip == "IR-PCI-MSI" for r in t.rows.values()) == 9
    nmi = row(INSIGHTS8, "NMI")
    assert (nmi.counts, nmi.description) == ((210, 92, 179, 96, 177, 0, 0, 0), "Non-maskable interrupts")
    r30 = row(INSIGHTS8, "30")  # "IR-PCI-MSI 524288-edge" and no action name
    assert (r30.chip, r30.hwirq, r30.flow, r30.actions) == ("IR-PCI-MSI", "524288", "edge", ())


def test_insights_1cpu() -> None:
    t = table(INSIGHTS1)
    assert len(t.rows) == 9
    # insights counts one value on every row; ERR and MIS are global values, not CPU0's
    assert all(len(r.counts) == 1 for k, r in t.rows.items() if k not in ("ERR", "MIS"))
    assert [(t.rows[k].counts, t.rows[k].total) for k in ("ERR", "MIS")] == [(None, 0), (None, 0)]
    assert row(INSIGHTS1, "HYP").description == "Hypervisor callback interrupts"
    assert row(INSIGHTS1, "ERR").description == row(INSIGHTS1, "MIS").description == ""


def test_telegraf_rpi3() -> None:
    t = table(TELEGRAF)
    r16 = row(TELEGRAF, "16")
    assert (r16.chip, r16.hwirq, r16.trigger, r16.actions) == ("bcm2836-timer", "0", "Edge", ("arch_timer",))
    assert r16.counts == (0, 0, 0, 0)
    r17 = row(TELEGRAF, "17")
    assert (r17.counts, r17.total) == ((127224250, 118424219, 127224437, 117885416), 490758322)
    r62 = row(TELEGRAF, "62")
    assert (r62.chip, r62.hwirq, r62.trigger, r62.total) == ("ARMCTRL-level", "64", "Edge", 521451447)
    assert r62.actions == ("dwc_otg", "dwc_otg_pcd", "dwc_otg_hcd:usb1")
    assert row(TELEGRAF, "IPI2").description == "Rescheduling interrupts"
    assert [row(TELEGRAF, k).total for k in ("IPI2", "IPI3", "IPI5")] == [93601825, 2020558, 11834468]
    fiq = row(TELEGRAF, "FIQ")
    assert (fiq.counts, fiq.total, fiq.description) == (None, None, "usb_fiq")
    assert sum(r.counts is not None for r in t.rows.values()) == 22  # telegraf's 22 IRQs; FIQ kept but countless


@pytest.mark.parametrize(
    ("name", "cpus", "loc_last"),
    [
        ("interrupts-sysstat-x86_64-root3-offline-cpu6-cpu8.txt", [0, 1, 2, 3, 4, 5, 7], 12540126),
        ("interrupts-sysstat-x86_64-root4-offline-cpu6.txt", [0, 1, 2, 3, 4, 5, 7, 8], 12456),
    ],
    ids=["root3", "root4"],
)
def test_sysstat_offline_cpus_keyed_by_header(name: str, cpus: list[int], loc_last: int) -> None:
    t = table(name)
    assert t.cpus == cpus
    loc = t.per_cpu("LOC")
    assert list(loc) == cpus
    assert 6 not in loc
    assert loc[cpus[-1]] == loc_last
    assert list(t.cpu_totals()) == cpus


def test_mt6589_one_cpu_header_with_four_ipi_counts() -> None:
    name = "interrupts-i5info-arm32-mt6589-android-1online-4ipi.txt"
    assert table(name).cpus == [0]
    ipi1 = row(name, "IPI1")
    assert (ipi1.counts, ipi1.extra_counts) == ((75373,), (107711, 43906, 30716))
    assert ipi1.description == "Rescheduling interrupts"
    for key in ("IPI0", "IPI2", "IPI3", "IPI4", "IPI5"):
        assert len(row(name, key).extra_counts) == 3, key
    assert (row(name, "14").chip, row(name, "14").actions) == ("-", ("debug-signal",))
    assert (row(name, "FIQ").counts, row(name, "FIQ").description) == (None, "fiq_glue")


def test_apple_m1_chip_name_with_space() -> None:
    r = row("interrupts-martins3-arm64-apple-m1-asahi-8cpu-AIC-chip-with-space.txt", "104")
    assert (r.chip, r.hwirq, r.trigger, r.actions) == ("PCIe MSI", "526336", "Edge", ("bcm4377",))


def test_xen_event_channel_rows() -> None:
    r = row("interrupts-xendevel-arm64-versal-xen-dom0-2cpu.txt", "0")
    assert (r.chip, r.trigger, r.flow, r.actions) == ("xen-dyn", "Edge", "event", ("xenbus",))


def test_arm9_rows_without_chip() -> None:
    name = "interrupts-d2000-arm9-sep4020-1cpu-nochip.txt"
    assert (row(name, "1").chip, row(name, "1").actions) == ("", ("4020KEY",))
    assert (row(name, "27").chip, row(name, "27").actions) == ("", ("sep4020 Timer Tick",))
    assert all(r.chip == "" for r in table(name).rows.values())


def test_rpi1_chip_without_action_and_fiq() -> None:
    name = "interrupts-bosun-arm32-rpi1-1cpu-ARMCTRL-FIQ.txt"
    r75 = row(name, "75")
    assert (r75.counts, r75.chip, r75.actions) == ((1,), "ARMCTRL", ())
    assert row(name, "3").actions == ("BCM2708 Timer Tick",)
    fiq = row(name, "FIQ")
    assert (fiq.counts, fiq.total, fiq.description) == (None, None, "usb_fiq")


# ---------------------------------------------------------------- Derived cross-check


def derived(name: str) -> dict:
    """The fixture's 'Derived:' bullet as numbers; fails when SOURCES.md gives none."""
    body = SECTIONS.get(name)
    assert body is not None, f"{name} is not described in SOURCES.md"
    line = re.search(r"^- Derived: (.+)$", body, re.M)
    assert line, f"{name}: SOURCES.md has no Derived line"
    text = line.group(1)
    rows = re.search(r"\brows=(\d+) \(numeric IRQ rows (\d+)\)", text)
    cpus = re.search(r"\bheader CPUs=(\d+)", text)
    col0 = re.search(r"sum of all leading integer tokens in column 0 = (\d+)", text)
    peak = re.search(r"max single value=(\d+)", text)
    assert rows and cpus and col0 and peak, f"{name}: unparsed Derived line {text!r}"
    odd = re.search(r"rows whose count-token number != header: (\{[^}]*\})", text)
    return {
        "cpus": int(cpus.group(1)),
        "rows": int(rows.group(1)),
        "numbered": int(rows.group(2)),
        "sums": {k: int(v) for k, v in re.findall(r"\b(LOC|RES|CAL|TLB|IPI0|IPI1) sum=(\d+)", text)},
        "col0": int(col0.group(1)),
        "max": int(peak.group(1)),
        "odd": ast.literal_eval(odd.group(1)) if odd else {},
    }


@pytest.fixture(params=ALL_NAMES, ids=ALL_NAMES)
def fixture_name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_derived_cross_check(fixture_name: str) -> None:
    want = derived(fixture_name)
    t = table(fixture_name)
    assert [str(p) for p in t.problems] == []
    assert len(t.cpus) == want["cpus"]
    assert len(t.rows) == want["rows"]
    assert sum(key.isdigit() for key in t.rows) == want["numbered"]
    for key, total in want["sums"].items():
        assert sum(row(fixture_name, key).counts) == total, key
    # the derived tokenizer counts every leading integer: single-value rows land in column 0,
    # and the IPI counts an old ARM kernel printed beyond the header are values too
    singles = [r.total for r in t.rows.values() if r.counts is None and r.total is not None]
    assert t.cpu_totals()[t.cpus[0]] + sum(singles) == want["col0"]
    values = [v for r in t.rows.values() for v in (*(r.counts or ()), *r.extra_counts)]
    assert max(values + singles) == want["max"]
    ncpu = len(t.cpus)
    for key, found in want["odd"].items():
        r = row(fixture_name, key)
        if found == 0:
            assert (r.counts, r.total) == (None, None), key
        elif found == 1 and ncpu > 1:
            assert r.counts is None and r.total is not None, key
        else:
            assert len(r.counts) + len(r.extra_counts) == found, key


def test_derived_cross_check_covers_every_fixture() -> None:
    assert ALL_NAMES, "no interrupts-* fixtures found"
    missing = [name for name in ALL_NAMES if "- Derived: " not in SECTIONS.get(name, "")]
    assert missing == []


@pytest.mark.parametrize("name", fixture_names("interrupts-"))
def test_rows_matched_by_the_zero_row_template_parse_as_a_full_split_would(name: str, monkeypatch) -> None:
    """Rows whose counts are byte for byte a seen all-zero row's skip the split (the 1152-CPU file parses in a
    third of the time); every fixture parses to the same table as with every row split."""
    from irqtune.parse import interrupts

    data = fixture_text(name)
    fast = parse_interrupts(data)
    monkeypatch.setattr(interrupts, "_zero_row", lambda *args: None)
    assert parse_interrupts(data) == fast


def test_lines_that_only_start_like_a_zero_row_take_the_full_path(monkeypatch) -> None:
    """Look-alikes of the learned all-zero row: an extra count after the zeros, a name with a blank, a duplicate,
    an IRQ number with a leading zero, a row without a description, a glued colon, a named row."""
    from irqtune.parse import interrupts

    zeros = "          0          0"
    data = (
        "           CPU0       CPU1\n"
        f"  1:{zeros}  IO-APIC    1-edge      i8042\n"
        f"  2:{zeros}  IO-APIC    2-edge      cascade\n"
        f"  3:{zeros}          7  IO-APIC    3-edge      old-arm-extra\n"
        f"a b:{zeros}  weird name\n"
        f"  2:{zeros}  IO-APIC    2-edge      duplicate\n"
        f" 04:{zeros}  IO-APIC    4-edge      leading-zero\n"
        f"  5:{zeros}\n"
        f"NMI:{zeros}   Non-maskable interrupts\n"
        f"  6:{zeros}  IO-APIC    6-edge      fine\n"
    )
    fast = parse_interrupts(data)
    monkeypatch.setattr(interrupts, "_zero_row", lambda *args: None)
    assert parse_interrupts(data) == fast
    assert fast.rows["3"].extra_counts == (7,) or fast.rows["3"].description, fast.rows["3"]
    assert fast.rows["6"].actions == ("fine",) and "2" in fast.rows and fast.problems


def test_a_header_parsed_again_gives_a_list_of_its_own():
    """The header's CPU ids are checked once per distinct line (every pass reads the same one); each caller still
    gets a list it may change without changing the next reading's."""
    first = parse_header("      CPU0       CPU1       CPU5")
    assert first == [0, 1, 5]
    first.append(9)
    assert parse_header("      CPU0       CPU1       CPU5") == [0, 1, 5]
    assert parse_header("      CPU0       XPU1") is None


def _next_pass(data: bytes, every: int) -> bytes:
    """The file a pass later: every `every`-th row's first count one higher, the others unchanged."""
    out = []
    for number, line in enumerate(data.split(b"\n")):
        head, colon, rest = line.partition(b":")
        found = re.search(rb"\d+", rest) if number and colon and number % every == 0 else None
        if found:
            rest = rest[: found.start()] + str(int(found.group()) + 1).encode() + rest[found.end() :]
        out.append(head + colon + rest)
    return b"\n".join(out)


def _variants(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    middle = len(lines) // 2
    return [
        data,  # nothing moved
        _next_pass(data, 3),  # some rows moved
        b"\n".join(lines[:middle] + lines[middle + 1 :]),  # an IRQ freed: every later line one up
        b"\n".join(lines[:1] + lines[2:3] + lines[1:2] + lines[3:]),  # two rows swapped
        b"   " + data,  # another header (its alignment): nothing is taken
        b"",
    ]


@pytest.mark.parametrize("name", [n for n in ALL_NAMES if fixture_names(n)])
def test_a_parse_that_takes_the_previous_ones_unchanged_rows_equals_a_whole_parse(name):
    """The agent and the exporter parse each pass with the last parse at hand: a line byte for byte the same is
    that row again. Whatever changed between the two files, the result is the whole parse's."""
    data = fixture_text(name).encode()
    for before in _variants(data):
        previous = parse_interrupts(before, name)
        for after in _variants(data):
            whole, taken = parse_interrupts(after, name), parse_interrupts(after, name, previous=previous)
            assert (taken.cpus, taken.rows, taken.problems) == (whole.cpus, whole.rows, whole.problems)
    again = parse_interrupts(data, name, previous=(first := parse_interrupts(data, name)))
    assert all(again.rows[key] is first.rows[key] for key in again.rows if key not in first.settled)


def test_a_lone_token_row_is_settled_against_the_new_file_not_taken_from_the_last():
    """`ARMCTRL` alone after the counts is a chip when another row names that chip, else an action: the same line
    means something else once the file around it changed, so such a row is parsed again."""
    alone = b"           CPU0       CPU1\n  1:          5          0  FOO\n"
    first = parse_interrupts(alone)
    assert first.rows["1"].actions == ("FOO",) and not first.rows["1"].chip
    named = alone + b"  2:          0          7  FOO  3 Edge      eth0\n"
    second = parse_interrupts(named, previous=first)
    assert second.rows["1"].chip == "FOO" and second.rows["1"].actions == ()
    assert second.rows == parse_interrupts(named).rows
