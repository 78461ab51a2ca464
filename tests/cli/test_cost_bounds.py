"""Issue 16.10: a command's cost is bounded by its input and the kernel's limits, not by an attacker's tree.

Each hostile tree is built under tmp_path and the command runs in a subprocess that reports its own time and
peak memory (after the imports), so that other tests' children do not blur the numbers. The old costs, on a
loaded 2-CPU machine: a 100 MB /proc/interrupts 49 s and 2.3 GB, a 3,000-entry journal's restore 108 s, a
21 kB smp_affinity_list of `0-8191` repeated 15 s per IRQ; masks and lists past CPU 8191 were accepted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fakehost
import pytest

pytestmark = pytest.mark.slow

# runs the CLI in a child and writes "COST <seconds> <MiB of peak RSS growth>" last on stderr
_MEASURED = """
import resource, sys, time
from irqtune.cli import main
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
try:
    main(sys.argv[1:], prog_name="irqtune")
finally:
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    sys.stderr.write(f"\\nCOST {time.monotonic() - start:.3f} {grown:.1f}\\n")
"""


def measured(root: Path, state: Path, *args: str) -> tuple[int, str, str, float, float]:
    """(exit code, stdout, stderr without the COST line, seconds, MiB of RSS growth) of `irqtune ARGS`."""
    argv = [sys.executable, "-c", _MEASURED, "--root", str(root), "--state-dir", str(state), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    err, _, cost = done.stderr.rpartition("\nCOST ")
    seconds, grown = (float(x) for x in cost.split())
    return done.returncode, done.stdout, err, seconds, grown


@pytest.fixture
def root(tmp_path):
    return fakehost.build(tmp_path / "host")


def warnings(err: str) -> list[str]:
    return [
        line.removeprefix("irqtune: warning: ") for line in err.splitlines() if line.startswith("irqtune: warning:")
    ]


def test_snapshot_refuses_a_hint_wider_than_nr_cpus_and_goes_on(root, tmp_path):
    """16,384 hex digits name 65,536 CPUs: a kernel prints at most 2,048 (CONFIG_NR_CPUS at most 8,192)."""
    (root / "proc/irq/100/affinity_hint").write_text("f" * 16384 + "\n")
    (root / "proc/irq/101/affinity_hint").write_text("f" * 200_000 + "\n")
    code, out, err, seconds, grown = measured(root, tmp_path / "state", "snapshot", "--json")
    assert code == 3 and seconds < 2 and grown < 100, (seconds, grown)
    assert warnings(err) == [
        f"/proc/irq/{irq}/affinity_hint:1: a CPU mask of {digits} hex digits is beyond any real host "
        "(at most 2,048: CONFIG_NR_CPUS is at most 8,192)"
        for irq, digits in ((100, "16,384"), (101, "200,000"))
    ]
    affinity = json.loads(out)["affinity"]
    assert affinity["100"]["hint"] is None and affinity["102"]["hint"] == [] and affinity["100"]["requested"]


def test_snapshot_of_a_100_mb_interrupts_stops_at_the_row_cap(root, tmp_path):
    """1.6 million rows: 65,536 are read (more IRQs than hosts have), then one FILE:LINE problem."""
    zeros = b"         0 " * fakehost.CPUS
    with open(root / "proc/interrupts", "wb") as out:
        out.write(fakehost.HEADER.encode() + b"\n")
        irq = 0
        while out.tell() < 100_000_000:
            out.write(b"".join(b"%d: %s PCI-MSI 1-edge q\n" % (n, zeros) for n in range(irq, irq + 10_000)))
            irq += 10_000
    code, _, err, seconds, grown = measured(root, tmp_path / "state", "snapshot")
    assert code == 3 and seconds < 10 and grown < 400, (seconds, grown)
    shown = warnings(err)
    assert (
        "/proc/interrupts:65538: more than 65,536 rows (the cap: more IRQs than hosts have); the rest ignored" in shown
    )


def test_status_refuses_online_cpus_beyond_nr_cpus_and_goes_on(root, tmp_path):
    """`online = 0-65535` named 65,536 CPUs (each command 40 s); the header's CPUs stand in."""
    (root / "sys/devices/system/cpu/online").write_text("0-65535\n")
    code, out, err, seconds, grown = measured(root, tmp_path / "state", "status", "-i", "0", "--no-probe")
    assert code == 3 and seconds < 2 and grown < 100, (seconds, grown)
    assert (
        "/sys/devices/system/cpu/online:1: CPU 65535 in '0-65535' is beyond any real host (CPU ids are below "
        "CONFIG_NR_CPUS, at most 8,192)" in warnings(err)
    )
    assert "8 online (0-7)" in out


def test_snapshot_of_an_affinity_list_of_repeated_ranges_costs_its_length(root, tmp_path):
    """A valid but redundant 21 kB list (`0-8191` 3,000 times): 15 s per IRQ as set insertions."""
    for irq in (100, 101):
        (root / f"proc/irq/{irq}/smp_affinity_list").write_text(",".join(["0-8191"] * 3000) + "\n")
    code, out, _, seconds, _ = measured(root, tmp_path / "state", "snapshot", "--json")
    assert code == 0 and seconds < 2, seconds
    assert json.loads(out)["affinity"]["101"]["requested"] == list(range(8192))


def test_restore_of_a_3000_entry_journal_is_linear(root, tmp_path):
    """One save for the whole restore and /proc/interrupts read once (a save and a parse per entry: 108 s)."""
    state, rows, entries = tmp_path / "state", [fakehost.HEADER], {}
    for n in range(3000):
        irq = 1000 + n
        fakehost.write(root / f"proc/irq/{irq}/smp_affinity_list", "4\n")
        rows.append(f"{irq}: " + "         0 " * fakehost.CPUS + f" PCI-MSIX 1-edge q{n}")
        entries[f"irq/{irq}/affinity"] = {"original": "0-7", "written": "4", "first_changed": n, "last_changed": n,
                                          "boot_id": "boot-1", "context": {"actions": [f"q{n}"]}}  # fmt: skip
    (root / "proc/interrupts").write_text("\n".join(rows) + "\n")
    fakehost.write(state / "journal.json", json.dumps({"schema": 1, "entries": entries}))
    code, out, err, seconds, _ = measured(root, state, "restore")
    assert code == 0 and seconds < 5, (seconds, err[-500:])
    assert out.count(": restored: 4 -> 0-7") == 3000
    assert json.loads((state / "journal.json").read_text())["entries"] == {}
    assert (root / "proc/irq/3999/smp_affinity_list").read_text().strip() == "0-7"
