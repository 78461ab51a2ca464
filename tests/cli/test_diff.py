"""`irqtune diff A.json B.json`: two saved snapshots compared, on fixture roots and on this host."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import cli, fixture_text, make_root

from irqtune.cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL
from irqtune.measure.rates import compute_rates
from irqtune.measure.snapshot import Snapshot, to_json
from irqtune.measure.snapshot_load import SnapshotFileError

SERIES = "interrupts-netutils-x86_64-4cpu-multiqueue-series-t{}.txt"
HEADER = "           CPU0       CPU1       CPU2       CPU3\n"
LOC = "LOC:     {0}     {0}     {0}     {0}   Local timer interrupts\n"


def snapshot_file(tmp_path: Path, name: str, files: dict[str, str], **fields: object) -> Path:
    """`irqtune snapshot --json` of a fixture root, saved with `fields` (monotonic, hostname, boot_id) set."""
    result = cli("snapshot", "--json", root=make_root(tmp_path / f"root-{name}", files))
    assert result.exit_code == EXIT_OK, result.stderr
    data = {**json.loads(result.stdout), **fields}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def diff(*args: object) -> tuple[int, dict | str, str]:
    result = cli("diff", *map(str, args))
    out = result.stdout
    if "--json" in args and result.exit_code in (EXIT_OK, EXIT_PARTIAL):
        out = json.loads(out)
    return result.exit_code, out, result.stderr


def series_root(t: int) -> dict[str, str]:
    return {
        "proc/interrupts": fixture_text(SERIES.format(t)),
        "proc/softirqs": fixture_text(f"softirqs-netutils-i7-series-t{t}.txt"),
        "proc/net/softnet_stat": fixture_text(f"softnet_stat-netutils-series-t{t}.txt"),
        "sys/devices/system/cpu/online": "0-7\n",
    }


def small_root(rows: str, affinity: dict[int, str], loc: int = 1000) -> dict[str, str]:
    files = {"proc/interrupts": HEADER + rows + LOC.format(loc)}
    for irq, cpus in affinity.items():
        files[f"proc/irq/{irq}/smp_affinity_list"] = cpus + "\n"
        files[f"proc/irq/{irq}/effective_affinity_list"] = cpus.split("-")[0] + "\n"
    return files


def test_fixture_series_gives_the_known_rates(tmp_path):
    """netutils' series t1 -> t2 read as if 2 s apart: the deltas of SOURCES.md over 2 s."""
    a = snapshot_file(tmp_path, "a", series_root(1), monotonic=100.0)
    b = snapshot_file(tmp_path, "b", series_root(2), monotonic=102.0)
    code, report, err = diff("--json", a, b)
    assert code == EXIT_OK, err
    assert report["interval"] == 2.0 and report["clock"] == "monotonic"
    assert report["arch_interrupts"]["LOC"]["rate"] == (444720655 - 444717631) / 2  # SOURCES.md LOC sums
    irq34 = next(e for e in report["irqs"] if e["irq"] == 34)
    assert irq34["per_cpu"]["3"] == (2758604207 - 2758558739) / 2 and irq34["device"] == "eth4"
    assert sum(report["softirqs"]["TIMER"].values()) == 1823 / 2  # the eight TIMER deltas of t1 -> t2
    assert sum(s["processed"] for s in report["softnet"].values()) == (17669044261 - 17669041612) / 2
    assert report["changes"]["irqs_appeared"] == [] and report["affinity_changes"] == []
    code, text, _ = diff(a, b)
    assert code == EXIT_OK and "gap 2.00 s" in text and "BUSIEST IRQS" in text and "eth4-TxRx-0" in text


def test_appeared_vanished_and_affinity_changes(tmp_path):
    before = small_root(
        " 30:  100  0  0  0  PCI-MSI-edge  ahci\n 40:  500  0  0  0  PCI-MSI-edge  eth0-TxRx-0\n", {30: "0-3", 40: "0"}
    )
    after = small_root(
        " 30:  300  0  0  0  PCI-MSI-edge  ahci\n 41:   10  0  0  0  PCI-MSI-edge  eth1-TxRx-0\n", {30: "2", 41: "1"}
    )
    a = snapshot_file(tmp_path, "a", before, monotonic=10.0, boot_id="b1", hostname="h")
    b = snapshot_file(tmp_path, "b", after, monotonic=11.0, boot_id="b1", hostname="h")
    code, report, err = diff("--json", a, b)
    assert code == EXIT_OK, err
    changes = report["changes"]
    assert changes["irqs_appeared"] == ["41"] and changes["irqs_vanished"] == ["40"]
    assert changes["devices_appeared"] == ["eth1"] and changes["devices_vanished"] == ["eth0"]
    assert report["affinity_changes"] == [{"irq": 30, "requested": ["0-3", "2"], "effective": ["0", "2"]}]
    assert next(e for e in report["irqs"] if e["irq"] == 30)["rate"] == 200.0
    code, text, _ = diff(a, b)
    assert "AFFINITY CHANGES" in text and "irqs vanished: 40" in text and "devices appeared: eth1" in text


