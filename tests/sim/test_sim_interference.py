"""Devices sharing an IRQ CPU below saturation delay each other (irqtune/sim/interference.py, docs/physics.md
§9.9), and moving one away takes that delay back; the library's shared-cpu scenario shows the agent doing it."""

from __future__ import annotations

import random

import pytest

from irqtune.sim.interference import Work, delays, extra_wait, nic_work
from irqtune.sim.policy import make_policy
from irqtune.sim.run import run_scenario
from irqtune.sim.scenario import library, load_scenario

TWO_NICS = """[host]
cpus = 4

[[nic]]
name = "eth0"
queues = 1
cpus = "1"

[[nic]]
name = "eth1"
queues = 1
cpus = "{other}"

[[phase]]
name = "busy"
seconds = 4

[[phase.load]]
device = "eth0"
rate_pps = 250000
{neighbour}"""
NEIGHBOUR = """
[[phase.load]]
device = "eth1"
rate_pps = 250000
"""


def _victim(tmp_path, other: str = "1", neighbour: bool = True, policy: str = "defaults") -> tuple[dict, object]:
    """eth0's numbers with eth1 (as busy as eth0) on CPU `other`, or eth1 idle."""
    text = TWO_NICS.format(other=other, neighbour=NEIGHBOUR if neighbour else "")
    results, _, _ = run_scenario(load_scenario("two.toml", text), str(tmp_path / f"t-{other}-{neighbour}-{policy}"),
                                 policy=make_policy(policy))  # fmt: skip
    return results[0].nics["eth0"], results[0]


def test_a_neighbour_on_the_same_cpu_raises_the_victims_p99_below_saturation(tmp_path):
    """Two NICs at about 30 % each on CPU 1 (60 % in all): nothing is dropped, but eth0's packets wait for
    eth1's polls, so its mean and p99 rise over eth0 alone."""
    alone, _ = _victim(tmp_path, neighbour=False)
    shared, phase = _victim(tmp_path)
    assert 0.5 < phase.rho_max < 0.8 and phase.dropped_pps == 0  # below saturation
    assert shared["mean_latency_us"] > alone["mean_latency_us"] + 1.0
    assert shared["p99_us"] > 1.5 * alone["p99_us"]


def test_moving_the_neighbour_to_another_cpu_takes_the_wait_away(tmp_path):
    shared, _ = _victim(tmp_path)
    apart, _ = _victim(tmp_path, other="2")  # a static placement: eth1 on its own CPU
    alone, _ = _victim(tmp_path, neighbour=False)
    assert apart["p99_us"] == pytest.approx(alone["p99_us"], rel=0.05) and apart["p99_us"] < shared["p99_us"] / 1.5
    # the agent's spread separates them at its first pass: as if they had started apart
    moved, _ = _victim(tmp_path, policy="irqtune")
    started_apart, _ = _victim(tmp_path, other="2", policy="irqtune")
    assert moved["p99_us"] == pytest.approx(started_apart["p99_us"], rel=0.05)


def test_the_wait_is_the_others_residual_work_stretched_by_the_cpus_load():
    """W = (the others' busy x residual) / (1 - the CPU's load): two queues at 0.3 with 2 µs residuals: 1.5 µs."""
    works = [Work(0, 0.3, 2e-6), Work(0, 0.3, 2e-6), Work(1, 0.5, 9e-6)]
    wait, other = extra_wait(works[:2], 0)
    assert wait == pytest.approx(1.5e-6) and other == pytest.approx(0.3)
    assert extra_wait([works[2]], 0) == (0.0, 0.0)  # alone on its CPU
    assert extra_wait([Work(0, 0.6, 1e-6), Work(0, 0.4, 1e-6)], 0)[0] == float("inf")  # no capacity left
    # a poll of X̄ = 5 µs (0.3 of the CPU at 60k polls/s) of 0.8 µs packets: residual (5 + 0.8)/2
    assert nic_work(0, 0.3, 60_000, 0.8e-6, 1.5e-6).residual == pytest.approx(2.9e-6)


def test_the_drawn_waits_have_the_closed_forms_mean():
    drawn = delays(2e-6, 0.3, 200_000, random.Random(1))
    assert sum(drawn) / len(drawn) == pytest.approx(2e-6, rel=0.02)
    assert sum(1 for d in drawn if d > 0) / len(drawn) == pytest.approx(0.3, rel=0.02)  # PASTA: busy fraction


@pytest.mark.slow
def test_the_agent_moves_one_nic_off_the_shared_cpus_in_the_library_scenario(tmp_path):
    scenario = load_scenario(library()["shared-cpu"])
    for phase in scenario.phases:
        phase.seconds = 4
    defaults, _, _ = run_scenario(scenario, str(tmp_path / "d"))
    tuned, _, changes = run_scenario(scenario, str(tmp_path / "i"), policy=make_policy("irqtune"))
    moved = [c for c in changes if "affinity" in c and "spread eth1" in c]
    assert len(moved) == 4 and all("-> " + cpu in " ".join(moved) for cpu in "4567")
    for before, after in zip(defaults, tuned):
        assert after.nics["eth0"]["settled_p99_us"] < 0.8 * before.nics["eth0"]["settled_p99_us"]
