"""Identifying a queue's moderation flavour from measured windows (model/identify.py), and the agent using it:
a NIC whose hardware does not work as its driver's name suggests (mlx5 in CQE mode restarts its timer on every
completion) is predicted with the flavour that fits what was measured."""

from __future__ import annotations

import math
import random

import pytest

from irqtune.agent.loop import Agent
from irqtune.config import Config, DeviceRule, Limits
from irqtune.decide.moderation import Moderation, choose, forecast
from irqtune.model.identify import FLAVOURS, Window, identify, predicted_interrupts
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import load_scenario


def _windows(truth: str, rates=(20_000, 60_000, 150_000), usecs=(16, 64), noise: float = 0.05) -> list[Window]:
    """Windows as a queue of flavour `truth` would show them, with multiplicative counter noise."""
    rng = random.Random(7)
    out = []
    for rate in rates:
        for u in usecs:
            shape = Window(rate, 1.0, u, 256, 2.0, 1.5)
            irqs = predicted_interrupts(shape, truth) * math.exp(rng.uniform(-noise, noise))
            out.append(Window(rate, irqs, u, 256, 2.0, 1.5))
    return out


@pytest.mark.parametrize("truth", FLAVOURS)
@pytest.mark.parametrize("prior", FLAVOURS)
def test_the_flavour_that_produced_the_windows_is_found_from_any_prior(truth, prior):
    found = identify(_windows(truth), prior)
    assert found.flavour == truth, found
    assert found.windows >= 2 and math.expm1(found.errors[truth]) < 0.1


def test_windows_that_cannot_tell_keep_the_prior():
    """No coalescing window (rx-usecs 0), no interrupts: every flavour predicts the same, nothing is learned."""
    plain = [Window(50_000, 9_000, 0, 1, 2.0, 1.5), Window(50_000, 0, 64, 256, 2.0, 1.5)]
    found = identify(plain, "timer-from-first")
    assert found.flavour == "timer-from-first" and found.windows == 0
    assert "no window yet" in found.describe()


def test_one_window_is_not_enough_to_leave_the_prior():
    one = _windows("timer-restart", rates=(150_000,), usecs=(64,))
    assert identify(one, "timer-from-first").flavour == "timer-from-first"


SCENARIO = """
[host]
cpus = 4

[[nic]]
name = "eth1"
queues = 1
flavour = "timer-restart"
rx_usecs = 32
rx_frames = 256

[[phase]]
name = "steady"
seconds = 60
nic = "eth1"
rate_pps = 150000
"""


def test_the_agent_identifies_a_cqe_mode_nic_and_predicts_its_interrupts(tmp_path):
    """The simulated NIC restarts its timer per packet (CQE mode) but shows itself as mlx5_core, whose usual
    flavour starts the window at the first packet. Observing (nothing changes the setting), the agent's model
    moves to timer-restart, and its interrupt rate for the current setting is then within 20 % of the measured
    rate, where the driver's usual flavour is off by far more."""
    sim = SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=3)
    host = SimulatedKernel.for_root(sim.root)
    agent = Agent(host, Config(mode="observe", interval=1.0, limits=Limits(dwell=0)), str(tmp_path / "st"),
                  clock=lambda: sim.clock)  # fmt: skip
    for _ in range(5):
        sim.step(1.0, sim.sc.phases[0])
        agent.run_pass()
    model = agent.proposer.models["eth1"]
    assert model.prior == "timer-from-first" and model.flavour == "timer-restart", model
    window = agent.proposer.windows["eth1"][-1]
    ours, usual = (predicted_interrupts(window, f) for f in ("timer-restart", "timer-from-first"))
    assert abs(ours / window.interrupts - 1) < 0.2, (ours, window)
    assert abs(usual / window.interrupts - 1) > 0.5, (usual, window)
    assert "identified from" in model.describe()


def _restart_cost(setting: Moderation, rate: float = 100_000) -> float:
    """J of a setting on a CQE-mode queue (balanced, 8 queues): what the choice really costs there."""
    f = forecast(rate, setting, 0.8, 1.5, "timer-restart")
    return f.latency_us + 100.0 * f.cpu * 8


