"""Numbers from the kernel are bounded: a field past 2**64-1 is one FILE:LINE problem, never a traceback."""

from __future__ import annotations

import json
import time

import fakehost
import pytest
from conftest import cli

from irqtune.act.knobs import KnobError, make_knob
from irqtune.cli import EXIT_ERROR, EXIT_PARTIAL
from irqtune.host import Host
from irqtune.measure.queues import classify_action
from irqtune.measure.topology import read_topology
from irqtune.parse import common
from irqtune.parse.common import CpuListError, is_count, parse_cpulist, parse_cpumask
from irqtune.parse.interrupts import parse_interrupts
from irqtune.parse.netdev import parse_netdev
from irqtune.parse.softirqs import parse_softirqs
from irqtune.parse.stat import parse_stat

DIGITS_5000 = "9" * 5000


@pytest.fixture
def root(tmp_path):
    return fakehost.build(tmp_path / "host")


def add_line(root, rel: str, line: str) -> int:
    """Append a line to a file of the fake root; its 1-based line number."""
    path = root / rel
    text = path.read_text()
    path.write_text(text + line + "\n")
    return text.count("\n") + 1


@pytest.mark.slow
@pytest.mark.parametrize("command", [("snapshot", "--json"), ("status", "--no-probe", "-i", "0.2", "--json")])
def test_a_5000_digit_err_row_is_a_problem_and_the_rest_is_read(root, command):
    line = add_line(root, "proc/interrupts", f"ERR: {DIGITS_5000}")
    code, out, err = cli(*command, root=root)
    assert code == EXIT_PARTIAL, err
    assert f"/proc/interrupts:{line}: row 'ERR': a 5,000-digit number is beyond a 64-bit counter" in err
    assert "Traceback" not in err and DIGITS_5000[:100] not in err + out
    report = json.loads(out)
    if command[0] == "snapshot":
        assert "100" in report["interrupts"]["rows"] and "ERR" not in report["interrupts"]["rows"]
    else:
        assert {d["name"] for d in report["devices"]} == {"ens1f0", "eth0", "nvme0", "vda"}


@pytest.mark.parametrize(
    ("rel", "line"),
    [
        ("proc/interrupts", f"NMI: 1 2 3 4 5 6 7 8 {DIGITS_5000} Non-maskable interrupts"),
        ("proc/interrupts", f"130: 1 2 3 4 5 6 7 {'1' * 21} PCI-MSI 1-edge eth9"),
        ("proc/softirqs", f"TIMER: {DIGITS_5000}"),
        ("proc/stat", f"intr {DIGITS_5000} 1 2"),
        ("proc/stat", f"cpu{DIGITS_5000} 1 2 3 4 5 6 7"),
        ("proc/net/dev", "eth9: " + " ".join(["18446744073709551616"] * 16)),
    ],
)
def test_any_counter_past_64_bits_is_a_problem_with_its_line(root, rel, line):
    for name, header in (("proc/softirqs", "    CPU0\n"), ("proc/stat", ""), ("proc/net/dev", "h\nh\n")):
        if not (root / name).exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(header)
    number = add_line(root, rel, line)
    code, out, err = cli("snapshot", "--json", root=root)
    assert code == EXIT_PARTIAL and f"/{rel}:{number}: " in err and "Traceback" not in err
    assert json.loads(out)["interrupts"]["rows"]["100"]["total"] == 70000  # the rest still read


def test_counts_stop_at_64_bits():
    assert is_count("18446744073709551615") and common.parse_count("18446744073709551615") == (1 << 64) - 1
    assert not is_count("18446744073709551616") and common.parse_count("18446744073709551616") is None
    assert not is_count(DIGITS_5000) and not is_count("\u0661\u0662") and not is_count("+1") and not is_count("")
    assert is_count(b"007") and not is_count(b"1" * 21)
    signed = common.parse_signed
    assert signed("-1") == -1 and signed("--1") is None and signed("-" + DIGITS_5000) is None


def test_irq_node_that_is_not_a_number_is_a_problem(root):
    (root / "proc" / "irq" / "36" / "node").write_text(f"-{DIGITS_5000}\n")
    code, out, err = cli("snapshot", "--json", root=root)
    assert code == EXIT_PARTIAL and "/proc/irq/36/node:1: expected a NUMA node number" in err
    affinity = json.loads(out)["affinity"]
    assert affinity["36"]["node"] is None and affinity["100"]["node"] == 0


