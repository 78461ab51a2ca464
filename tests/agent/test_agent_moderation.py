"""The agent's moderation on a simulated host: an e1000e NIC (its adaptive rx-usecs modes, no rx-max-frames) gets a
delay it takes, and a moderation change's predicted interrupt rate is compared with the measured one."""

from __future__ import annotations

import json
import os

from irqtune.act.journal import Journal
from irqtune.agent.loop import Agent
from irqtune.config import Config, Limits
from irqtune.plan import Change, Plan
from irqtune.plan.change import PLAN_FIELDS, load_plan
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import load_scenario
from irqtune.statedir import boot_id

SCENARIO = """
[host]
cpus = 4

[[nic]]
name = "eth1"
queues = 2
flavour = "{flavour}"
rx_usecs = {usecs}
rx_frames = 256

[[phase]]
name = "steady"
seconds = 60
nic = "eth1"
rate_pps = {rate}
"""


def _sim(tmp_path, flavour: str = "timer-from-first", usecs: int = 64, rate: int = 20_000) -> SimMachine:
    scenario = load_scenario("s.toml", SCENARIO.format(flavour=flavour, usecs=usecs, rate=rate))
    return SimMachine(scenario, str(tmp_path / "tree"), seed=2)


def _as_e1000e(sim: SimMachine) -> None:
    """The simulated NIC as e1000e shows itself: that driver's name, and ethtool reporting rx-usecs but neither
    rx-max-frames nor use-adaptive-rx (ethtool leaves out a zero the driver does not support)."""
    device = os.path.realpath(os.path.join(sim.root, "sys/class/net/eth1/device"))
    os.makedirs(os.path.join(sim.root, "sys/bus/drivers/e1000e"), exist_ok=True)
    os.remove(os.path.join(device, "driver"))
    os.symlink("../../../bus/drivers/e1000e", os.path.join(device, "driver"))
    path = os.path.join(sim.root, "sys/class/net/eth1/irqtune-sim/ethtool.json")
    with open(path, encoding="utf-8") as f:
        state = json.load(f)
    for name in ("rx_max_frames", "use_adaptive_rx", "use_adaptive_tx"):
        del state["coalesce"][name]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(state, f)


def _run(sim: SimMachine, tmp_path, passes: int, bounds: dict | None = None) -> list:
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    config = Config(mode="tune", interval=1.0, limits=Limits(dwell=0, max_changes=8), bounds=bounds or {})
    agent = Agent(host, config, state, clock=lambda: sim.clock, journal=journal)
    reports = []
    try:
        for _ in range(passes):
            sim.step(1.0, sim.sc.phases[0])
            reports.append(agent.run_pass())
    finally:
        journal.close()
    return reports


def test_e1000e_in_its_adaptive_mode_gets_a_delay_it_takes(tmp_path):
    """rx-usecs 3 on e1000e is "dynamic conservative". Before, the missing rx-max-frames hid the NIC's coalescing
    from moderation altogether; now rx-usecs alone is weighed, the mode is not scored as 3 µs, and what is written
    is a value e1000e takes as a delay (0 or 10..10000), with no rx-max-frames write."""
    sim = _sim(tmp_path, flavour="min-gap", usecs=3, rate=40_000)
    _as_e1000e(sim)
    reports = _run(sim, tmp_path, 3)
    decisions = [d for r in reports for d in r.decisions if d.knob.startswith("net/eth1/coalesce/")]
    usecs = [d for d in decisions if d.knob == "net/eth1/coalesce/rx-usecs"]
    assert usecs, [d.to_json() for r in reports for d in r.decisions]
    first = usecs[0]
    assert first.current == "3" and first.outcome == "applied", first.to_json()
    assert int(first.target) == 0 or 10 <= int(first.target) <= 10000, first.target
    assert "the driver's adaptive mode 3 (dynamic conservative) is not predicted" in first.reason
    assert all(d.knob == "net/eth1/coalesce/rx-usecs" for d in decisions), [d.knob for d in decisions]


