"""An NVMe device's goal in the objective (sim/objective.py): its completion latency and its I/O path's CPU are
priced at the goal's rate, so polling wins where latency is asked and loses where efficiency is; and the
scorecard judges the agent, which only advises on the completion mode, over the knobs it turns."""

from __future__ import annotations

import pytest

from irqtune.sim import score
from irqtune.sim.objective import device_weights, scenario_cost
from irqtune.sim.run import PhaseResult
from irqtune.sim.scenario import library, load_scenario
from irqtune.sim.score import Cell, run_policy


def _modes(run: score.Run) -> list[str]:
    return [r.nvme["nvme0"]["mode"] for r in run.results]


def test_nvme_devices_are_priced_at_their_goal():
    weights = device_weights(load_scenario(library()["nvme-efficiency"]))
    assert weights["nvme0"] == 500.0
    assert device_weights(load_scenario(library()["nvme-optane"]))["nvme0"] == 100.0  # no goal: balanced
    nvme = {"nvme0": {"mean_latency_us": 20.0, "cpu": 0.5, "iops": 1000.0}}
    phase = PhaseResult("p", 1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, {}, {}, nvme)
    assert scenario_cost([phase], weights=weights) == pytest.approx(20.0 + 500.0 * 0.5)
    assert scenario_cost([phase]) == pytest.approx(20.0 + 100.0 * 0.5)


def test_polling_wins_when_latency_is_asked():
    defaults, oracle, poll = (score.cell(run_policy("nvme-latency", p)) for p in ("defaults", "oracle", "always-poll"))
    assert "irq" not in _modes(run_policy("nvme-latency", "oracle"))
    assert oracle.cost < poll.cost < defaults.cost and oracle.cost < 0.8 * defaults.cost


def test_polling_loses_when_efficiency_is_asked():
    defaults, oracle, poll = (
        score.cell(run_policy("nvme-efficiency", p)) for p in ("defaults", "oracle", "always-poll")
    )
    assert _modes(run_policy("nvme-efficiency", "oracle"))[1:] == ["irq", "irq"]  # hybrid only just pays when light
    assert poll.cost > 2 * defaults.cost and defaults.cost - oracle.cost < 0.05 * defaults.cost


def _cells(name: str, costs: dict[str, tuple[float, float]]) -> list[Cell]:
    """Cells of one scenario: policy -> (J, its NVMe part)."""
    return [Cell(name, p, j, 0, 0, 0, 0, advised=a) for p, (j, a) in costs.items()]


def test_a_gain_only_the_completion_mode_brings_is_judged_over_the_agents_knobs():
    cells = _cells("nvme", {"defaults": (30, 30), "dim": (30, 30), "oracle": (22, 22), "irqtune": (30, 30)})
    cells += _cells("mixed", {"defaults": (80, 30), "dim": (90, 30), "oracle": (52, 22), "irqtune": (62, 30)})
    cells += _cells("nic", {"defaults": (50, 0), "dim": (60, 0), "oracle": (30, 0), "irqtune": (45, 0)})
    score.normalise(cells)
    assert {c.scenario: round(c.score, 2) for c in cells if c.policy == "irqtune"} == {"nvme": 0.0, "mixed": 0.64,
                                                                                       "nic": 0.25}  # fmt: skip
    reach = score.within_reach(cells)
    assert reach["nvme"]["irqtune"] == 1.0 and reach["mixed"]["irqtune"] == pytest.approx(18 / 20)
    assert "nic" not in reach  # no NVMe gain: judged on the whole J as before
    checks = {(c.goal, c.scenario): c for c in score.score_goals(cells)}
    assert checks[("score", "nvme")].ok and "0.00 over every device" in checks[("score", "nvme")].numbers
    assert ("ahead-of-dim", "nvme") not in checks  # over its knobs nothing could be gained
    assert checks[("score", "mixed")].ok and checks[("ahead-of-dim", "mixed")].ok
    assert not checks[("score", "nic")].ok
