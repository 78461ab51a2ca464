"""latency-feed, the library scenario where the setting the oracle uses was off the agent's old candidate list: a
deferral period shorter than the list's 20 µs. The agent's search reaches it (and a shorter one), and scores at the
oracle's level, where the list left it at about a third of the way from the defaults."""

from __future__ import annotations

import tempfile

import pytest

from irqtune.sim import score
from irqtune.sim.machine import SimMachine
from irqtune.sim.oracle import plan
from irqtune.sim.scenario import library, load_scenario

OLD_DEFERRALS = {(10, 20), (100, 20), (100, 50)}  # (defer, gro-flush µs) of the old list


def test_the_oracle_defers_with_a_period_the_old_list_lacked():
    spec = load_scenario(library()["latency-feed"])
    with tempfile.TemporaryDirectory() as tree:
        [phase] = plan(SimMachine(spec, tree, seed=1), dynamic=True).phases
    setting = phase["eth0"]
    assert setting.defer > 0 and setting.gro_flush_us < 20
    assert (setting.defer, setting.gro_flush_us) not in OLD_DEFERRALS


@pytest.mark.slow
def test_the_agent_scores_at_the_oracles_level_on_latency_feed():
    cells = [score.cell(score.run_policy("latency-feed", p)) for p in ("defaults", "oracle", "irqtune")]
    score.normalise(cells)
    mine = next(c for c in cells if c.policy == "irqtune")
    assert mine.score >= 0.95, cells
