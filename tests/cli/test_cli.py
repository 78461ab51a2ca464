"""`irqtune snapshot` and `irqtune status` end to end, on fixture roots and on this host."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import cli, fixture_text, make_root, require

from irqtune.cli import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE

# PCP qa/886.out: kernel.percpu.intr (sum of every per-CPU row) for the fixture hosts.
PCP_PERCPU_INTR = {
    "interrupts-pcp-x86_64-8cpu-laptop.txt": {0: 26111240, 1: 7662936, 2: 20042205, 3: 6568091, 4: 19451440},
    "interrupts-pcp-i686-1cpu-qemu.txt": {0: 7538223},
    "interrupts-pcp-s390x-16cpu-mlx5.txt": {
        0: 62206, 1: 12957, 3: 38152, 4: 40647, 6: 44207, 7: 33175, 9: 15015, 10: 65355, 12: 47888, 13: 11493,
        15: 14673,
    },
    "interrupts-pcp-s390x-2cpu-minimal.txt": {0: 38892},
    "interrupts-pcp-x86_64-1152cpu-i40e-lpfc.txt.bz2": {
        0: 14375370, 115: 1137884, 230: 1128818, 345: 1118591, 460: 1335621, 575: 1367200, 690: 1120085,
        805: 1124226, 920: 1107381, 1035: 1485470, 1151: 1245475,
    },
}  # fmt: skip


def run(*args: str) -> tuple[int, dict | str, str]:
    result = cli(*args)
    out = result.stdout
    if "--json" in args and result.exit_code in (EXIT_OK, EXIT_PARTIAL):
        out = json.loads(out)
    return result.exit_code, out, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PCP_PERCPU_INTR))
def test_snapshot_reproduces_pcp_percpu_totals(tmp_path, name):
    root = make_root(tmp_path, {"proc/interrupts": fixture_text(name)})
    code, snap, _ = run("--root", str(root), "snapshot", "--json")
    assert code == EXIT_OK
    assert snap["schema"] == 1
    totals = snap["interrupts"]["cpu_totals"]
    for cpu, expected in PCP_PERCPU_INTR[name].items():
        assert totals[str(cpu)] == expected, f"cpu{cpu}"


def test_snapshot_reproduces_node_exporter_series(tmp_path):
    root = make_root(
        tmp_path,
        {
            "proc/interrupts": fixture_text("interrupts-node_exporter-x86-laptop-4cpu-IR-legacy.txt"),
            "proc/softirqs": fixture_text("softirqs-node_exporter.txt"),
            "proc/net/softnet_stat": fixture_text("softnet_stat-node_exporter.txt"),
        },
    )
    code, snap, _ = run("--root", str(root), "snapshot", "--json")
    assert code == EXIT_OK
    prom = fixture_text("expected-node_exporter-e2e-interrupts-softnet-softirqs.prom")
    series = re.findall(r'^node_interrupts_total\{cpu="(\d+)",.*type="([^"]+)"\} (\S+)$', prom, re.M)
    assert len(series) == 112
    for cpu, key, value in series:  # node_exporter's cpu label is the column index: contiguous here
        assert snap["interrupts"]["rows"][key]["counts"].get(cpu, 0) == float(value), (key, cpu)
    softirqs = re.findall(r'^node_softirqs_functions_total\{cpu="(\d+)",type="([^"]+)"\} (\S+)$', prom, re.M)
    assert len(softirqs) == 20
    for cpu, vector, value in softirqs:
        assert snap["softirqs"]["vectors"][vector].get(cpu, 0) == float(value)
    processed = re.findall(r'^node_softnet_processed_total\{cpu="(\d+)"\} (\S+)$', prom, re.M)
    rows = {str(r["cpu"]): r for r in snap["softnet"]["rows"]}
    assert [rows[cpu]["processed"] for cpu, _ in processed] == [float(v) for _, v in processed]
    assert set(snap["unavailable"]) == {
        "/proc/stat",
        "/proc/irq",
        "/proc/net/dev",
        "/proc/net/netstat",
        "/proc/diskstats",
        "/proc/zoneinfo",  # the memory reserve (measure/memory.py): absent from this fixture
        "/proc/vmstat",
        "/proc/sys/vm/min_free_kbytes",
        "/proc/sys/vm/watermark_scale_factor",
    }


def test_snapshot_offline_cpus_keep_their_ids(tmp_path):
    root = make_root(
        tmp_path,
        {
            "proc/interrupts": fixture_text("interrupts-sysstat-x86_64-root3-offline-cpu6-cpu8.txt"),
            "proc/softirqs": fixture_text("softirqs-sysstat-root3-9possible-cpus.txt"),
            "proc/net/softnet_stat": fixture_text("softnet_stat-sysstat-root3-offline-11col-noindex.txt"),
        },
    )
    code, snap, _ = run("--root", str(root), "snapshot", "--json")
    assert code == EXIT_OK
    assert snap["interrupts"]["cpus"] == [0, 1, 2, 3, 4, 5, 7]
    assert snap["online_cpus"] == [0, 1, 2, 3, 4, 5, 7]
    assert "6" not in snap["interrupts"]["rows"]["LOC"]["counts"]
    assert snap["interrupts"]["rows"]["LOC"]["counts"]["7"] > 0
    assert snap["softirqs"]["cpus"] == list(range(9))
    assert snap["softnet"]["cpu_source"] == "online"
    assert [r["cpu"] for r in snap["softnet"]["rows"]] == [0, 1, 2, 3, 4, 5, 7]


def test_snapshot_root_with_some_files_says_what_is_missing(tmp_path):
    root = make_root(tmp_path, {"proc/softirqs": fixture_text("softirqs-procfs-2cpu.txt")})
    code, snap, _ = run("--root", str(root), "snapshot", "--json")
    assert code == EXIT_OK
    assert snap["interrupts"] is None
    assert set(snap["unavailable"]) == {
        "/proc/interrupts",
        "/proc/net/softnet_stat",
        "/proc/stat",
        "/proc/net/dev",
        "/proc/net/netstat",
        "/proc/diskstats",
        "/proc/zoneinfo",
        "/proc/vmstat",
        "/proc/sys/vm/min_free_kbytes",
        "/proc/sys/vm/watermark_scale_factor",
    }
    assert snap["softirqs"]["vectors"]["TIMER"] == {"0": 2776180, "1": 247490}


def test_empty_root_is_an_error(tmp_path):
    code, _, err = run("--root", str(make_root(tmp_path, {})), "snapshot", "--json")
    assert code == EXIT_ERROR
    assert "nothing to measure" in err and "/proc/interrupts" in err


def test_missing_root_is_a_usage_error(tmp_path):
    code, _, err = run("--root", str(tmp_path / "nope"), "status")
    assert code == EXIT_USAGE
    assert "does not exist" in err


def test_truncated_interrupts_give_partial_result_and_a_clear_message(tmp_path):
    text = fixture_text("interrupts-procfs-x86-kvm-4cpu.txt")
    cut = text.index(" 44:") + 20  # inside row 44's counts: 2 of 4 printed
    root = make_root(tmp_path, {"proc/interrupts": text[:cut]})
    code, snap, err = run("--root", str(root), "snapshot", "--json")
    assert code == EXIT_PARTIAL
    assert re.search(r"/proc/interrupts:\d+: row '44': expected 4 per-CPU counts, found [0-3]", err), err
    assert "Traceback" not in err
    assert snap["interrupts"]["rows"]["0"]["counts"] == {"0": 49}
    assert "44" not in snap["interrupts"]["rows"]
    assert snap["problems"][0]["file"] == "/proc/interrupts"


def test_garbage_counts_are_named_and_skipped(tmp_path):
    text = "           CPU0       CPU1\n  1:         10        x20   IO-APIC   1-edge      i8042\n"
    text += "  8:          1          0   IO-APIC   8-edge      rtc0\nLOC:   5   6   Local timer interrupts\n"
    root = make_root(tmp_path, {"proc/interrupts": text})
    code, out, err = run("--root", str(root), "snapshot")
    assert code == EXIT_PARTIAL
    assert "/proc/interrupts:2: row '1': expected 2 per-CPU counts, found 1 before 'x20'" in err
    assert "2 rows (1 numbered IRQs)" in out


def test_status_on_a_fixture_root_without_window(tmp_path):
    root = make_root(
        tmp_path,
        {
            "proc/interrupts": fixture_text("interrupts-netutils-x86_64-12cpu-2socket-ixgbe-TxRx.txt"),
            "proc/softirqs": fixture_text("softirqs-pcp-x86_64-8cpu-thinkpad.txt"),
        },
    )
    code, report, _ = run("--root", str(root), "status", "--interval", "0", "--json")
    assert code == EXIT_OK
    nics = {d["name"]: d for d in report["devices"] if d["kind"] == "nic"}
    assert {"eth0", "eth1"} <= set(nics)
    assert [q["queue"] for q in nics["eth1"]["irqs"]] == list(range(8))
    assert all(d["source"] == "names" for d in nics.values())
    assert report["busiest_irqs"][0]["count"] >= report["busiest_irqs"][-1]["count"]
    code, text, _ = run("--root", str(root), "status", "--interval", "0")
    assert "counts since boot" in text and "eth1-TxRx-7" in text


def test_help_documents_exit_codes():
    code, text, _ = run("status", "--help")
    assert code == EXIT_OK
    assert "Exit status:" in text and "partial" in text and "--interval" in text


# -- the real host --------------------------------------------------------------------


def _irqtune(*args: str) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "irqtune")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, check=False)


def _host_msi_irqs(netdev: str) -> set[int]:
    device = os.path.realpath(f"/sys/class/net/{netdev}/device")
    for path in (device, os.path.dirname(device)):
        if os.path.isdir(os.path.join(path, "msi_irqs")):
            return {int(n) for n in os.listdir(os.path.join(path, "msi_irqs"))}
    return set()


@pytest.mark.slow
def test_status_on_this_host(real_host_required):
    result = _irqtune("status", "--json", "--interval", "0.3")
    assert result.returncode == EXIT_OK, result.stderr
    report = json.loads(result.stdout)
    with open("/proc/interrupts") as f:
        proc = f.read()
    devices = {d["name"]: d for d in report["devices"]}
    for irq, queue in re.findall(r"^\s*(\d+):.*\bvirtio\d+-req\.(\d+)\s*$", proc, re.M):
        owner = next(d for d in devices.values() if any(e["irq"] == int(irq) for e in d["irqs"]))
        entry = next(e for e in owner["irqs"] if e["irq"] == int(irq))
        assert owner["kind"] == "block" and entry["role"] == "io" and entry["queue"] == int(queue)
        assert entry["managed"] in ("yes", "no", "unknown")
    if os.path.exists("/sys/class/net/eth0/device"):
        assert {e["irq"] for e in devices["eth0"]["irqs"]} == _host_msi_irqs("eth0")
        assert {e["role"] for e in devices["eth0"]["irqs"]} & {"rx", "tx", "rxtx"}
    online = report["topology"]["online"]
    assert [c["cpu"] for c in report["per_cpu"]] == online
    x86_rows = [k for k in ("LOC", "RES", "CAL", "TLB") if re.search(rf"^\s*{k}:", proc, re.M)]
    for entry in report["per_cpu"]:
        assert all(isinstance(entry[k], float) for k in x86_rows)
        assert entry["LOC"] >= 0 if "LOC" in x86_rows else True
    ebpf = report["ebpf"]
    if ebpf["ran"]:  # root with bcc: the probes' view of the same window
        assert all(p["status"] == "ok" for p in ebpf["probes"].values()), ebpf["probes"]
        assert "handler_latency" in ebpf and "tlb_reasons" in ebpf
    else:
        assert ebpf["reason"]
    text = _irqtune("status", "--interval", "0.2")
    assert text.returncode == EXIT_OK
    assert "\033[" not in text.stdout  # piped: no colour
    for needle in ("BUSIEST IRQS", "PER CPU", "DEVICES", "FINDINGS", *x86_rows):
        assert needle in text.stdout


@pytest.mark.slow
def test_snapshot_of_this_host_is_complete(real_host_required):
    result = _irqtune("snapshot", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    snap = json.loads(result.stdout)
    assert snap["problems"] == []
    require(os.path.exists("/proc/net/softnet_stat"), "host has no /proc/net/softnet_stat")
    assert snap["unavailable"] == {}
    irqs = [k for k in snap["interrupts"]["rows"] if k.isdigit()]
    assert set(irqs) == set(snap["affinity"])
    assert all(
        snap["affinity"][k]["effective"] for k in irqs if os.path.exists(f"/proc/irq/{k}/effective_affinity_list")
    )


@pytest.mark.slow
def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "irqtune", "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "irqtune" in result.stdout


def test_kernel_strings_cannot_drive_the_terminal():
    """An action name or a finding message with an escape sequence is shown escaped, never sent raw."""
    from irqtune.parse.common import printable
    from irqtune.table import table

    assert printable("eth0-TxRx-0") == "eth0-TxRx-0"
    assert printable("x\x1b[2Jy\n\u202e") == "x\\x1b[2Jy\\n\\u202e"
    assert "\x1b" not in "".join(table(["ACTION"], [["evil\x1b]0;owned\x07"]]))
