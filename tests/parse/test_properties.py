"""Property tests: the /proc parsers round-trip the kernel's formats, survive damage and never raise."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irqtune.measure.rates import counter_delta
from irqtune.parse.common import format_cpulist, is_count, parse_cpulist, parse_cpumask
from irqtune.parse.interrupts import parse_interrupts
from irqtune.parse.softirqs import RENAMED, VECTORS, parse_softirqs
from irqtune.parse.softnet import parse_softnet
from irqtune.parse.stat import parse_stat

pytestmark = [pytest.mark.slow]

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
U32 = 1 << 32
SRC = "/test/proc/interrupts"
TOKEN = re.compile(r"\S+")

CHIPS = ["IO-APIC", "IR-IO-APIC", "PCI-MSI", "IR-PCI-MSI", "IR-PCI-MSIX-0000:23:00.0", "GICv3", "GIC", "ITS-MSI"]
CHIPS += ["PCIe MSI", "ARMCTRL-level", "bcm2836-timer", "xen-dyn", "DMAR-MSI", "HPET-MSI", "AMD-Vi", "-", "None"]
PLAIN_CHIPS = ["IO-APIC", "IR-IO-APIC", "PCI-MSI", "IR-PCI-MSI", "ARMCTRL", "GIC", "xen-dyn", "-", "None"]
FLOWS = ["edge", "fasteoi", "level", "simple", "percpu", "percpu_devid", "edge_eoi"]
ACTIONS = ["timer", "i8042", "rtc0", "acpi", "ehci_hcd:usb1", "virtio5-req.0", "eth0-TxRx-0", "nvme0q0", "mmc0"]
ACTIONS += ["arch_timer", "xhci_hcd", "megasas0-msix0", "PCIe PME", "aerdrv", "VCHIQ doorbell", "bcm2708_sdhci (dma)"]
NAMED = {"NMI": "Non-maskable interrupts", "LOC": "Local timer interrupts", "SPU": "Spurious interrupts"}
NAMED |= {"PMI": "Performance monitoring interrupts", "IWI": "IRQ work interrupts", "RES": "Rescheduling interrupts"}
NAMED |= {"CAL": "Function call interrupts", "TLB": "TLB shootdowns", "MCE": "Machine check exceptions"}
NAMED |= {"HYP": "Hypervisor callback interrupts", "PIN": "Posted-interrupt notification event"}
IPIS = ["Rescheduling interrupts", "Function call interrupts", "CPU stop interrupts", "Timer broadcast interrupts"]
JUNK = ["12x", "-5", "+7", "1_000", "\u0661\u0662", "\uff17", "\u00b2", "0x1f", "1e3", "7.0", "-0", "+4242424242"]
JUNK += ["00", "007", "0x0", "0_0", "\u0660", "0\u00a0", "x", "0-", "0:"]

COUNT = st.one_of(st.just(0), st.integers(0, 999), st.integers(0, U32 - 1), st.integers(10**9, U32 - 1))
# small hosts, and hosts with more than 32 CPUs (rows with many non-zero counts take another path)
CPU_IDS = st.lists(st.integers(0, 4095), min_size=1, max_size=8, unique=True) | st.sets(st.integers(0, 99), min_size=33)
CPU_IDS = CPU_IDS.map(sorted)
NO_BREAKS = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")) | st.sampled_from(" \t")


@st.composite
def numbered_tail(draw, prec):
    """The text after a numbered row's counts: chip, hwirq, trigger, flow, actions (irq_show_chip & co)."""
    style = draw(st.sampled_from(["domain", "pad", "old"]))
    chip = draw(st.sampled_from(CHIPS if style == "domain" else PLAIN_CHIPS))
    hwirq = draw(st.integers(0, 600000)) if style == "domain" else None
    level = None if style == "old" else draw(st.sampled_from([None, "Level", "Edge"]))
    flow = draw(st.sampled_from([None, *FLOWS]))
    actions = draw(st.lists(st.sampled_from(ACTIONS), max_size=3, unique=True))
    if style != "domain" and not (level or flow or actions):
        actions = ["timer"]  # a lone token (chip or action?) is settled from the whole file: not tested here
    text = f" {chip:>8}" + (f" {hwirq:>{prec}}" if style == "domain" else " " * (prec + 1) if style == "pad" else "")
    text += (f" {level:<8}" if level else "") + (f"-{flow:<8}" if flow else "")
    text += "  " + ", ".join(actions) if actions else ""
    hw = "" if hwirq is None else str(hwirq)
    return text, {"chip": chip, "hwirq": hw, "trigger": level or "", "flow": flow or "", "actions": tuple(actions)}