def test_an_unconfirmed_flavour_buys_no_window_another_flavour_makes_ruinous():
    """No deferral, 100k packets/s per queue, the driver's usual flavour not yet confirmed: weighed on its own it
    buys 32 µs / 128 frames, which a restarting timer holds open to the frame limit (J about four times the
    best); weighed at its worst under every flavour, the choice costs little whichever the NIC turns out to be."""
    now = Moderation(3, 32)
    trusting = choose(100_000, now, "balanced", 0.8, 1.5, deferral=False, queues=8)
    hedged = choose(100_000, now, "balanced", 0.8, 1.5, deferral=False, queues=8, unsure=FLAVOURS)
    best = choose(100_000, now, "balanced", 0.8, 1.5, deferral=False, queues=8, flavour="timer-restart")
    assert _restart_cost(trusting.setting) > 3 * _restart_cost(best.setting), trusting.setting
    assert _restart_cost(hedged.setting) < 1.5 * _restart_cost(best.setting), hedged.setting
    assert "weighed at its worst under" in hedged.reason


def test_a_restarting_timer_gets_windows_the_frame_limit_closes():
    """Under timer-restart a steady stream keeps the timer from expiring: the frame limit ends the window, so the
    candidates include long windows with small frame limits, and one of them wins (the oracle's grid agrees)."""
    best = choose(100_000, Moderation(3, 32), "balanced", 0.8, 1.5, deferral=False, queues=8, flavour="timer-restart")
    assert best.setting.rx_frames <= 16 and best.setting.rx_usecs >= 16, best.setting


@pytest.mark.slow
def test_the_cqe_mlx5_scenario_is_tuned_near_the_oracle_once_the_flavour_is_identified(tmp_path):
    """The library's cqe-mlx5 (CQE mode behind the mlx5_core name, deferral off): the agent identifies
    timer-restart, settles on a frame-limited window and scores well; its choices taken on the driver's name
    alone would score below the defaults."""
    from irqtune.sim.policy import Irqtune
    from irqtune.sim.run import run_scenario
    from irqtune.sim.scenario import library
    from irqtune.sim.score import cell, normalise, run_policy

    policy = Irqtune()
    spec = load_scenario(library()["cqe-mlx5"])
    _, _, changes = run_scenario(spec, str(tmp_path / "tree"), policy=policy)
    assert any("model: timer-restart (identified from" in c for c in changes), changes
    assert any("the dwell does not hold this correction" in c for c in changes), changes
    runs = {p: run_policy("cqe-mlx5", p) for p in ("defaults", "oracle", "irqtune")}
    final = runs["irqtune"].results[-1].settings["eth0"]
    assert final["rx_frames"] <= 16 and final["defer_hard_irqs"] == 0, final
    cells = [cell(r) for r in runs.values()]
    normalise(cells)
    assert next(c.score for c in cells if c.policy == "irqtune") >= 0.85


def test_a_correction_after_the_flavour_is_identified_is_not_held_by_the_dwell(tmp_path):
    """Deferral forbidden, the throughput goal, a CQE-mode NIC behind mlx5_core's name. The first choice is made
    before the flavour is known; once the measured interrupt rates identify timer-restart, the setting rests on a
    flavour ruled out, and the correction is applied within the 30 s dwell (said in its reason) instead of the NIC
    running 30 s on a wrong model."""
    from irqtune.act.journal import Journal
    from irqtune.statedir import boot_id

    sim = SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=3)
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "st")
    journal = Journal.open(state, boot_id(host))
    config = Config(mode="tune", interval=1.0, limits=Limits(dwell=30.0),
                    devices=[DeviceRule("eth1", goal="throughput")],
                    bounds={"net/eth1/napi-defer-hard-irqs": (0, 0)})  # fmt: skip
    agent = Agent(host, config, state, clock=lambda: sim.clock, journal=journal)
    applied = []
    try:
        for _ in range(5):
            sim.step(1.0, sim.sc.phases[0])
            applied += [(sim.clock, d) for d in agent.run_pass().decisions if d.outcome == "applied"]
    finally:
        journal.close()
    frames = [(t, d) for t, d in applied if d.knob == "net/eth1/coalesce/rx-max-frames"]
    assert len(frames) >= 2 and frames[1][0] - frames[0][0] < 30, [(t, d.to_json()) for t, d in applied]
    assert "timer-restart (identified from" in frames[1][1].reason
    assert "the dwell does not hold this correction" in frames[1][1].reason
    assert agent.proposer.models["eth1"].flavour == "timer-restart"
