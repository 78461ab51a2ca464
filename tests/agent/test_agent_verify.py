"""The agent's probation: a change is judged on what follows it, never cancelled by a link event, a load change
or a short window, and rolled back when it can no longer be judged.

`judge` is pure and tested on numbers; the loop is tested on a simulated host (the same write path, journal and
rates as on a real one) and, end to end on the running kernel, by tests/agent/test_agent_netns.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from irqtune.act.journal import Journal
from irqtune.agent.loop import BASELINE, HEALTHY, IDLE, UNJUDGED, UNJUDGED_LIMIT, WORSE, Agent, judge
from irqtune.config import Config, Limits
from irqtune.plan import Change
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import load_scenario
from irqtune.statedir import boot_id


@pytest.mark.parametrize(
    ("before", "after", "verdict"),
    [
        ((0, 300_000), (0, 310_000), HEALTHY),  # nothing lost before or after
        ((1_000, 300_000), (1_050, 300_000), HEALTHY),  # within 10 % noise
        ((0, 300_000), (40, 300_000), HEALTHY),  # under the 50/s floor
        ((0, 300_000), (20_000, 300_000), WORSE),  # same load, more loss
        ((0, 300_000), (20_000, 150_000), WORSE),  # less load, more loss
        ((1_000, 300_000), (2_000, 600_000), HEALTHY),  # the loss doubled with the load: per packet no worse
        ((0, 275_000), (698_000, 698_000), WORSE),  # more offered, nothing delivered (the namespace test's case)
        ((0, 1_000_000), (400_000, 1_600_000), UNJUDGED),  # more offered, more delivered, more lost: load or change?
        ((0, 400_000), (0, 0), IDLE),  # the traffic stopped: nothing to judge by, the change waits
        ((0, 0), (0, 0), HEALTHY),  # idle before and after
        ((0, 0), (400_000, 2_400_000), BASELINE),  # changed while idle: the first loaded window is the baseline
    ],
)
def test_judge(before, after, verdict):
    got, why = judge(*before, *after)
    assert got == verdict, why
    assert "drops+squeezes" in why and "packets/s offered" in why


SCENARIO = """
[host]
cpus = 4

[[nic]]
name = "eth1"
queues = 2
rx_usecs = 64
rx_frames = 256

[[phase]]
name = "steady"
seconds = 60
nic = "eth1"
rate_pps = 1000000