@st.composite
def interrupts_file(draw):
    """(lines, expected): lines are (text, row key or None); expected maps each key to what the parse must give."""
    cpus, prec = draw(CPU_IDS), draw(st.sampled_from([3, 4]))
    width, sep, indent = (
        draw(st.sampled_from([10, 0])),
        draw(st.sampled_from([" ", "\t", " \t"])),
        draw(st.sampled_from(["", "\t"])),
    )

    def fmt(values):
        return "".join(f"{v:>{width}}{sep}" for v in values)

    def counts(n):
        return tuple(draw(st.lists(COUNT, min_size=n, max_size=n)))

    rows = []
    for irq in draw(st.lists(st.integers(0, 10**prec - 1), unique=True, max_size=8)):
        c = counts(len(cpus))
        tail, exp = draw(numbered_tail(prec))
        rows.append((str(irq), f"{irq:>{prec}}: {fmt(c)}{tail}", dict(counts=c, total=sum(c), **exp)))
    for key in draw(st.lists(st.sampled_from(sorted(NAMED)), unique=True, max_size=5)):
        c = counts(len(cpus))
        rows.append(
            (key, f"{key:>{prec}}: {fmt(c)}  {NAMED[key]}", dict(counts=c, total=sum(c), description=NAMED[key]))
        )
    extra = draw(st.integers(0, 3))  # old ARM32: IPI counts for present but offline CPUs
    for i in range(draw(st.integers(0, len(IPIS)))):
        c, x = counts(len(cpus)), counts(extra)
        text = f"{'IPI':>{prec - 1}}{i}:{' ' if prec >= 4 else ''}{fmt(c + x)}      {IPIS[i]}"
        rows.append((f"IPI{i}", text, dict(counts=c, total=sum(c), extra_counts=tuple(x), description=IPIS[i])))
    # ERR/MIS with one CPU: see test_single_value_rows_have_no_per_cpu_counts
    for key in draw(st.lists(st.sampled_from(["ERR", "MIS", "Err"]), unique=True, max_size=2 if len(cpus) > 1 else 0)):
        value = draw(COUNT)
        rows.append((key, f"{key:>{prec}}: {value:10}", dict(counts=None, total=value)))
    if draw(st.booleans()):
        rows.append(
            ("FIQ", f"{'FIQ':>{prec}}:              usb_fiq", dict(counts=None, total=None, description="usb_fiq"))
        )
    blank = st.sampled_from(["", "   ", "\t", " \t "])
    lines = [(b, None) for b in draw(st.lists(blank, max_size=2))]
    lines.append((" " * (prec + 8) + "".join(f"CPU{c:<8}" for c in cpus), None))
    expected = {}
    for key, text, exp in draw(st.permutations(rows)):
        lines += [(b, None) for b in draw(st.lists(blank, max_size=1))]
        lines.append((indent + text + draw(st.sampled_from(["", " ", "\t"])), key))
        expected[key] = exp | {"line": len(lines)}
    return cpus, lines, expected


def joined(lines, newline_at_end=True):
    return "\n".join(text for text, _ in lines) + ("\n" if newline_at_end else "")


def check_problems(problems, text):
    nlines = max(1, len(text.splitlines()))  # an empty file is reported at line 1
    for p in problems:
        assert 0 <= p.line <= nlines, p
        assert p.file == SRC and p.message.strip() and str(p).startswith(SRC), p


