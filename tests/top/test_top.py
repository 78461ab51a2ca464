"""`irqtune top`: the row model, the plain and rich renderers, and the live screen in a real terminal (tmux)."""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, cli, fixture_text, make_root, real_linux, require
from rich.console import Console

from irqtune.host import Host
from irqtune.measure.inventory import Inventory, IrqInfo, build_inventory
from irqtune.measure.rates import Rates, RowRate, compute_rates
from irqtune.measure.snapshot import IrqAffinity, take_snapshot
from irqtune.parse.interrupts import parse_interrupts
from irqtune.probe.base import Histogram
from irqtune.top.model import SORTS, cpu_rows, irq_rows, spread_text
from irqtune.top.render import plain_block, rich_frame
from irqtune.top.sample import Banner, Sample

HOSTILE_DEVICE = "eth\x1b[31m0"
HOSTILE_ACTION = "[bold red]pwn[/bold red]\x07"


def _rates(per_irq: dict[str, dict[int, float]], cpus: tuple[int, ...] = (0, 1, 2, 3)) -> Rates:
    rates = Rates(interval=1.0, cpus=list(cpus))
    for key, per_cpu in per_irq.items():
        rates.interrupts[key] = RowRate(key, per_cpu, sum(per_cpu.values()))
    return rates


def _info(irq: int, action: str, device: str | None = None, role: str | None = None, queue: int | None = None,
          effective: list[int] | None = None) -> IrqInfo:  # fmt: skip
    info = IrqInfo(irq=irq, actions=(action,), chip="PCI-MSI", device=device, role=role, queue=queue)
    info.affinity = IrqAffinity(requested=[0, 1, 2, 3], effective=effective)
    return info


def _hist(count: int, mean_ns: int, max_ns: int) -> Histogram:
    hist = Histogram()
    hist.add(count, count * mean_ns, max_ns, [])
    return hist


@pytest.fixture
def model() -> tuple[Rates, Inventory, dict[int, Histogram]]:
    """Five IRQs: a busy one-CPU queue, a wide quieter one, a slow handler, an idle one, one without device."""
    rates = _rates(
        {
            "30": {0: 9000.0, 1: 0.0, 2: 0.0, 3: 0.0},
            "31": {0: 1000.0, 1: 1000.0, 2: 1000.0, 3: 500.0},
            "32": {0: 0.0, 1: 0.0, 2: 200.0, 3: 0.0},
            "33": {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0},
            "9": {0: 50.0, 1: 0.0, 2: 0.0, 3: 0.0},
            "LOC": {0: 250.0, 1: 240.0, 2: 1000.0, 3: 0.0},
            "RES": {0: 3.0, 1: 0.0, 2: 0.0, 3: 7.0},
            "ERR": {},
        }
    )
    rates.irq_time = {0: 0.05, 1: 0.01}
    rates.softirq_time = {0: 0.10, 1: 0.02}
    inventory = Inventory()
    for info in (
        _info(30, "eth0-TxRx-0", "eth0", "rxtx", 0, [0]),
        _info(31, "nvme0q1", "nvme0", "io", 1, [0, 1, 2, 3]),
        _info(32, "virtio1-req.0", "vda", "io", 0, [2]),
        _info(33, "eth0-TxRx-1", "eth0", "rxtx", 1, None),
        _info(9, "acpi"),
    ):
        inventory.irqs[info.irq] = info
    latency = {30: _hist(9000, 2_000, 9_000), 32: _hist(200, 15_000, 40_000), 31: _hist(3500, 2_000, 60_000)}
    return rates, inventory, latency


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("rate", [30, 31, 32, 9, 33]),  # busiest first; idle last
        ("cpus", [31, 30, 32, 9, 33]),  # widest first, ties by rate
        ("latency", [32, 31, 30, 9, 33]),  # slowest mean first (31 beats 30 on max); unmeasured by rate
        ("irq", [9, 30, 31, 32, 33]),
        ("device", [30, 33, 31, 32, 9]),  # eth0, nvme0, vda, then no device
    ],
)
def test_rows_sorted_by_each_key(model, sort, order):
    rates, inventory, latency = model
    rows = irq_rows(rates, inventory, latency, sort)
    assert [r.irq for r in rows] == order
    assert set(SORTS) == {"rate", "cpus", "latency", "irq", "device"}


