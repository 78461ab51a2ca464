"""`irqtune probe` without eBPF says why and exits 4; the C text keeps every map bounded."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from conftest import make_root

from irqtune.cli import EXIT_NO_EBPF, EXIT_OK, EXIT_USAGE, main
from irqtune.probe.base import PROBE_NAMES, map_names
from irqtune.probe.runner import SPECS

CTX = {"max_cpus": 8, "cpu_words": 1, "max_irq": 256, "x86_vectors": True}


def invoke(*args, env=None):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)
    return result.exit_code, result.stdout, result.stderr


def test_no_bcc_says_why(monkeypatch, tmp_path):
    code, _, err = invoke("probe", "-d", "0.1", env={"IRQTUNE_BCC_PATH": str(tmp_path / "none")})
    assert code == EXIT_NO_EBPF
    assert "eBPF unavailable: bcc Python package not found" in err


def test_not_root_says_why(monkeypatch):
    monkeypatch.setattr("irqtune.probe.runner.find_bcc", lambda: __import__("irqtune.bcc").bcc.BccInfo(True, "/x", ""))
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    code, _, err = invoke("probe", "-d", "0.1")
    assert code == EXIT_NO_EBPF and "need root" in err


def test_fake_root_is_refused(tmp_path):
    root = make_root(tmp_path, {"proc/interrupts": "  CPU0\n 1: 5 IO-APIC 1-edge i8042\n"})
    code, _, err = invoke("--root", str(root), "probe", "-d", "0.1")
    assert code == EXIT_NO_EBPF and "running kernel" in err


def test_status_works_without_bcc(tmp_path):
    root = make_root(tmp_path, {"proc/interrupts": "  CPU0\n 1: 5 IO-APIC 1-edge i8042\n"})
    code, out, _ = invoke("--root", str(root), "status", "-i", "0", "--json", env={"IRQTUNE_BCC_PATH": "/nonexistent"})
    assert code == EXIT_OK
    assert json.loads(out)["bcc"]["available"] is False


def test_unknown_probe_is_a_usage_error():
    code, _, err = invoke("probe", "--only", "hardirq,bogus")
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
