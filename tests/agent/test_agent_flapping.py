"""Flapping under a periodic load: a knob toggled once a period, each change waiting out the dwell, is frozen at
the safer value (issue 15, "bursts without flapping"). The guard is tested on a fake clock through the agent's own
check and write path, and end to end on a simulated NIC whose load alternates every 5 s (dwell 3 s)."""

from __future__ import annotations

import pytest

from irqtune.act.engine import read_knob
from irqtune.act.journal import Journal
from irqtune.agent.loop import FLAP_DWELLS, FLAP_RETURNS, Agent
from irqtune.config import Config, Limits
from irqtune.decide.moderation import safer
from irqtune.plan import Change
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.policy import Irqtune
from irqtune.sim.run import run_scenario
from irqtune.sim.scenario import load_scenario
from irqtune.statedir import boot_id

NIC = """
[host]
cpus = 8

[[nic]]
name = "eth1"
queues = 4
cpus = "0-3"
flavour = "timer-restart"
rx_usecs = 8
rx_frames = 128
"""
PHASE = '\n[[phase]]\nname = "{name}"\nseconds = 5\nnic = "eth1"\nrate_pps = {rate}\n'
DEFER, GRO = "net/eth1/napi-defer-hard-irqs", "net/eth1/gro-flush-timeout"
DWELL = 3.0


def periodic(cycles: int) -> str:
    """100k pps for 5 s, 1 Mpps for 5 s, `cycles` times: each phase lasts 1.7 dwells."""
    return NIC + "".join(PHASE.format(name=f"quiet{i}", rate=100_000) + PHASE.format(name=f"burst{i}", rate=1_000_000)
                         for i in range(cycles))  # fmt: skip


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def guarded(tmp_path):
    """An agent in tune mode on a simulated host, with dwell 3 s and a clock the test moves."""
    sim = SimMachine(load_scenario("s.toml", periodic(1)), str(tmp_path / "tree"), seed=2)
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    clock = FakeClock()
    agent = Agent(host, Config(mode="tune", interval=1.0, limits=Limits(dwell=DWELL)), state, clock, journal)
    yield agent, clock
    journal.close()


def _propose(agent: Agent, clock: FakeClock, at: float, knob: str, target: str) -> Change:
    """What the proposer would hand the loop at `at`: `knob` from what it holds now to `target`."""
    clock.now = at
    decision = Change(knob, read_knob(agent.host, knob), target, "test: the load alternates", "eth1")
    agent._consider(decision, at, None, budget_left=True)
    return decision


def test_a_knob_toggled_once_a_period_is_frozen_at_the_safer_value(guarded):
    """0 -> 10 -> 0 a period apart, each past the dwell: the next 0 -> 10 would be the second return, so the knob
    stays at 0 (the lower-latency value) and is frozen; the note names the period and the values."""
    agent, clock = guarded
    outcomes = [_propose(agent, clock, t, DEFER, target).outcome for t, target in ((0, "10"), (5, "0"))]
    third = _propose(agent, clock, 10, DEFER, "10")
    assert outcomes == ["applied", "applied"]
    assert third.outcome == "held", third
    assert "frozen" in third.note and "0 <-> 10" in third.note and "period of about 10 s" in third.note, third.note
    assert "safer (lower-latency) 0" in third.note, third.note
    assert read_knob(agent.host, DEFER) == "0"
    later = _propose(agent, clock, 10 + FLAP_DWELLS * DWELL, DEFER, "10")  # frozen for good, not for a horizon
    assert later.outcome == "held" and later.note.startswith("frozen:"), later


def test_the_freeze_writes_the_safer_value_when_the_knob_holds_the_other(guarded):
    """The knob holds 20000 ns (set long before the horizon): 20000 -> 0 -> 20000, then the return to 0 is applied
    and frozen there."""
    agent, clock = guarded
    _propose(agent, clock, -2 * FLAP_DWELLS * DWELL, GRO, "20000")
    for t, target in ((0, "0"), (4, "20000")):
        assert _propose(agent, clock, t, GRO, target).outcome == "applied"
    last = _propose(agent, clock, 8, GRO, "0")
    assert last.outcome == "applied" and "frozen: " in last.note and "period of about 8 s" in last.note, last
    assert read_knob(agent.host, GRO) == "0" and GRO in agent.frozen
    assert _propose(agent, clock, 16, GRO, "20000").outcome == "held"


