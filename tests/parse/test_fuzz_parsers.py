"""Fuzz every reader of kernel text: numbers of any size and script, arbitrary bytes, long lines.

Whatever /proc and /sys hold (a corrupt fixture, a fake root, a hostile container view), no exception
escapes a parser or reader, and every problem reported reads `FILE:LINE: message` on one line.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from conftest import cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irqtune.act.knobs import KnobError, Unsupported, make_knob
from irqtune.host import Host
from irqtune.measure.inventory import build_inventory
from irqtune.measure.nvme import read_nvme
from irqtune.measure.queues import classify_action
from irqtune.measure.rates import compute_rates
from irqtune.measure.snapshot import take_snapshot
from irqtune.measure.tasks import find_process_threads
from irqtune.measure.topology import Topology, parse_cmdline, read_topology
from irqtune.parse.common import CpuListError, Problem, parse_cpulist, parse_cpumask
from irqtune.parse.diskstats import parse_diskstats
from irqtune.parse.interrupts import InterruptTable, parse_header, parse_interrupts
from irqtune.parse.netdev import parse_netdev, parse_netstat
from irqtune.parse.softirqs import parse_softirqs
from irqtune.parse.softnet import parse_softnet
from irqtune.parse.stat import parse_stat
from irqtune.probe.runner import probe_context

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
MAX_COUNT = (1 << 64) - 1  # counters are at most 64-bit
PROBLEM = re.compile(r"\A/[^\n]*:[1-9][0-9]*: [^\n]*\S[^\n]*\Z")  # FILE:LINE: message, one line

# numbers of every kind: 64-bit and beyond, hundreds and thousands of digits (int() refuses > 4,300), signed,
# other scripts' digits, hex
HUGE = st.sampled_from([20, 21, 40, 400, 4301, 5000]).map(lambda n: "9" * n)
NUMBER = st.one_of(
    st.integers(0, 2**32).map(str),
    st.integers(0, MAX_COUNT).map(str),
    st.sampled_from([str(MAX_COUNT), str(MAX_COUNT + 1), "0" * 25 + "1", "-1", "+4", "1_0", "0x1f", "1e3", "7.0"]),
    st.integers(-(10**400), 10**400).map(str),
    HUGE,
    HUGE,
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=25),  # Arabic-Indic, fullwidth, superscript
    st.integers(0, 2**64).map(lambda n: f"{n:08x}"),
)
WORD = NUMBER | st.text(max_size=10)
NAMES = ["ERR", "MIS", "LOC", "IPI0", "5", "36", "eth0", "TcpExt", "TIMER", "NET_RX", "cpu", "cpu0", "intr", "softirq"]
ROW = st.tuples(
    st.sampled_from(NAMES) | NUMBER,
    st.sampled_from([": ", ":", " "]),
    st.lists(NUMBER, max_size=8),
    st.sampled_from(["", " PCI-MSI 1-edge eth0-TxRx-0", " Local timer interrupts"]) | st.text(max_size=20),
)
ROW = ROW.map(lambda r: r[0] + r[1] + " ".join(r[2]) + r[3])  # fmt: skip
LINE = ROW | st.lists(WORD, max_size=10).map(" ".join) | st.text(max_size=40)


@st.composite
def kernel_file(draw, first_lines=("", "CPU0 CPU1", "    CPU0       CPU1       CPU3")) -> bytes:
    """A file in the shape of a kernel table with damaged fields, then maybe raw bytes (NUL, invalid UTF-8)."""
    lines = [draw(st.sampled_from(first_lines)), *draw(st.lists(LINE, max_size=6))]
    if draw(st.booleans()):
        lines.append(draw(NUMBER) * draw(st.integers(1, 2000)))  # a very long line
    data = "\n".join(lines).encode("utf-8", "surrogatepass") + (b"\n" if draw(st.booleans()) else b"")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=30) | st.sampled_from([b"\0", b"\xff\xfe", b"\n\0\n"])) + data[at:]
    return data


def text_of(data: bytes) -> str:
    return data.decode("utf-8", "replace")  # as Host.read gives it


def check(problems: list[Problem], source: str, data: bytes | str) -> None:
    lines = max(1, len(data.splitlines()) + 1)
    for problem in problems:
        assert PROBLEM.match(str(problem)), problem
        assert problem.file == source and 1 <= problem.line <= lines, problem


@pytest.mark.slow
@FUZZ
@given(kernel_file())
def test_interrupts_and_softirqs(data):
    check(parse_interrupts(data, "/proc/interrupts").problems, "/proc/interrupts", data)
    text = text_of(data)
    check(parse_interrupts(text, "/proc/interrupts").problems, "/proc/interrupts", data)
    check(parse_softirqs(text, "/proc/softirqs").problems, "/proc/softirqs", data)
    parse_header(text.partition("\n")[0])


@pytest.mark.slow
@FUZZ
@given(kernel_file(first_lines=("", "00000001 00000000 00000002")), st.none() | st.lists(st.integers(0, 64)))
def test_softnet_stat(data, online):
    table = parse_softnet(text_of(data), online, "/proc/net/softnet_stat")
    check(table.problems, "/proc/net/softnet_stat", data)
    assert all(0 <= v < 1 << 32 for row in table.rows for v in (row.processed, row.dropped, row.time_squeeze))


@pytest.mark.slow
@FUZZ
@given(kernel_file(first_lines=("cpu  1 2 3 4 5 6 7", "cpu0 1 2 3 4 5 6 7", "intr 5", "softirq 9 1")))
def test_stat(data):
    stat = parse_stat(text_of(data), "/proc/stat")
    check(stat.problems, "/proc/stat", data)
    assert all(0 <= n <= MAX_COUNT for n in (stat.intr_total or 0, stat.softirq_total or 0))


@pytest.mark.slow
@FUZZ
@given(kernel_file(first_lines=("Inter-|   Receive\n face |bytes", "TcpExt: A B\nTcpExt: 1 2", "")))
def test_net_dev_and_netstat(data):
    text = text_of(data)
    table = parse_netdev(text, "/proc/net/dev")
    check(table.problems, "/proc/net/dev", data)
    assert all(0 <= n <= MAX_COUNT for counters in table.devices.values() for n in counters.values())
    _, problems = parse_netstat(text, "/proc/net/netstat")
    check(problems, "/proc/net/netstat", data)


CPU_TEXT = st.one_of(
    st.lists(st.one_of(NUMBER, st.tuples(NUMBER, NUMBER).map("-".join)), max_size=5).map(",".join),
    st.tuples(NUMBER, NUMBER, NUMBER, NUMBER).map(lambda t: f"{t[0]}-{t[1]}:{t[2]}/{t[3]}"),
    st.text(max_size=30),
    st.integers(1, 20000).map(lambda n: "f" * n),  # masks of every width
    st.lists(st.integers(0, 2**32).map(lambda n: f"{n:08x}"), max_size=6).map(",".join),
)


@pytest.mark.slow
@FUZZ
@given(CPU_TEXT, st.none() | st.integers(0, 5000))
def test_cpu_lists_masks_and_cmdline(text, last):
    for parse in (parse_cpulist, parse_cpumask, lambda t: parse_cpulist(t, last)):
        try:
            cpus = parse(text)
        except CpuListError as err:
            assert "\n" not in str(err) and len(str(err)) < 300
        else:
            assert all(0 <= c < 8192 for c in cpus)  # CONFIG_NR_CPUS is at most 8192
    topo = Topology()
    parse_cmdline(f"ro isolcpus=managed_irq,{text} nohz_full={text} -- x", topo, last=last)
    check(topo.problems, "/proc/cmdline", "")
    classify_action(f"eth0-TxRx-{text}")
    classify_action(f"nvme0q{text}")


# -- readers fed a whole fake tree ------------------------------------------------------------

FILENAME = (NUMBER | st.text(st.characters(blacklist_characters="/\0"), min_size=1, max_size=20)).filter(
    lambda n: n not in (".", "..") and len(n.encode("utf-8", "surrogatepass")) < 250
)
VALUE = st.one_of(NUMBER.map(str.encode), CPU_TEXT.map(str.encode), kernel_file(), st.binary(max_size=40))


@st.composite
def fake_tree(draw) -> dict[str, bytes]:
    """Every file irqtune reads as kernel text, each with a damaged value."""
    irq = draw(st.sampled_from(["5", "36", draw(NUMBER)]))
    files = {
        "proc/interrupts": draw(kernel_file()) + f"\n{irq}: 1 2 PCI-MSI 1-edge eth0-TxRx-0\n".encode(),
        "proc/softirqs": draw(kernel_file()),
        "proc/net/softnet_stat": draw(kernel_file(first_lines=("00000001 00000000 00000002",))),
        "proc/stat": draw(kernel_file(first_lines=("cpu0 1 2 3 4 5 6 7",))),
        "proc/net/dev": draw(kernel_file(first_lines=("h\nh",))),
        "proc/net/netstat": draw(kernel_file(first_lines=("TcpExt: BusyPollRxPackets",))),
        "proc/cmdline": b"isolcpus=" + draw(VALUE),
        "proc/sys/net/core/netdev_budget": draw(VALUE),
        "proc/irq/default_smp_affinity": draw(VALUE),
        "sys/class/net/eth0/gro_flush_timeout": draw(VALUE),
        "sys/class/net/eth0/queues/rx-0/rps_cpus": draw(VALUE),
    }
    for name in ("smp_affinity_list", "effective_affinity_list", "affinity_hint", "node"):
        files[f"proc/irq/{irq}/{name}"] = files[f"proc/irq/5/{name}"] = draw(VALUE)
    cpu = "sys/devices/system/cpu"
    for name in ("online", "possible", "isolated", "nohz_full", "cpu0/topology/thread_siblings_list"):
        files[f"{cpu}/{name}"] = draw(VALUE)
    files[f"{cpu}/cpu0/cache/index{draw(FILENAME)}/level"] = draw(VALUE)
    files[f"{cpu}/cpu0/cache/index3/shared_cpu_list"] = draw(VALUE)
    files[f"sys/devices/system/node/node{draw(FILENAME)}/cpulist"] = draw(VALUE)
    function = "sys/devices/pci0000:00/0000:00:03.0"
    files[f"{function}/msi_irqs/{draw(FILENAME)}"] = b"msix\n"
    files[f"{function}/irq"] = files[f"{function}/numa_node"] = draw(VALUE)
    files[f"{function}/local_cpulist"] = draw(VALUE)
    files[f"sys/block/nvme0n1/mq/{draw(FILENAME)}/cpu_list"] = draw(VALUE)
    files[f"proc/{draw(FILENAME)}/comm"] = b"worker\n"
    pid = draw(st.sampled_from(["42", str(MAX_COUNT), draw(NUMBER)]))
    files[f"proc/{pid}/comm"] = b"worker\n"
    files[f"proc/{pid}/task/{pid}/stat"] = b"42 (worker) " + b" ".join(draw(st.lists(VALUE, max_size=40)))
    files[f"proc/{pid}/task/{pid}/status"] = b"Cpus_allowed_list:\t" + draw(VALUE)
    return {k: v for k, v in files.items() if _usable(k)}


def _usable(path: str) -> bool:
    parts = path.split("/")
    return all(p and p not in (".", "..") and len(p.encode("utf-8", "surrogatepass")) < 250 for p in parts)


def write_tree(root: Path, files: dict[str, bytes]) -> Host:
    for rel, data in files.items():
        path = root / rel
        if any(p.is_file() for p in path.parents if root in p.parents):
            continue  # a fuzzed name collided with a file
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_dir():
            path.write_bytes(data)
    link = root / "sys/class/net/eth0/device"
    if not link.exists():
        os.symlink(root / "sys/devices/pci0000:00/0000:00:03.0", link)
    for name in ("sys/class/nvme/nvme0", "sys/kernel/debug"):
        (root / name).mkdir(parents=True, exist_ok=True)
    return Host(str(root))


KNOBS = ("irq/default/affinity", "irq/5/affinity", "sysctl/net.core.netdev_budget", "net/eth0/gro-flush-timeout",
         "net/eth0/rx-0/rps-cpus")  # fmt: skip


@pytest.mark.slow
@FUZZ
@given(fake_tree())
def test_readers_of_a_fake_tree(files):
    with tempfile.TemporaryDirectory() as tmp:
        host = write_tree(Path(tmp), files)
        snap = take_snapshot(host)
        for problem in snap.problems:
            assert PROBLEM.match(str(problem)), problem
        topo = read_topology(host, snap.cpus)
        for problem in topo.problems:
            assert PROBLEM.match(str(problem)), problem
        build_inventory(host, snap.interrupts or InterruptTable(cpus=[]), snap.affinity)
        read_nvme(host)
        compute_rates(snap, take_snapshot(host))
        find_process_threads(host, "worker")
        probe_context(host)
        for knob in KNOBS:
            try:
                make_knob(host, knob).read()
            except (KnobError, Unsupported) as err:
                assert "\n" not in str(err)


@pytest.mark.slow
@settings(FUZZ, max_examples=15)
@given(fake_tree())
def test_commands_on_a_fake_tree_print_no_traceback(files):
    """What the user sees: exit 0, 1 or 3, and each problem on stderr as FILE:LINE: message; input status calls
    malformed (exit 3) is exit 3 for plan and run too, with the same warnings (issue 16.9)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(Path(tmp), files)
        codes, warnings = {}, {}
        for args in (("snapshot", "--json"), ("status", "--no-probe", "-i", "0"), ("nvme",), ("get", "irq/5/affinity"),
                     ("plan",), ("run", "--passes", "1")):  # fmt: skip
            result = cli(*args, root=tmp, state=Path(tmp) / "state")
            assert result.exit_code in (0, 1, 3), (args, result.stderr)
            codes[args[0]] = result.exit_code
            warnings[args[0]] = {line for line in result.stderr.splitlines() if line.startswith("irqtune: warning: /")}
            for line in warnings[args[0]]:
                if "more problems" not in line:
                    assert PROBLEM.match(line.removeprefix("irqtune: warning: ")), line
        if codes["status"] == 3:
            assert codes["plan"] in (1, 3) and codes["run"] == 3 and warnings["plan"] == warnings["status"], codes


