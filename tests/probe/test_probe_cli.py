"""`irqtune probe` without eBPF: says why and exits 4; the C text keeps every map bounded; the text and
JSON compare with /proc over the same window; Ctrl-C prints the shortened window and exits 130."""

from __future__ import annotations

import json
import re

import pytest
from conftest import cli, make_root

from irqtune.cli import EXIT_NO_EBPF, EXIT_OK, EXIT_USAGE
from irqtune.cli.probe import EXIT_INTERRUPTED
from irqtune.probe.base import PROBE_NAMES, Histogram, map_names
from irqtune.probe.runner import SPECS, ProbeResult
from irqtune.probe.text import render_probes
from irqtune.probe.window import ProbeWindow
from irqtune.table import Style

CTX = {"max_cpus": 8, "cpu_words": 1, "max_irq": 256, "x86_vectors": True}


def test_no_bcc_says_why(monkeypatch, tmp_path):
    code, _, err = cli("probe", "-d", "0.1", env={"IRQTUNE_BCC_PATH": str(tmp_path / "none")})
    assert code == EXIT_NO_EBPF
    assert "eBPF unavailable: bcc Python package not found" in err


def test_not_root_says_why(monkeypatch):
    monkeypatch.setattr("irqtune.probe.runner.find_bcc", lambda: __import__("irqtune.bcc").bcc.BccInfo(True, "/x", ""))
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    code, _, err = cli("probe", "-d", "0.1")
    assert code == EXIT_NO_EBPF and "need root" in err


def test_fake_root_is_refused(tmp_path):
    root = make_root(tmp_path, {"proc/interrupts": "  CPU0\n 1: 5 IO-APIC 1-edge i8042\n"})
    code, _, err = cli("probe", "-d", "0.1", root=root)
    assert code == EXIT_NO_EBPF and "running kernel" in err


def test_status_works_without_bcc(tmp_path):
    root = make_root(tmp_path, {"proc/interrupts": "  CPU0\n 1: 5 IO-APIC 1-edge i8042\n"})
    code, out, _ = cli("status", "-i", "0", "--json", env={"IRQTUNE_BCC_PATH": "/nonexistent"}, root=root)
    assert code == EXIT_OK
    assert json.loads(out)["bcc"]["available"] is False


def test_unknown_probe_is_a_usage_error():
    code, _, err = cli("probe", "--only", "hardirq,bogus")
    assert code == EXIT_USAGE and "bogus" in err


@pytest.mark.parametrize("name", PROBE_NAMES)
def test_every_hash_map_is_bounded(name):
    source = SPECS[name].source(CTX)
    assert map_names(source), "no maps found: the declaration pattern changed"
    for kind, decl in re.findall(r"\bBPF_(?:PERCPU_)?(HASH|ARRAY)\(([^;]*)\);", source):
        parts = [p.strip() for p in decl.split(",")]
        # BPF_HASH(name, key, leaf, size), BPF_ARRAY(name, leaf, size): without the size bcc picks 10240
        assert len(parts) == (4 if kind == "HASH" else 3), f"map without an explicit size: BPF_{kind}({decl})"
        size_text = parts[-1]
        size = int(size_text) if size_text.isdigit() else eval_define(source, size_text)
        assert 0 < size <= 1 << 16, (decl, size)
    assert "kprobe" not in source.lower(), "tracepoints only"


def eval_define(source: str, name: str) -> int:
    match = re.search(rf"#define {re.escape(name)} (\d+)", source)
    assert match, f"size {name} is neither a number nor a #define"
    return int(match.group(1))


def test_unsupported_probe_says_why(monkeypatch):
    spec = SPECS["tlb"]
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert "needs x86_64" in spec.unsupported_reason(lambda tp: True)
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert spec.unsupported_reason(lambda tp: True) is None
    assert spec.unsupported_reason(lambda tp: False) == "tracepoint tlb:tlb_flush not in this kernel"