def test_the_agent_searches_within_the_configs_bounds(tmp_path):
    """400k packets/s over two queues, where deferral pays, with [bounds] that forbid it and cap rx-usecs at 64: the
    agent writes the best window within them (a frame cap under a timer of at most 64 µs) and nothing is clamped
    afterwards. Before, the list's deferral won, was clamped to 0 and left no window at all."""
    sim = _sim(tmp_path, usecs=8, rate=400_000)
    bounds = {"net/*/napi-defer-hard-irqs": (0, 0), "net/*/coalesce/rx-usecs": (0, 64)}
    reports = _run(sim, tmp_path, 2, bounds)
    applied = {d.knob: d for r in reports for d in r.decisions if d.outcome == "applied"}
    assert "net/eth1/napi-defer-hard-irqs" not in applied and "net/eth1/gro-flush-timeout" not in applied
    usecs, frames = applied["net/eth1/coalesce/rx-usecs"], applied["net/eth1/coalesce/rx-max-frames"]
    assert 0 < int(usecs.target) <= 64 and 1 < int(frames.target) < 256, (usecs.to_json(), frames.to_json())
    assert not any("held to the config's bounds" in d.reason for r in reports for d in r.decisions)
    assert "settings searched" in usecs.reason


def test_a_moderation_change_is_checked_against_the_measured_interrupt_rate(tmp_path):
    """rx-usecs 64 at 20k packets/s over two queues: moderation turns coalescing off and predicts the busiest
    queue's interrupt rate; the first window after the change reports it next to the measured rate, once."""
    sim = _sim(tmp_path)
    reports = _run(sim, tmp_path, 4)
    applied = [(i, d) for i, r in enumerate(reports) for d in r.decisions if d.predicted and d.outcome == "applied"]
    assert len(applied) == 1, [d.to_json() for r in reports for d in r.decisions]
    index, change = applied[0]
    assert change.knob == "net/eth1/coalesce/rx-usecs"
    assert {"irq_rate", "latency_us", "cpu", "model", "packets", "setting", "response"} <= set(change.predicted)
    checks = [c for r in reports for c in r.checks]
    assert len(checks) == 1 and reports[index + 1].checks == checks, [r.checks for r in reports]
    check = checks[0]
    assert check["knob"] == change.knob and check["device"] == "eth1"
    predicted, measured = check["predicted_irq_rate"], check["measured_irq_rate"]
    assert predicted > 1_000 and measured > 1_000  # the model run again at the window's packet rate:
    assert abs(predicted / change.predicted["irq_rate"] - 1) < 0.2  # the load held, so close to the decision's
    assert check["miss"] is False and check["band"] > 0
    assert check["error"] == round((measured - predicted) / predicted, 4)
    assert abs(check["error"]) < 0.2  # the simulator runs the same model: the prediction holds
    assert reports[index + 1].to_json()["checks"] == checks
    assert json.dumps(reports[index].to_json())  # the prediction on the decision is plain JSON


def test_a_saved_plan_leaves_the_prediction_out_and_reads_back(tmp_path):
    """The prediction is the agent's, not a plan's: `irqtune plan --json` keeps PLAN_FIELDS only, so a saved plan
    reads back as before."""
    change = Change("net/eth1/coalesce/rx-usecs", "3", "16", "test", "eth1",
                    predicted={"irq_rate": 9842.4, "latency_us": 1.59, "cpu": 0.0295})  # fmt: skip
    saved = Plan(changes=[change]).to_json()
    assert set(saved["changes"][0]) == set(PLAN_FIELDS)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(saved), encoding="utf-8")
    back = load_plan(str(path)).changes[0]
    assert (back.knob, back.current, back.target, back.predicted) == (change.knob, "3", "16", None)
    assert change.to_json()["predicted"]["irq_rate"] == 9842.4  # in the agent's report, with the decision


def test_a_zero_bound_on_deferral_keeps_deferral_out_of_the_choice(tmp_path):
    """[bounds] napi-defer-hard-irqs = [0, 0]: the operator forbids deferral. At 200k packets/s deferral would win;
    chosen and then clamped to 0 it would leave the NIC with no moderation at all (rx-usecs 0, one frame). The
    choice weighs no deferral candidate instead: a coalescing window, and no deferral knob written."""
    sim = _sim(tmp_path, usecs=3, rate=400_000)
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    config = Config(mode="tune", interval=1.0, limits=Limits(dwell=0, max_changes=8),
                    bounds={"net/eth1/napi-defer-hard-irqs": (0, 0)})  # fmt: skip
    agent = Agent(host, config, state, clock=lambda: sim.clock, journal=journal)
    try:
        for _ in range(3):
            sim.step(1.0, sim.sc.phases[0])
            agent.run_pass()
    finally:
        journal.close()
    settings = sim.nic_settings(sim.sc.nics[0])
    assert settings.usecs > 0 and settings.frames > 1, settings
    assert all(n.get("defer_hard_irqs", 0) == 0 for n in settings.napi.values()), settings.napi