@pytest.mark.parametrize("digits", [20, 21, 400, 5000])
def test_oversized_numbers_in_every_counter_file_are_problems(digits):
    """The shrunk form of what the fuzz finds: a number past 2**64-1 in any counter file is FILE:LINE."""
    big = "9" * digits
    cases = [
        (parse_interrupts, f"CPU0\nERR: {big}\n", "/proc/interrupts:2:"),
        (parse_interrupts, f"CPU0\n 5: {big} PCI-MSI 1-edge eth0\n", "/proc/interrupts:2:"),
        (parse_softirqs, f"CPU0\nTIMER: {big}\n", "/proc/softirqs:2:"),
        (parse_stat, f"intr {big}\n", "/proc/stat:1:"),
        (parse_netdev, f"h\nh\neth0: {' '.join([big] * 16)}\n", "/proc/net/dev:3:"),
        (parse_diskstats, f"8 0 sda {' '.join([big] * 11)}\n", "/proc/diskstats:1:"),
    ]
    for parse, text, where in cases:
        problems = parse(text).problems
        assert [str(p)[: len(where)] for p in problems] == [where], (text[:40], problems)
    _, problems = parse_netstat(f"TcpExt: A\nTcpExt: {big}\n")
    assert [str(p)[:20] for p in problems] == ["/proc/net/netstat:1:"]