[[phase]]
name = "more"
seconds = 60
nic = "eth1"
rate_pps = 1600000
"""


@pytest.fixture
def sim(tmp_path) -> SimMachine:
    return SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=2)


def _agent(sim: SimMachine, tmp_path) -> tuple[Agent, Journal]:
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    config = Config(mode="tune", interval=1.0, limits=Limits(dwell=0))
    return Agent(host, config, state, clock=lambda: sim.clock, journal=journal), journal


def _both_queues_on_one_cpu(agent: Agent, sim: SimMachine) -> tuple[Change, int]:
    moved = sim.effective_cpu(sim.irqs[1])
    bad = Change("irq/101/affinity", str(moved), str(sim.effective_cpu(sim.irqs[0])), "test: both queues on one "
                   "CPU, which takes about 1.2 Mpps", "eth1")  # fmt: skip
    agent._apply(bad, sim.clock, agent.rates)  # the agent's own write path
    return bad, moved


def test_a_load_rise_with_losses_does_not_end_probation(sim, tmp_path):
    """Before, a load rise of more than 25 % re-based the comparison on the first window after it, losses and all,
    so a harmful change was never rolled back. Now: the offered load rose, more got through, and more was lost:
    unjudged, and after UNJUDGED_LIMIT such passes the change is rolled back."""
    steady, more = sim.sc.phases
    agent, journal = _agent(sim, tmp_path)
    try:
        for _ in range(3):
            sim.step(1.0, steady)
            agent.run_pass()
        bad, moved = _both_queues_on_one_cpu(agent, sim)
        reports = []
        for _ in range(UNJUDGED_LIMIT + 1):
            sim.step(1.0, more)
            reports.append(agent.run_pass())
    finally:
        journal.close()
    rolled = [(i, d) for i, r in enumerate(reports) for d in r.rollbacks if d.knob == bad.knob]
    assert len(rolled) == 1, [r.to_json() for r in reports]
    index, back = rolled[0]
    assert index == UNJUDGED_LIMIT - 1, "judged too early or too late"
    assert back.outcome == "rolled-back" and back.target == str(moved)
    assert "could not be judged" in back.reason and "drops+squeezes 0/s" in back.reason, back.reason
    sim.step(1.0, more)
    assert sim.effective_cpu(sim.irqs[1]) == moved


def test_an_early_pass_after_an_event_judges_nothing(sim, tmp_path):
    """A link event or a hotplug starts a pass at once: its window (here 20 ms) neither rolls back nor counts as
    healthy, and it does not replace the baseline; the next full window judges the change."""
    _, more = sim.sc.phases  # 1.6 Mpps: two CPUs take it, one does not
    agent, journal = _agent(sim, tmp_path)
    try:
        for _ in range(3):
            sim.step(1.0, more)
            agent.run_pass()
        bad, _ = _both_queues_on_one_cpu(agent, sim)
        sim.step(0.02, more)
        early = agent.run_pass()
        pending = [(p.decision.knob, p.checked, p.unjudged, p.health) for p in agent.pending if p.decision is bad]
        sim.step(1.0, more)
        full = agent.run_pass()
    finally:
        journal.close()
    assert early.rollbacks == []
    assert pending == [(bad.knob, 0, 0, 0.0)], pending
    assert [d.knob for d in full.rollbacks] == [bad.knob], full.to_json()
    assert not agent.placed  # a rolled-back placement is proposed again (held while the knob backs off)
    assert "drops+squeezes 0/s" in full.rollbacks[0].reason


def test_a_change_on_a_device_that_left_is_dropped_not_written(sim, tmp_path):
    """The device disappears (unplugged, renamed) while its change is on probation: nothing can judge it, and its
    IRQ number or name may be another device's now, so nothing is written; the journal keeps the original."""
    steady, _ = sim.sc.phases
    agent, journal = _agent(sim, tmp_path)
    try:
        for _ in range(3):
            sim.step(1.0, steady)
            agent.run_pass()
        bad, _ = _both_queues_on_one_cpu(agent, sim)
        bad.device = "eth9"  # a device this host does not have: as if eth1 had left
        sim.step(1.0, steady)
        report = agent.run_pass()
    finally:
        journal.close()
    (dropped,) = [d for d in report.rollbacks if d.knob == bad.knob]
    assert dropped.outcome == "dropped" and "eth9 is gone" in dropped.reason, dropped
    assert bad not in [p.decision for p in agent.pending]
    sim.step(1.0, steady)
    assert sim.effective_cpu(sim.irqs[1]) == int(bad.target)  # not written back


def test_a_quiet_period_rolls_nothing_back(sim, tmp_path):
    """Traffic stops for many passes after the agent's changes: they wait (before, three idle passes rolled every
    one back, the IRQ spread included, and placement was never proposed again)."""
    steady, _ = sim.sc.phases
    quiet = replace(steady, loads=[replace(steady.loads[0], rate_pps=0.0)])
    agent, journal = _agent(sim, tmp_path)
    reports = []
    try:
        for phase in [steady] * 2 + [quiet] * (UNJUDGED_LIMIT + 3) + [steady] * 3:
            sim.step(1.0, phase)
            reports.append(agent.run_pass())
    finally:
        journal.close()
    applied = [d.knob for r in reports[:2] for d in r.decisions if d.outcome == "applied"]
    assert any(k.startswith("irq/") for k in applied), applied
    assert [d.knob for r in reports for d in r.rollbacks] == [], [r.to_json()["rollbacks"] for r in reports]


def test_a_rollback_leaves_a_value_something_else_set_alone(sim, tmp_path):
    """The operator changed the knob after irqtune did: the rollback does not write over it (drift is theirs)."""
    _, more = sim.sc.phases
    agent, journal = _agent(sim, tmp_path)
    try:
        for _ in range(3):
            sim.step(1.0, more)
            agent.run_pass()
        bad, _ = _both_queues_on_one_cpu(agent, sim)
        sim.step(1.0, more)
        affinity = sim.root + f"/proc/irq/{sim.irqs[1].irq}/smp_affinity_list"
        with open(affinity, "w") as f:
            f.write("0,3")  # someone else, after irqtune
        report = agent.run_pass()
    finally:
        journal.close()
    (kept,) = [d for d in report.rollbacks if d.knob == bad.knob]
    assert kept.outcome == "drifted-kept" and "holds 0,3" in kept.reason, kept
    with open(affinity) as f:
        assert f.read().strip() == "0,3"