@pytest.mark.parametrize(
    ("a_fields", "b_fields", "b_loc", "why"),
    [
        ({"monotonic": 20.0}, {"monotonic": 10.0}, 20000, "is not later than"),
        ({"monotonic": 10.0, "hostname": "web1"}, {"monotonic": 20.0, "hostname": "web2"}, 20000, "different hosts"),
        ({"monotonic": 10.0, "boot_id": "x"}, {"monotonic": 20.0, "boot_id": "y"}, 20000, "different boots"),
        ({"monotonic": 10.0}, {"monotonic": 20.0}, 10, "most interrupt counters fell"),
    ],
)
def test_snapshots_that_cannot_be_compared_are_refused(tmp_path, a_fields, b_fields, b_loc, why):
    rows = " 30:  5000  0  0  0  PCI-MSI-edge  ahci\n"
    a = snapshot_file(tmp_path, "a", small_root(rows, {}, loc=1000), **a_fields)
    b = snapshot_file(tmp_path, "b", small_root(rows.replace("5000", str(b_loc)), {}, loc=b_loc), **b_fields)
    code, out, err = diff(a, b)
    assert code == EXIT_ERROR and out == ""
    assert "cannot compare" in err and why in err


def test_without_monotonic_the_wall_clock_gives_the_gap(tmp_path):
    """A snapshot saved before `monotonic` was recorded: the gap comes from taken_at."""
    a = snapshot_file(tmp_path, "a", small_root("", {}, loc=1000), taken_at=1000.0, monotonic=None)
    b = snapshot_file(tmp_path, "b", small_root("", {}, loc=1400), taken_at=1004.0, monotonic=None)
    code, report, err = diff("--json", a, b)
    assert code == EXIT_OK, err
    assert report["clock"] == "wall" and report["interval"] == 4.0
    assert report["arch_interrupts"]["LOC"]["rate"] == 4 * 400 / 4


def test_a_file_that_is_no_snapshot_exits_1_naming_it(tmp_path):
    good = snapshot_file(tmp_path, "a", small_root("", {}), monotonic=1.0)
    cases = {"notjson.json": "{oops", "list.json": "[]", "schema.json": '{"schema": 2}',
             "notime.json": '{"schema": 1}', "year9999999.json": '{"schema": 1, "taken_at": 1e300}',
             "rows.json": '{"schema": 1, "taken_at": 1, "interrupts": []}'}  # fmt: skip
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        code, out, err = diff(good, path)
        assert code == EXIT_ERROR and out == "", name
        assert f"{path}:" in err, (name, err)
    code, _, err = diff(good, tmp_path / "missing.json")
    assert code == EXIT_ERROR and "missing.json: No such file" in err


def test_malformed_rows_are_skipped_and_named_file_line(tmp_path):
    rows = " 30:  100  0  0  0  PCI-MSI-edge  ahci\n 31:  7  0  0  0  PCI-MSI-edge  xhci\n"
    a = snapshot_file(tmp_path, "a", small_root(rows, {}), monotonic=1.0)
    b = snapshot_file(tmp_path, "b", small_root(rows.replace("100", "200"), {}), monotonic=2.0)
    data = json.loads(b.read_text())
    data["interrupts"]["rows"]["31"]["counts"] = {"0": -5}
    b.write_text(json.dumps(data, indent=1))
    line = next(n for n, text in enumerate(b.read_text().splitlines(), 1) if text.strip().startswith('"31":'))
    code, report, err = diff("--json", a, b)
    assert code == EXIT_PARTIAL
    assert f"{b}:{line}: expected a counter" in err
    assert report["problems"] == [{"file": str(b), "line": line, "message": report["problems"][0]["message"]}]
    assert next(e for e in report["irqs"] if e["irq"] == 30)["rate"] == 100.0
    assert all(e["irq"] != 31 for e in report["irqs"])


def test_from_json_round_trip_keeps_the_rates(tmp_path):
    """Snapshot.from_json(to_json(s)) gives the rates the snapshots themselves give."""
    snaps = []
    for t in (1, 2):
        result = cli("snapshot", "--json", root=make_root(tmp_path / f"r{t}", series_root(t)))
        snaps.append(Snapshot.from_json(f"s{t}.json", result.stdout))
    snaps[0].monotonic, snaps[1].monotonic = 0.0, 1.0
    loaded = [Snapshot.from_json("x", json.dumps(to_json(s), indent=1)) for s in snaps]
    direct, again = compute_rates(*snaps), compute_rates(*loaded)
    assert again.interrupts == direct.interrupts and again.softirqs == direct.softirqs
    assert again.softnet == direct.softnet and loaded[1].problems == []
    with pytest.raises(SnapshotFileError, match=r"^x: not a schema 1"):
        Snapshot.from_json("x", "{}")


@pytest.mark.slow
def test_two_snapshots_of_this_host_one_second_apart(real_host_required, tmp_path):
    paths = []
    for name in ("a", "b"):
        result = cli("snapshot", "--json")
        assert result.exit_code == EXIT_OK, result.stderr
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(result.stdout)
        if name == "a":
            time.sleep(1)
    code, report, err = diff("--json", *paths)
    assert code == EXIT_OK, err
    assert 0.9 < report["interval"] < 30 and report["clock"] == "monotonic"
    assert report["a"]["boot_id"] == report["b"]["boot_id"] is not None
    assert report["arch_interrupts"]["LOC"]["rate"] > 0
    code, text, _ = diff(*paths)
    assert code == EXIT_OK and text.startswith("irqtune diff")
