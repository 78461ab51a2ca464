"""In the guest: the agent in tune mode on the receiving e1000e under UDP load. It applies a moderation
setting and compares the interrupt rate it measures afterwards with the rate it predicted; it never writes
one of e1000e's adaptive-mode values as a delay; a change that makes the device worse is rolled back; and
after a SIGKILL mid-run, `irqtune restore` leaves `ethtool -c` and every smp_affinity_list as they were."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import cli
from guest import affinities, agent_in_child, ethtool_rx_usecs, follow, stop, udp_load

pytestmark = pytest.mark.vm

INTERVAL = 3  # seconds: a pass costs about a second of CPU under TCG
MEASURED = 6  # seconds, for the tests that compare predictions: under TCG the interrupt rate of one queue at one
# setting and load moves by about a quarter from one 3 s window to the next; a longer window averages that out


def _config(tmp_path: Path, wire, extra: str = "", name: str = "irqtune.toml", interval: float = INTERVAL) -> str:
    """Tune mode for the receiver only; every other device of the guest is left alone. NAPI deferral is held at
    0 by the bounds: with deferral a queue takes a few timer-driven interrupts a second, which says nothing about
    how the device coalesces; the tests are about coalescing, which e1000e does in hardware (QEMU's emulation)."""
    _, out, _ = cli("status", "--no-probe", "--json", "-i", "0")
    others = [d["name"] for d in json.loads(out)["devices"] if d["name"] != wire.receiver]
    left_alone = "".join(f'[[device]]\nname = "{n}"\nmanage = false\n\n' for n in others)
    path = tmp_path / name
    path.write_text(f'mode = "tune"\ninterval = {interval}\n\n[limits]\ndwell = {interval}\n\n'
                    f'[bounds]\n"net/*/napi-defer-hard-irqs" = [0, 0]\n\n{extra}'
                    f'[[device]]\nname = "{wire.receiver}"\ngoal = "throughput"\n\n{left_alone}')  # fmt: skip
    return str(path)


def _passes(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_agent_applies_moderation_and_checks_its_prediction(wire, tmp_path, record):
    """The agent's first prediction comes from the driver's word (e1000e: a minimum gap of rx-usecs); where the
    measurement misses it, the change is rolled back and the model learns from the window (model/identify.py:
    QEMU's e1000e keeps a floor between interrupts that no driver states). Once two windows identify the response,
    every settled window is predicted out of sample before it joins the fit: the median error of those predictions
    must be within 20 % (under TCG; the recorded errors are the measurement), and a change predicted by a fitted
    response must beat the driver's word (a miss there is rolled back and learned from, as any miss)."""
    before = ethtool_rx_usecs(wire.receiver)
    state = tmp_path / "state"
    knob = f"net/{wire.receiver}/coalesce/rx-usecs"
    try:
        with udp_load(wire):
            config = _config(tmp_path, wire, interval=MEASURED)
            code, out, err = cli("run", "--config", config, "--passes", "14", "--json", state=state)
        assert code == 0, err[-3000:]
        passes = _passes(out)
        decisions = [d for p in passes for d in p["decisions"]]
        usecs = [d for d in decisions if d["knob"] == knob]
        assert any(d["outcome"] == "applied" for d in usecs), json.dumps(passes, indent=1)[-6000:]
        for d in usecs:  # e1000e: 1..4 are adaptive modes and 5..9 invalid, never a delay
            assert not 1 <= int(d["target"]) <= 9, d
        checks = [c for p in passes for c in p.get("checks", []) if c["knob"] == knob]
        assert checks, "no prediction was compared with a measurement"
        applied = [d for d in usecs if d["outcome"] == "applied"]
        rolled = [d for p in passes for d in p["rollbacks"] if d["knob"] == knob and "the model missed" in d["reason"]]
        record(f"{os.uname().release} agent predictions",
               {"changes": [f"{d['current']} -> {d['target']}" for d in applied], "reason": applied[0]["reason"],
                "checks": checks, "missed rollbacks": len(rolled)})  # fmt: skip
        for check in checks:  # deferral may take (nearly) every packet without an interrupt: zero is a measurement
            assert check["measured_irq_rate"] >= 0 and check["predicted_irq_rate"] >= 0, check
        assert len(rolled) == sum(c["miss"] for c in checks), (rolled, checks)
        # a change predicted by a fitted response (a floor or a timer scale: one window fits neither, so the prior
        # still speaks there): closer than the driver's word, which missed by 60-95 % in every run. It may still
        # miss (two windows at one load; a clean run saw +79 %): then it is rolled back and learned from, as above
        fitted = [c for c in checks if c["model"].get("floor_us") or c["model"].get("floor_us_per_kpps")
                  or c["model"].get("timer_scale", 1.0) != 1.0]  # fmt: skip
        for late in fitted[:1]:
            assert late["error"] is not None and abs(late["error"]) < abs(checks[0]["error"]), (checks[0], late)
        # Every settled window, predicted by the model fitted to the windows before it (at least two of this device)
        # at the packet rate it measured: the model's standing is the median error of those out-of-sample
        # predictions (one window under TCG moves by a quarter now and then: one window is not the measure).
        tracked = [t for p in passes for t in p["tracking"] if t["device"] == wire.receiver and t["windows"] >= 2]
        errors = sorted(abs(t["error"]) for t in tracked)
        median = errors[len(errors) // 2] if errors else None
        record(f"{os.uname().release} out-of-sample predictions after identification",
               {"median_error": median, "tracked": tracked})  # fmt: skip
        assert len(tracked) >= 3, passes[-1]
        assert median <= 0.20, tracked
    finally:
        assert cli("restore", state=state).exit_code in (0, 5)
    assert ethtool_rx_usecs(wire.receiver) == before


def test_the_timer_scale_learned_at_one_delay_predicts_another(wire, tmp_path, record):
    """The operator's bounds steer the agent: first rx-usecs 1000 only (a delay e1000e throttles to at most 1,000
    interrupts/s by its driver's word; QEMU's timer runs about 0.79 µs per unit, so more come), then 10000 only,
    in a second run that starts from the model the first saved in the state directory. The second change is
    predicted with the scale fitted at 1000, out of sample, and must hold within the noise band on the real
    driver (the recorded error is the measurement: 10-13 % on an idle host, 45 % on a busier one)."""
    before = ethtool_rx_usecs(wire.receiver)
    state = tmp_path / "state"
    knob = f"net/{wire.receiver}/coalesce/rx-usecs"
    checks = {}
    try:
        with udp_load(wire):
            for usecs, passes in ((1000, "5"), (10000, "4")):  # a check waits for a window all under the change
                bounds = f'"{knob}" = [{usecs}, {usecs}]\n\n'  # into _config's [bounds]
                config = _config(tmp_path, wire, extra=bounds, name=f"irqtune-{usecs}.toml", interval=MEASURED)
                code, out, err = cli("run", "--config", config, "--passes", passes, "--json", state=state)
                assert code == 0, err[-3000:]
                checks[usecs] = [c for p in _passes(out) for c in p.get("checks", []) if c["knob"] == knob]
        record(f"{os.uname().release} timer scale across delays", checks)
        assert checks[1000] and checks[10000], checks
        late = checks[10000][0]
        assert late["windows"] >= 2, late  # fitted to the windows at 1000 (a scale where they show one)
        assert late["error"] is not None and not late["miss"], late  # within the band (TCG noise: see above)
    finally:
        assert cli("restore", state=state).exit_code in (0, 5)
    assert ethtool_rx_usecs(wire.receiver) == before


def _journal_entries(state: Path) -> dict:
    try:
        return json.loads((state / "journal.json").read_text()).get("entries", {})
    except (OSError, ValueError):
        return {}


def test_a_change_followed_by_loss_is_rolled_back(wire, tmp_path, record):
    """Once the agent applied a change that the measurement bore out (a change whose prediction missed is rolled
    back for that and tried again: see the test above), loss appears on the device: the test steers the
    receiver's packets (RPS) to another CPU whose backlog holds one packet, so the kernel drops most of them
    (counted in the device's rx_dropped and softnet's dropped). At the same offered load the device is worse
    after the change than before it: the agent must roll its change back on the real driver, and ethtool must
    show it."""
    usecs = ethtool_rx_usecs(wire.receiver)
    rps = Path(f"/sys/class/net/{wire.receiver}/queues/rx-0/rps_cpus")
    backlog = Path("/proc/sys/net/core/netdev_max_backlog")
    rps_before, backlog_before = rps.read_text().strip(), backlog.read_text().strip()
    state, output = tmp_path / "state", tmp_path / "passes.jsonl"
    knob = f"net/{wire.receiver}/coalesce/rx-usecs"
    applied, latest, rollbacks = None, None, []
    after_loss: list[dict] = []  # what each pass said of the change once the loss began (for a failure's message)
    with udp_load(wire):
        pid = agent_in_child(state, _config(tmp_path, wire), output, passes=20)
        try:
            for report in follow(output, timeout=360):
                mine = [d for d in report["decisions"] if d["device"] == wire.receiver and d["outcome"] == "applied"]
                if any(d["knob"] == knob for d in mine):  # the moderation change (placement may come a pass earlier)
                    latest = mine
                held = [c for c in report["checks"] if c["knob"] == knob and not c["miss"]]
                if applied is None and held and latest:  # a change the model predicted: on probation, kept so far
                    applied = latest
                    rps.write_text("4\n")  # CPU 2 (any CPU: RPS enqueues to a backlog, even the local one)
                    backlog.write_text("1\n")
                if applied is not None:
                    rollbacks += report["rollbacks"]
                    after_loss.append({"pass": report.get("pass"), "rollbacks": report["rollbacks"],
                                       "checks": [c for c in report["checks"] if c["knob"] == knob]})  # fmt: skip
                if any(d["knob"] == knob for d in rollbacks):
                    break
        finally:
            stop(pid)
            rps.write_text(rps_before + "\n")
            backlog.write_text(backlog_before + "\n")
    try:
        assert applied, "the agent applied nothing"
        assert rollbacks, f"nothing rolled back after {applied}; the passes after the loss began: {after_loss}"
        undone = {d["knob"]: d for d in rollbacks}
        assert knob in undone and undone[knob]["outcome"] == "rolled-back", rollbacks
        assert "the model missed" not in undone[knob]["reason"], undone[knob]
        assert ethtool_rx_usecs(wire.receiver) == usecs
        changes = [f"{d['knob']} {d['current']} -> {d['target']}" for d in applied]
        record(f"{os.uname().release} rollback", {"applied": changes, "why": undone[knob]["reason"]})
    finally:
        assert cli("restore", state=state).exit_code in (0, 5)
    assert ethtool_rx_usecs(wire.receiver) == usecs


def test_sigkill_mid_run_then_restore_leaves_every_original(wire, tmp_path):
    """The agent runs in a forked child, is killed with SIGKILL once its journal holds a change, and
    `irqtune restore` puts everything back."""
    usecs, placed = ethtool_rx_usecs(wire.receiver), affinities()
    state, output = tmp_path / "state", tmp_path / "passes.jsonl"
    with udp_load(wire):
        pid = agent_in_child(state, _config(tmp_path, wire), output)
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and not _journal_entries(state):
                time.sleep(0.2)
            time.sleep(INTERVAL / 2)  # into the next pass: maybe mid-write
        finally:
            stop(pid, signal.SIGKILL)
    changed = _journal_entries(state)
    assert changed, "the agent changed nothing before it was killed"
    code, out, err = cli("restore", state=state)
    assert code == 0, out + err
    assert ethtool_rx_usecs(wire.receiver) == usecs
    assert affinities() == placed
    assert not _journal_entries(state)