def test_sysfs_numbers_of_thousands_of_digits_are_skipped(root):
    cache = root / "sys/devices/system/cpu/cpu0/cache"
    (cache / "index2" / "level").write_text(DIGITS_5000 + "\n")
    (root / "sys/devices/system/node" / f"node{'9' * 200}").mkdir(parents=True)
    topo = read_topology(Host(str(root)))
    assert topo.l3_groups == [[0, 1, 2, 3], [4, 5, 6, 7]]  # index3 still the last level
    assert classify_action(f"eth0-TxRx-{DIGITS_5000}").queue is None
    assert classify_action("eth0-TxRx-\u0663").queue is None and classify_action("eth0-TxRx-3").queue == 3


def test_mask_wider_than_any_host_is_refused_quickly():
    start = time.monotonic()
    with pytest.raises(CpuListError, match="hex digits is beyond any real host"):
        parse_cpumask("f" * 1_000_000)
    assert parse_cpumask("0" * 100_000 + "5") == [0, 2]
    assert len(parse_cpumask("f" * 2048)) == 8192  # CONFIG_NR_CPUS at most: 2,048 hex digits
    with pytest.raises(CpuListError, match="2,049 hex digits is beyond any real host"):
        parse_cpumask("1" + "0" * 2048)  # CPU 8192
    assert time.monotonic() - start < 2


def test_knob_value_of_thousands_of_digits_is_refused(root, tmp_path):
    (root / "proc/sys/net/core").mkdir(parents=True)
    (root / "proc/sys/net/core/netdev_budget").write_text("300\n")
    with pytest.raises(KnobError, match="a 5,000-digit number"):
        make_knob(Host(str(root)), "sysctl/net.core.netdev_budget").normalize(DIGITS_5000)
    state = str(tmp_path / "state")
    code, out, err = cli("set", "sysctl/net.core.netdev_budget", DIGITS_5000, root=root, state=state)
    assert code == EXIT_ERROR and "expected a whole number" in out + err and "Traceback" not in err
    code, _, err = cli("get", f"irq/{DIGITS_5000}/affinity", root=root)
    assert code == EXIT_ERROR and "Traceback" not in err


def test_line_numbers_count_newlines_only():
    """str.splitlines() also breaks at \\f, \\x1c and U+2028: the FILE:LINE after one would be wrong."""
    text = "h\nh\nlo: x\x0cy\neth0: bad\n"
    assert [p.line for p in parse_netdev(text).problems] == [3, 4]
    assert [p.line for p in parse_stat("intr x\u2028y\nsoftirq z\n").problems] == [1, 2]
    assert [p.line for p in parse_softirqs("CPU0\nTIMER: \x1c\nNET_RX: x\n").problems] == [2, 3]


# -- issue 16.10: cost bounded by the input, not by an attacker ----------------------------------------------------


def test_cpulist_of_repeated_wide_ranges_costs_its_length():
    """`0-8191` repeated 3,000 times (21 kB, a valid list): 3,000 x 8,192 set insertions took 15 s; now bytes."""
    start = time.monotonic()
    assert parse_cpulist(",".join(["0-8191"] * 3000)) == list(range(8192))
    assert parse_cpulist(",".join(["0-8191:8191/8192"] * 3000)) == list(range(8191))
    assert time.monotonic() - start < 1


def test_cpulist_beyond_nr_cpus_is_refused():
    """CPU ids are below CONFIG_NR_CPUS, at most 8,192 on any architecture: `0-65535` named 65,536 CPUs."""
    assert parse_cpulist("0-8191")[-1] == 8191
    with pytest.raises(CpuListError, match=r"CPU 65535 in '0-65535' is beyond any real host .*at most 8,192"):
        parse_cpulist("0-65535")
    with pytest.raises(CpuListError, match="CPU 8192"):
        parse_cpulist("0,8192")


MAX_ROWS = 65_536  # parse/interrupts.py MAX_ROWS, written out so that the test runs on the code before it


def test_interrupts_past_the_row_cap_are_one_problem():
    """Every row parsed, however many (100 MB: 78 s, 3.6 GB in `snapshot`); now 65,536 and one FILE:LINE problem
    (tests/cli/test_cost_bounds.py runs the 100 MB file)."""
    header = b"        CPU0       CPU1\n"
    data = header + b"".join(b"%d: 0 0 PCI-MSI 1-edge q\n" % irq for irq in range(2 * MAX_ROWS))
    start = time.monotonic()
    table = parse_interrupts(data)
    assert time.monotonic() - start < 2
    assert len(table.rows) == MAX_ROWS
    assert [str(p) for p in table.problems] == [
        f"/proc/interrupts:{MAX_ROWS + 2}: more than 65,536 rows (the cap: more IRQs than hosts have); the rest ignored"
    ]