def counts_of(row):
    return None if row.counts is None else tuple(row.counts)


def numbers(row):
    """Every number the parse took from a row."""
    return [*(row.counts or ([] if row.total is None else [row.total])), *row.extra_counts]


@PROPS
@given(interrupts_file(), st.booleans())
def test_interrupts_round_trip(generated, newline_at_end):
    cpus, lines, expected = generated
    text = joined(lines, newline_at_end)
    table = parse_interrupts(text, SRC)
    assert parse_interrupts(text.encode(), SRC) == table  # /proc is read as bytes
    assert table.problems == []
    assert table.cpus == cpus
    assert set(table.rows) == set(expected)
    for key, exp in expected.items():
        row = table.rows[key]
        assert row.line == exp["line"], key
        assert counts_of(row) == exp["counts"] and row.total == exp["total"], key
        if exp["counts"] is not None:
            assert table.per_cpu(key) == dict(zip(cpus, exp["counts"])), key
        for attr in ("chip", "hwirq", "trigger", "flow", "actions", "description", "extra_counts"):
            if attr in exp:
                assert getattr(row, attr) == exp[attr], (key, attr, lines[exp["line"] - 1][0])


@st.composite
def damaged_file(draw):
    """(text, intact {key: expected}, damaged line or None, duplicate line or None): damage touches one line."""
    _cpus, lines, expected = draw(interrupts_file())
    row_at = [i for i, (_, key) in enumerate(lines) if key is not None]
    header = max(i for i, (_, key) in enumerate(lines[: row_at[0] if row_at else len(lines)]) if key is None)
    numbered_at = [i for i in row_at if expected[lines[i][1]]["total"] is not None]  # rows that print counts
    kinds = ["junk"] * 2 * bool(numbered_at) + ["delete", "duplicate"] * bool(row_at) + ["garbage", "truncate"]
    kind = draw(st.sampled_from(kinds))
    damaged = duplicate = None
    if kind == "truncate":  # rows wholly before the cut survive, provided the header does
        text = joined(lines)
        cut = draw(st.integers(0, len(text)))
        ends = [len(joined(lines[: i + 1], False)) for i in range(len(lines))]
        fits = ends[header] <= cut
        return text[:cut], {k: v for k, v in expected.items() if fits and ends[v["line"] - 1] <= cut}, None, None
    if kind == "garbage":
        garbage = draw(st.text(NO_BREAKS, max_size=40))
        if garbage.partition(":")[0].strip() in expected:
            garbage = "#" + garbage  # a garbage line that claims a later row's name would take its place
        lines.insert(draw(st.integers(header + 1, len(lines))), (garbage, None))
    elif kind == "duplicate":
        at = draw(st.sampled_from(row_at))
        duplicate = draw(st.integers(at + 1, len(lines)))
        lines.insert(duplicate, (lines[at][0], None))
        duplicate += 1
    else:
        at = draw(st.sampled_from(row_at if kind == "delete" else numbered_at))
        text, key = lines[at]
        if kind == "delete":
            a, b = draw(st.sampled_from([m.span() for m in TOKEN.finditer(text)]))
            text = text[:a] + text[b:]
        else:  # replace one of the row's counts with junk
            name, colon, rest = text.partition(":")
            exp = expected[key]
            n = 1 if exp["counts"] is None else len(exp["counts"]) + len(exp.get("extra_counts", ()))
            a, b = [m.span() for m in TOKEN.finditer(rest)][draw(st.integers(0, n - 1))]
            text = name + colon + rest[:a] + draw(st.sampled_from(JUNK)) + rest[b:]
        lines[at], damaged = (text, None), at + 1
        del expected[key]
    for i, (_, key) in enumerate(lines):
        if key is not None:
            expected[key] = expected[key] | {"line": i + 1}
    return joined(lines), expected, damaged, duplicate