def test_row_fields(model):
    rates, inventory, latency = model
    rows = {r.irq: r for r in irq_rows(rates, inventory, latency)}
    busy, wide, idle, bare = rows[30], rows[31], rows[33], rows[9]
    assert (busy.rate, busy.cpus, busy.spread) == (9000.0, 1, "0:100%")
    assert (busy.device, busy.queue, busy.actions, busy.effective) == ("eth0", "rxtx 0", "eth0-TxRx-0", "0")
    assert busy.latency is not None and (busy.latency.mean_us, busy.latency.max_us) == (2.0, 9.0)
    assert (wide.cpus, wide.spread, wide.effective) == (4, "0:29% 1:29% 2:29% 3:14%", "0-3")
    assert (idle.rate, idle.cpus, idle.spread, idle.effective, idle.latency) == (0.0, 0, "idle", "0-3", None)
    assert (bare.device, bare.queue) == ("-", "-")
    assert irq_rows(None, inventory)[0].spread == "-"  # no window: nothing known about the spread


def test_spread_text():
    assert spread_text({}) == "-"
    assert spread_text({0: 0.0, 1: 0.0}) == "idle"
    assert spread_text({0: 1.0, 1: 3.0}) == "1:75% 0:25%"
    assert spread_text({c: 10.0 + c for c in range(6)}) == "5:20% 4:19% 3:17% 2:16% +2"
    assert spread_text({3: 5.0, 1: 5.0}) == "1:50% 3:50%"  # ties in CPU order


def test_cpu_rows(model):
    rates, _, _ = model
    cpus = {c.cpu: c for c in cpu_rows(rates)}
    assert cpus[0].device_irqs == 9000.0 + 1000.0 + 50.0
    assert cpus[2].device_irqs == 1200.0
    assert cpus[0].arch == {"LOC": 250.0, "RES": 3.0}  # CAL/TLB absent on this host: no column
    assert (cpus[0].irq_time, cpus[0].softirq_time, cpus[3].irq_time) == (0.05, 0.10, None)
    arm = cpu_rows(_rates({"IPI1": {0: 2.0, 1: 1.0}, "IPI0": {0: 5.0, 1: 0.0}, "40": {1: 8.0}}, cpus=(0, 1)))
    assert list(arm[1].arch) == ["IPI0", "IPI1"] and arm[1].device_irqs == 8.0


def test_hostile_names_are_escaped(model):
    rates, inventory, latency = model
    inventory.irqs[30].device = HOSTILE_DEVICE
    inventory.irqs[30].actions = (HOSTILE_ACTION, "tab\there")
    row = irq_rows(rates, inventory, latency)[0]
    assert row.device == "eth\\x1b[31m0"
    assert row.actions == "[bold red]pwn[/bold red]\\x07, tab\\there"
    sample = Sample(0.0, rates, inventory, latency)
    banner = Banner("host\x1b]0;x\x07", "6.1", "hardirq probe (eBPF)")
    plain = plain_block(banner, sample, "rate")
    assert "\x1b" not in plain and "\x07" not in plain
    assert "[bold red]pwn[/bold red]" in plain
    out = io.StringIO()
    Console(file=out, width=200, height=40, force_terminal=True, color_system="truecolor").print(
        rich_frame(banner, sample, "rate", 40)
    )
    screen = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())  # rich's own styling
    assert "[bold red]pwn[/bold red]" in screen, "markup in a kernel name must print as written"
    assert "eth\\x1b[31m0" in screen
    assert "\x07" not in screen and "\x1b]" not in screen


def test_rich_frame_fits_and_marks_the_sort(model):
    rates, inventory, latency = model
    out = io.StringIO()
    console = Console(file=out, width=120, height=14, color_system=None)
    console.print(rich_frame(Banner("h", "k", "x"), Sample(0.0, rates, inventory, latency), "cpus", 14))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("irqtune top  h  kernel k") and "sort cpus" in lines[0]
    assert "q quit" in lines[2]
    assert any(line.lstrip().startswith("IRQ") and "ACTIONS" in line for line in lines)
    assert sum(bool(re.match(r"\s*\d+\s+[\d,.]+\s+\d\s", line)) for line in lines) >= 5  # CPU rows + some IRQs
    waiting = io.StringIO()
    Console(file=waiting, width=80, color_system=None).print(rich_frame(Banner("h", "k", "loading"), None, "rate", 20))
    assert "measuring the first window" in waiting.getvalue()


