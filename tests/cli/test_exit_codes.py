"""Exit codes agree across commands (issue 16.9): malformed input is exit 3 with the same FILE:LINE warning whichever
command read it, `status --probe` that cannot probe is exit 4 as `probe` is, and no message quotes a value whole."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import fakehost
import pytest
from conftest import cli

from irqtune.cli.run import run_service
from irqtune.config import Config
from irqtune.host import Host

WARNING = "irqtune: warning: /proc/interrupts:4: row '77': expected 8 per-CPU counts, found 0 before 'garbage'"


@pytest.fixture
def root(tmp_path) -> Path:
    """A fake host whose /proc/interrupts has one malformed row (line 4)."""
    root = fakehost.build(tmp_path / "host")
    path = root / "proc" / "interrupts"
    lines = path.read_text().splitlines()
    lines.insert(3, " 77: garbage x y")
    path.write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize(
    "args",
    [
        ("status", "-i", "0"),
        ("plan",),
        ("plan", "--json"),
        ("apply",),
        ("run", "--passes", "1", "--interval", "0.5"),
        ("run", "--passes", "2", "--interval", "0.5", "--json"),
    ],
)
def test_malformed_input_is_exit_3_and_named_by_every_command(root, tmp_path, args):
    """plan, apply and run exited 0 without a word on input that status names and exits 3 for."""
    code, out, err = cli(*args, root=root, state=tmp_path / "state")
    assert code == 3 and err.count(WARNING) == 1, err  # once a run, however many passes
    if "--json" in args and args[0] == "run":
        passes = [json.loads(line) for line in out.splitlines()]
        assert all(p["problems"][0]["line"] == 4 for p in passes)


def test_a_run_stopped_by_sigterm_exits_0_whatever_it_read(root, tmp_path):
    """systemd counts any other exit of a stopped service a failure: the warnings are the report."""

    def load() -> Config:
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGTERM)).start()
        return Config(interval=0.5)

    assert run_service(Host(str(root)), str(tmp_path / "state"), load) == 0


def test_status_probe_that_cannot_probe_exits_4_as_probe_does(root, tmp_path):
    code, out, err = cli("status", "--probe", "-i", "0.1", root=root, state=tmp_path / "state")
    assert code == 4 and "irqtune: eBPF unavailable: " in err and "DEVICES" in out  # the report is still printed


def test_a_value_of_2_mb_is_quoted_in_80_characters(root, tmp_path):
    (root / "proc" / "irq" / "100" / "smp_affinity_list").write_text("x" * 2_000_000)
    code, _, err = cli("get", "irq/100/affinity", root=root, state=tmp_path / "state")
    assert code == 3 and "unreadable value 'xxxx" in err and len(err) < 400
    plan = tmp_path / "p.json"
    plan.write_text(json.dumps({"schema": 1, "changes": [{"knob": "y" * 2_000_000, "target": "1"}]}))
    code, _, err = cli("apply", "--plan", str(plan), root=root, state=tmp_path / "state")
    assert code == 1 and "change 0: a knob id of 2,000,000 characters: 'yyyy" in err and len(err) < 400
