"""Identifying a queue's moderation flavour from measured windows (model/identify.py), and the agent using it:
a NIC whose hardware does not work as its driver's name suggests (mlx5 in CQE mode restarts its timer on every
completion) is predicted with the flavour that fits what was measured."""

from __future__ import annotations

import math
import random

import pytest

from irqtune.agent.loop import Agent
from irqtune.config import Config, Limits
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