def test_rows_from_a_real_series(tmp_path):
    """netutils' 4-CPU multiqueue host read twice ~1 s apart: rates, device queues and LOC per CPU."""
    roots = []
    for n in (1, 2):
        name = f"interrupts-netutils-x86_64-4cpu-multiqueue-series-t{n}.txt"
        roots.append(make_root(tmp_path / f"t{n}", {"proc/interrupts": fixture_text(name)}))
    before, after = (take_snapshot(Host(str(r))) for r in roots)
    after.monotonic = before.monotonic + 1.0
    rates = compute_rates(before, after)
    inventory = build_inventory(Host(str(roots[1])), after.interrupts, after.affinity)
    rows = irq_rows(rates, inventory)
    old = parse_interrupts(fixture_text("interrupts-netutils-x86_64-4cpu-multiqueue-series-t1.txt")).rows
    new = parse_interrupts(fixture_text("interrupts-netutils-x86_64-4cpu-multiqueue-series-t2.txt")).rows
    expected = sorted(((new[k].total - old[k].total, int(k)) for k in new if k.isdigit()), key=lambda d: (-d[0], d[1]))
    assert [(int(r.rate), r.irq) for r in rows] == expected
    top = rows[0]
    assert top.device in ("eth4", "eth5") and top.queue.startswith("rxtx ") and top.cpus == 1
    assert sum(c.arch["LOC"] for c in cpu_rows(rates)) == 444720655 - 444717631


@pytest.mark.slow
def test_plain_mode_prints_one_block_per_refresh(tmp_path):
    text = fixture_text("interrupts-procfs-x86-kvm-4cpu.txt")
    numbered = [row for row in parse_interrupts(text).rows.values() if row.irq is not None]
    root = make_root(tmp_path, {"proc/interrupts": text})
    started = time.monotonic()
    result = cli("top", "--iterations", "2", "-d", "0.2", "--sort", "irq", root=root)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 0.4  # two windows
    blocks = re.split(r"\n(?=irqtune top )", result.stdout)
    titles = [line for line in result.stdout.splitlines() if line.startswith("irqtune top ")]
    assert len(titles) == 2 and len(blocks) == 2
    for block in blocks:
        assert "sort irq" in block and "window 0.2" in block
        assert "handler latency: not measured: eBPF probes measure the running kernel" in block
        lines = block.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("IRQ "))
        assert lines[start].split() == ["IRQ", "RATE/s", "CPUS", "PER-CPU", "MEAN-us", "MAX-us", "EFFECTIVE", "DEVICE",
                                  "QUEUE", "ACTIONS"]  # fmt: skip
        irq_lines = lines[start + 1 : lines.index("", start)]
        assert [int(line.split()[0]) for line in irq_lines[:3]] == [0, 1, 4]
        assert len(irq_lines) == len(numbered) and "ttyS0" in block
    assert result.stdout.count("\n\nirqtune top ") == 1 and result.stdout.endswith("\n\n")  # a blank line after each


def test_plain_mode_top_limits_rows(tmp_path):
    root = make_root(tmp_path, {"proc/interrupts": fixture_text("interrupts-procfs-x86-kvm-4cpu.txt")})
    result = cli("top", "-n", "1", "-d", "0.1", "--top", "3", "-s", "irq", root=root)
    assert result.exit_code == 0
    assert re.search(r"^\(\d+ more IRQs; --top to show more\)$", result.stdout, re.M)


def test_exit_status(tmp_path):
    root = make_root(tmp_path, {"proc/interrupts": fixture_text("interrupts-procfs-x86-kvm-4cpu.txt")})
    forced = cli("top", "-n", "1", "--probe", root=root)
    assert forced.exit_code == 4 and "eBPF unavailable" in forced.stderr
    (tmp_path / "empty").mkdir()
    empty = cli("top", "-n", "1", root=make_root(tmp_path / "empty", {}))
    assert empty.exit_code == 1 and "/proc/interrupts unavailable" in empty.stderr
    assert cli("top", "--sort", "name", root=root).exit_code == 2
    help_text = cli("top", "--help").stdout
    assert "Exit status:" in help_text and "--iterations" in help_text


# -- the live screen in a real terminal -------------------------------------