@settings(PROPS, max_examples=600)
@given(damaged_file())
def test_interrupts_damage_stays_local(case):
    text, intact, damaged, duplicate = case
    table = parse_interrupts(text, SRC)
    check_problems(table.problems, text)
    assert parse_interrupts(text.encode(), SRC) == table
    for key, exp in intact.items():
        row = table.rows.get(key)
        assert row is not None, key
        assert (row.line, counts_of(row), row.total) == (exp["line"], exp["counts"], exp["total"]), key
    if duplicate is not None:
        assert any(p.line == duplicate and "duplicate" in p.message for p in table.problems)
    lines = text.splitlines()
    for row in table.rows.values():
        assert all(0 <= n < U32 for n in numbers(row)), row
        if row.line == damaged:  # numbers come from plain ASCII-digit tokens of that line, never from junk
            digits = [int(t) for t in lines[row.line - 1].partition(":")[2].split() if is_count(t)]
            assert not Counter(numbers(row)) - Counter(digits), (row, lines[row.line - 1])


@PROPS
@given(st.text(), st.text(), st.lists(st.integers(0, 64), max_size=4) | st.none(), st.binary())
def test_arbitrary_text_never_raises(text, tail, online, raw):
    header = "           CPU0       CPU1       CPU3\n"
    parse_interrupts(raw, SRC)
    parse_interrupts(header.encode() + raw, SRC)
    for body in (text, header + text, header + " 12: " + text, header + "LOC:" + tail):
        check_problems(parse_interrupts(body, SRC).problems, body)
        parse_softirqs(body)
        parse_softnet(body, online)
        parse_stat(body)
        parse_stat("cpu" + body)
        parse_stat("intr" + body)


@PROPS
@given(CPU_IDS, st.sampled_from([12, 8]), st.booleans(), st.data())
def test_softirqs_round_trip(cpus, name_width, old_names, data):
    names = [("BLOCK_IOPOLL" if old_names and v == "IRQ_POLL" else v) for v in VECTORS]
    names = [n for n in names if data.draw(st.booleans())] or names
    lines = [" " * data.draw(st.sampled_from([16, 20])) + "".join(f"CPU{c:<8}" for c in cpus)]
    expected = {}
    for name in names:
        counts = data.draw(st.lists(COUNT, min_size=len(cpus), max_size=len(cpus)))
        lines.append(f"{name:>{name_width}}:" + "".join(f" {n:10}" for n in counts))
        expected[RENAMED.get(name, name)] = counts
    lines.insert(data.draw(st.integers(1, len(lines))), data.draw(st.sampled_from(["", "   ", "\t"])))
    table = parse_softirqs("\n".join(lines) + "\n")
    assert (table.cpus, table.vectors, table.problems) == (cpus, expected, [])
    assert all(table.per_cpu(v) == dict(zip(cpus, c)) for v, c in expected.items())


@PROPS
@given(CPU_IDS, st.sampled_from([9, 10, 11, 13, 15]), st.data())
def test_softnet_round_trip(cpus, width, data):
    rows = []
    for cpu in cpus:
        values = data.draw(st.lists(COUNT, min_size=width, max_size=width))
        if width >= 13:
            values[12] = cpu
        rows.append(values)
    text = "".join(" ".join(f"{v:08x}" for v in values) + "\n" for values in rows)
    # with the index column the CPU id comes from it, whatever `online` says
    online = cpus if width < 13 else data.draw(st.none() | st.just(cpus[::-1]) | st.just(list(range(len(cpus)))))
    table = parse_softnet(text, online)
    assert table.problems == []
    assert table.cpu_source == ("index" if width >= 13 else "online")
    assert [r.cpu for r in table.rows] == cpus
    for row, values in zip(table.rows, rows):
        optional = [values[i] if i < width else None for i in (9, 10, 11, 12, 13, 14)]
        got = (row.received_rps, row.flow_limit_count, row.backlog_len, row.index, row.input_qlen, row.process_qlen)
        assert (row.processed, row.dropped, row.time_squeeze, row.cpu_collision) == tuple(
            values[i] for i in (0, 1, 2, 8)
        )
        assert list(got) == optional and row.width == width


