"""`irqtune run --mode tune` inside a throwaway network namespace, on a real veth with real traffic.

veth has no coalescing and no IRQs of its own, but with GRO on its receive path is NAPI, so the
agent sizes deferral (napi_defer_hard_irqs + gro_flush_timeout) from the interface's /proc/net/dev
packet rate. The test checks the whole loop on the running kernel: the change is applied through
the journal, kept while the device is healthy, rolled back when the device starts dropping after it
(the receiver's MTU is shrunk under the sender's 1000-byte datagrams: the kernel counts each in the
receiver's rx_dropped), and `irqtune restore` leaves both knobs at their original values.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import lifeline_devices, require
from netns import can_make_namespaces, veth_pair

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.netns]

EXE = [sys.executable, "-m", "irqtune"]
KNOBS = ("napi_defer_hard_irqs", "gro_flush_timeout")

UDP_SOURCE = """
import socket, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    try:
        sock.sendto(b"x" * 1000, ({ip!r}, 9))
    except OSError:
        time.sleep(0.001)
"""


def config(tmp_path: Path, device: str) -> str:
    left_alone = "".join(f'[[device]]\nname = "{name}"\nmanage = false\n\n' for name in lifeline_devices())
    path = tmp_path / "irqtune.toml"
    path.write_text(
        'mode = "tune"\ninterval = 1\n\n[limits]\ndwell = 1\n\n'
        f'[[device]]\nname = "{device}"\ngoal = "efficiency"\n\n{left_alone}'
    )
    return str(path)


def knobs(pair, ns: str) -> dict[str, str]:
    return {k: pair.run(ns, "cat", f"/sys/class/net/{pair.receiver}/{k}").stdout.strip() for k in KNOBS}


def test_tune_in_a_namespace_applies_keeps_rolls_back_and_restores(tmp_path):
    require(can_make_namespaces() is None, can_make_namespaces() or "")
    with veth_pair(gro=True) as pair:
        ns, state = pair.receiver_ns, tmp_path / "state"
        original = knobs(pair, ns)
        sender = pair.spawn(pair.sender_ns, UDP_SOURCE.format(seconds=60, ip=pair.receiver_ip))
        agent = subprocess.Popen(
            ["ip", "netns", "exec", ns, *EXE, "--state-dir", str(state), "run", "--config",
             config(tmp_path, pair.receiver), "--passes", "12", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        errors: list[str] = []
        threading.Thread(target=lambda: errors.extend(agent.stderr), daemon=True).start()
        passes, applied, kept, shrunk = [], None, False, False
        try:
            for line in agent.stdout:
                report = json.loads(line)
                passes.append(report)
                mine = [d for d in report["decisions"] if d["device"] == pair.receiver and d["outcome"] == "applied"]
                if applied is None and mine:
                    applied = report["pass"]
                    tuned = knobs(pair, ns)
                elif applied is not None and not shrunk:
                    kept = not report["rollbacks"]  # one healthy pass after the change: nothing undone
                    subprocess.run(["ip", "-n", ns, "link", "set", pair.receiver, "mtu", "500"], check=True)
                    shrunk = True
                elif shrunk and report["rollbacks"]:
                    break
            agent.terminate()
            agent.wait(timeout=20)
            after_rollback = knobs(pair, ns)
            restored = subprocess.run(["ip", "netns", "exec", ns, *EXE, "--state-dir", str(state), "restore"],
                                      capture_output=True, text=True)  # fmt: skip
            final = knobs(pair, ns)
        finally:
            agent.kill()
            sender.kill()
    assert applied is not None, f"no change applied in {len(passes)} passes: {passes[-1] if passes else errors}"
    assert tuned != original and tuned["napi_defer_hard_irqs"] != "0", tuned
    assert kept, "the change was rolled back while the device was healthy"
    rollbacks = [d for p in passes for d in p["rollbacks"]]
    assert rollbacks and all(d["outcome"] == "rolled-back" and "drops" in d["reason"] for d in rollbacks), rollbacks
    assert {d["knob"] for d in rollbacks} == {f"net/{pair.receiver}/napi-defer-hard-irqs",
                                              f"net/{pair.receiver}/gro-flush-timeout"}  # fmt: skip
    assert after_rollback == original
    assert restored.returncode == 0, restored.stderr
    assert final == original