class Tmux:
    """A private tmux server (its own socket), so the test never touches anyone else's sessions."""

    def __init__(self, name: str) -> None:
        self.socket = f"irqtune-test-{os.getpid()}-{name}"
        self.name = name

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check,
                              timeout=10)  # fmt: skip

    def start(self, command: str) -> None:
        self("new-session", "-d", "-s", self.name, "-x", "160", "-y", "40", "-c", str(REPO), command)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.name, check=False).stdout

    def alive(self) -> bool:
        return self("has-session", "-t", self.name, check=False).returncode == 0

    def close(self) -> None:
        self("kill-server", check=False)


IRQ_ROW = re.compile(r"^\s*\d+\s+[\d,.]+\s+\d+\s+(\S+%|idle|-)", re.M)


def _wait_for_rows(tmux: Tmux, deadline_s: float = 60.0) -> str:
    deadline = time.monotonic() + deadline_s
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux.screen()
        if "irqtune top" in screen and "window" in screen and len(IRQ_ROW.findall(screen)) >= 3:
            return screen
        time.sleep(0.2)
    pytest.fail(f"no IRQ rows within {deadline_s:g} s; screen:\n{screen}")


def _needs_tmux() -> None:
    require(shutil.which("tmux") is not None, "tmux is not installed")
    require(real_linux(), "needs a real Linux /proc")


@pytest.mark.slow
def test_live_screen_quits_on_q():
    _needs_tmux()
    tmux = Tmux("top-q")
    try:
        tmux.start(f"{sys.executable} -m irqtune top")
        screen = _wait_for_rows(tmux)
        assert "sort: r rate" in screen and "q quit" in screen
        tmux("send-keys", "-t", tmux.name, "i")  # re-sort by IRQ number: redrawn at once
        deadline = time.monotonic() + 5
        while "sort irq" not in tmux.screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "sort irq" in tmux.screen()
        tmux("send-keys", "-t", tmux.name, "q")
        deadline = time.monotonic() + 5
        while tmux.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not tmux.alive(), f"irqtune top still running 5 s after q:\n{tmux.screen()}"
    finally:
        tmux.close()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_live_screen_stops_on_signals_and_restores_the_terminal(tmp_path, how):
    _needs_tmux()
    tmux = Tmux(f"top-{how}")
    before, after, rc = tmp_path / "before", tmp_path / "after", tmp_path / "rc"
    script = (f"stty -g > {before}; {sys.executable} -m irqtune top --no-probe; echo $? > {rc}; stty -g > {after}; "
              "echo STOPPED; sleep 60")  # fmt: skip
    try:
        tmux.start(f"bash -c '{script}'")
        _wait_for_rows(tmux)
        if how == "ctrl-c":
            tmux("send-keys", "-t", tmux.name, "C-c")
        else:
            shell = int(tmux("display-message", "-p", "-t", tmux.name, "#{pane_pid}").stdout)
            child = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
            assert len(child) == 1
            os.kill(int(child[0]), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while "STOPPED" not in tmux.screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rc.read_text().strip() == "0"
        assert after.read_text() == before.read_text(), "terminal settings not restored"
        assert not IRQ_ROW.search(tmux.screen()), "the alternate screen was not left"
    finally:
        tmux.close()


@pytest.mark.slow
def test_live_screen_ends_when_the_terminal_goes_away(tmp_path):
    """The shell survives the hang-up (it ignores SIGHUP), so only the closed terminal tells top to stop."""
    _needs_tmux()
    tmux = Tmux("top-hangup")
    rc, shell_pid = tmp_path / "rc", tmp_path / "shell.pid"
    top = f"{sys.executable} -m irqtune top --no-probe 2>/dev/null"
    command = f"echo $$ > {shell_pid}; trap '' HUP; {top}; echo $? > {rc}"
    try:
        tmux.start(f"bash -c {shlex.quote(command)}")
        _wait_for_rows(tmux)
        tmux.close()
        deadline = time.monotonic() + 5
        while not rc.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rc.exists(), "irqtune top kept running after its terminal closed"
        assert rc.read_text().strip() == "0"
    finally:
        tmux.close()
        if not rc.exists() and shell_pid.exists():  # stop the one we started, if it lingers
            shell = shell_pid.read_text().strip()
            for child in Path(f"/proc/{shell}/task/{shell}/children").read_text().split():
                os.kill(int(child), signal.SIGKILL)