def fake_window(interrupted: bool = False) -> ProbeWindow:
    """A hardirq/ipi/tlb window as run_window returns it, without eBPF."""
    hist = Histogram(count=990, sum_ns=990_000, max_ns=5_000)
    hist.slots[10] = 990
    results = {
        "hardirq": ProbeResult("hardirq", "ok", data={"irqs": {36: hist}, "unhandled": {36: 2}}),
        "ipi": ProbeResult("ipi", "ok", data={
            "sends": [], "targets_per_cpu": {},
            "received_total": {"call_function": 3, "call_function_single": 40, "reschedule": 7}}),
        "tlb": ProbeResult("tlb", "ok", data={"reasons": {"remote_shootdown": {"count": 30, "pages": 30,
                                                                                "full_flushes": 0}}, "senders": {}}),
    }  # fmt: skip
    proc = {"interrupts": {36: 995}, "CAL": 44, "RES": 8, "TLB": 31}
    inner = {"interrupts": {36: 990}, "CAL": 43, "RES": 7, "TLB": 30}
    return ProbeWindow(3.002, results, proc, 3.004, inner, {36: "virtio1-req.0\x1b[2J"}, interrupted)


def test_text_compares_counts_with_proc_of_the_same_window():
    """Every /proc figure in the text is the bracketing delta (`proc`), and the headers say which window."""
    text = render_probes(fake_window(), Style(False), asked=3)
    lines = text.splitlines()
    assert lines[0].startswith("window 3.002 s. PROC-SAME-WINDOW: /proc deltas read just before the maps were zeroed")
    assert "(3.004 s apart)" in lines[0] and "Ctrl-C" not in lines[0]
    header = next(line for line in lines if line.startswith("IRQ  "))
    row = lines[lines.index(header) + 1].split()
    assert "PROC-SAME-WINDOW" in header and row[header.split().index("PROC-SAME-WINDOW")] == "995"
    assert "received function calls 43 (call_function 3 + call_function_single 40); /proc CAL same window 44" in text
    assert "received reschedules 7; /proc RES same window 8" in text
    assert "received shootdowns 30; /proc TLB same window 31" in text
    assert "\x1b" not in text, "kernel-provided names reach the terminal escaped"


def test_ctrl_c_window_prints_and_exits_130(monkeypatch):
    monkeypatch.setattr("irqtune.cli.probe.run_window", lambda *a, **k: fake_window(interrupted=True))
    code, out, err = cli("probe", "-d", "10")
    assert code == EXIT_INTERRUPTED == 130
    assert out.startswith("window 3.002 s (cut short by Ctrl-C; 10 s asked). PROC-SAME-WINDOW")
    assert "interrupted after 3.0 s" in err
    code, out, _ = cli("probe", "-d", "10", "--json")
    doc = json.loads(out)
    assert code == 130 and doc["interrupted"] is True and doc["duration"] == 3.002 and doc["duration_asked"] == 10
    assert doc["proc"]["interrupts"]["36"] == 995 and doc["proc_seconds"] == 3.004 and doc["proc_inner"]["TLB"] == 30


def test_ctrl_c_while_loading_says_so_without_traceback(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("irqtune.cli.probe.run_window", interrupted)
    code, out, err = cli("probe", "-d", "10")
    assert code == 130 and out == "" and "interrupted before the window was read; probes detached" in err


def test_ctrl_c_ends_only_the_wait(monkeypatch):
    """run_window's wait: Ctrl-C ends it early and says so; the caller still reads the maps."""
    from irqtune.probe import window as window_module

    def sleep(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(window_module.time, "sleep", sleep)
    assert window_module._wait(10) is True
    monkeypatch.setattr(window_module.time, "sleep", lambda seconds: None)
    assert window_module._wait(10) is False


def test_probes_combined_into_one_module_keep_each_define_and_helper_once():
    """The C text of several probes as one module (no bcc needed): the shared helpers once, a define the context
    gives several probes once, a define inside an #if block left in place, every probe's tracepoint programs in."""
    from irqtune.probe.runner import SPECS, combined_source, function_names

    ctx = {"max_irq": 512, "max_cpus": 4, "cpu_words": 1, "x86_vectors": True, "block_names": {},
           "block_queues": {}, "machine": "x86_64", "shared_irqs": {}}  # fmt: skip
    text = combined_source([spec.source(ctx) for spec in SPECS.values()])
    assert text.count("log2_slot(u64 v)") == 1 and text.count("#define SLOTS ") == 1
    assert text.count("#define MAX_IRQ 512") == 1 and text.count("#define X86_VECTORS 1") == 1
    gated = combined_source(["#define A 1\n#ifdef A\n#define B 2\n#endif\nint x;\n", "#define A 1\nint y;\n"])
    assert gated.count("#define A 1") == 1 and "#ifdef A\n#define B 2\n#endif" in gated
    for spec in SPECS.values():
        for name in function_names(spec.source(ctx)):
            event = name.rsplit("__", 1)[1]
            assert event in text, name