CPU_SETS = st.sets(st.integers(0, 2000), max_size=60)


@PROPS
@given(CPU_SETS)
def test_cpulist_round_trip(cpus):
    text = format_cpulist(cpus)
    assert parse_cpulist(text) == sorted(cpus)
    assert format_cpulist(parse_cpulist(text)) == text
    assert parse_cpulist(text + "\n") == sorted(cpus)


RANGE = st.tuples(st.integers(0, 300), st.integers(0, 300), st.integers(1, 40), st.integers(0, 40), st.integers(0, 2))


@PROPS
@given(st.lists(RANGE, min_size=1, max_size=6))
def test_cpulist_groups_match_brute_force(parts):
    model, texts = set(), []
    for lo, span, used, spare, form in parts:
        hi, size = lo + span, used + spare
        if form == 0:  # "a"
            texts.append(str(lo))
            model.add(lo)
        elif form == 1:  # "a-b"
            texts.append(f"{lo}-{hi}")
            model.update(range(lo, hi + 1))
        else:  # "a-b:used/group": in every group of `size` CPUs from a, the first `used`, none past b
            texts.append(f"{lo}-{hi}:{used}/{size}")
            model.update(c for c in range(lo, hi + 1) if (c - lo) % size < used)
    text = ",".join(texts)
    assert parse_cpulist(text) == sorted(model)
    assert parse_cpulist(format_cpulist(parse_cpulist(text))) == sorted(model)


@PROPS
@given(st.integers(1, 600), st.data(), st.booleans())
def test_cpumask_matches_set_bits(nbits, data, upper):
    cpus = data.draw(st.sets(st.integers(0, nbits - 1)))
    value, groups = sum(1 << c for c in cpus), -(-nbits // 32)
    first = -(-(nbits - 32 * (groups - 1)) // 4)  # kernel %*pb: the top group only as wide as the bits it has
    words = [f"{value >> (32 * g) & 0xFFFFFFFF:08x}" for g in reversed(range(groups - 1))]
    text = ",".join([f"{value >> (32 * (groups - 1)):0{first}x}", *words])
    assert parse_cpumask((text.upper() if upper else text) + "\n") == sorted(cpus)


@PROPS
@given(st.integers(0, U32 - 1), st.integers(0, (1 << 31) - 1), st.integers(0, U32 - 1), st.booleans())
def test_counter_delta_recovers_increments_across_wrap(old, increment, below_top, wrap):
    if wrap:  # old near the top, so that old + increment passes 2^32 (plain integers rarely land there)
        old = U32 - 1 - below_top % (increment + 1)
    assert counter_delta(old, (old + increment) % U32) == increment


@PROPS
@given(st.lists(st.characters() | st.characters(categories=["Cs"]), max_size=20).map("".join))
def test_interrupts_never_raises_on_any_str(text):
    """Including lone surrogates: the docstring promises `never raises` for every str."""
    check_problems(parse_interrupts(text, SRC).problems, text)


@PROPS
@given(st.sampled_from(["ERR", "MIS", "Err"]), st.integers(0, 8191), COUNT, st.data())
def test_single_value_rows_have_no_per_cpu_counts(key, cpu, value, data):
    """ERR/MIS print one global number ("%*s: %10u"), whatever the number of online CPUs."""
    cpus = sorted({cpu, *data.draw(st.sets(st.integers(0, 8191), max_size=3))})
    text = "           " + "".join(f"CPU{c:<8}" for c in cpus) + f"\n{key:>3}: {value:10}\n"
    table = parse_interrupts(text, SRC)
    row = table.rows[key]
    assert (row.counts, row.total, table.problems) == (None, value, [])
    assert table.cpu_totals() == dict.fromkeys(cpus, 0)