def test_returns_further_apart_than_the_horizon_are_no_flapping(guarded):
    agent, clock = guarded
    step = FLAP_DWELLS * DWELL / FLAP_RETURNS + 0.5  # two returns never within the horizon
    targets = ["10", "0", "10", "0"]
    outcomes = [_propose(agent, clock, i * step, DEFER, target).outcome for i, target in enumerate(targets)]
    assert outcomes == ["applied"] * 4 and not agent.frozen


def test_a_retry_after_a_rollback_is_no_flapping(guarded):
    """A change rolled back and retried after its backoff is spaced by the backoff and must pay again each time: the
    rollbacks do not count as returns, so the retries are not frozen."""
    agent, clock = guarded
    for t in (0, 13, 26):
        tried = _propose(agent, clock, t, DEFER, "10")
        assert tried.outcome == "applied", tried
        assert agent._roll_back(tried, "test: worse", t + 3).outcome == "rolled-back"
        agent.backoff.clear()  # as if BACKOFF_PASSES passes went by
    assert DEFER not in agent.frozen and read_knob(agent.host, DEFER) == "0"


def test_three_changes_within_two_dwells_still_freeze_where_the_knob_is(guarded):
    """The older guard, for changes that skip the dwell (rollbacks): written through the agent's own path."""
    agent, _ = guarded
    for t, target in ((0, "10"), (1, "100"), (2, "50")):
        change = Change(DEFER, read_knob(agent.host, DEFER), target, "test", "eth1")
        agent._apply(change, t, None, verify=False)
        assert change.outcome == "applied", change
    assert agent.frozen[DEFER] == f"changed 3 times within {2 * DWELL:g} s"


def test_a_knob_without_a_safer_value_is_frozen_where_it_is():
    assert safer("net/eth1/napi-defer-hard-irqs", "100", "10") == "10"
    assert safer("net/eth1/coalesce/rx-usecs", "64", "8") == "8"
    assert safer("irq/120/affinity", "3", "2") is None
    assert safer("sysctl/net.core.netdev_budget", "600", "300") is None


class Recording(Irqtune):
    """irqtune's policy, keeping every pass report."""

    def start(self, ctl) -> None:
        super().start(ctl)
        self.reports, run = [], self.agent.run_pass
        self.agent.run_pass = lambda: self.reports.append(run()) or self.reports[-1]


@pytest.mark.slow
def test_periodic_bursts_freeze_the_deferral_knobs_instead_of_toggling_them(tmp_path):
    """The issue's case on a simulated NIC: the load alternates every 5 s (1.7 dwells) for a minute. Before, the
    agent reacted one interval late and toggled napi-defer-hard-irqs and gro-flush-timeout every phase (11 times
    each) and the 3-within-2-dwells guard never froze them. Now each is frozen at 0 after at most FLAP_RETURNS + 1
    changes, and the pass report says so whenever the busy phase proposes deferral again."""
    policy = Recording()
    _, _, changes = run_scenario(load_scenario("p.toml", periodic(6)), str(tmp_path / "tree"), seed=1, policy=policy)
    for knob in (DEFER, GRO):
        toggles = [c for c in changes if f" {knob}: " in c]
        assert 1 <= len(toggles) <= FLAP_RETURNS + 1, toggles
        assert knob in policy.agent.frozen, (knob, toggles)
        assert "period of about 10 s" in policy.agent.frozen[knob] and "safer" in policy.agent.frozen[knob]
    assert policy.agent.proposer.seen[DEFER] == 0 and policy.agent.proposer.seen[GRO] == 0
    held = [d for r in policy.reports for d in r.decisions if d.knob == DEFER and d.outcome == "held"]
    assert any(d.note.startswith("frozen: ") and "safer (lower-latency) 0" in d.note for d in held), held
