"""Violations first: an IRQ on an isolated, critical or banned CPU is moved off in the first pass whatever
`max_changes`, and the optimisation moves that budget does limit are taken one device at a time, so one NIC's
placement cannot hold back another's coalescing. Driven on a simulated host (the agent's own write path)."""

from __future__ import annotations

import pytest

from irqtune.act.journal import Journal
from irqtune.agent.loop import Agent, PassReport
from irqtune.config import Config, CpuSets, Limits
from irqtune.plan import Change, Rules, fixes_violation
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import load_scenario
from irqtune.statedir import boot_id

MANY_QUEUES = """
[host]
cpus = 8
isolated = "{isolated}"

[[nic]]
name = "eth1"
queues = 8
cpus = "6"

[[phase]]
name = "steady"
seconds = 60
nic = "eth1"
rate_pps = 200000
"""

TWO_NICS = """
[host]
cpus = 8

[[nic]]
name = "eth1"
queues = 8
cpus = "0"

[[nic]]
name = "eth2"
queues = 1
cpus = "0"
rx_usecs = 64
rx_frames = 256

[[phase]]
name = "steady"
seconds = 60
[[phase.load]]
device = "eth1"
rate_pps = 200000
[[phase.load]]
device = "eth2"
rate_pps = 20000
"""


def _passes(tmp_path, scenario: str, passes: int, cpus: CpuSets | None = None,
            backoff: dict[str, int] | None = None) -> tuple[SimMachine, list[PassReport]]:  # fmt: skip
    """Run the agent in tune mode with max_changes = 2 for `passes` one-second passes."""
    sim = SimMachine(load_scenario("s.toml", scenario), str(tmp_path / "tree"), seed=2)
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    config = Config(mode="tune", interval=1.0, cpus=cpus or CpuSets(), limits=Limits(dwell=0, max_changes=2))
    agent = Agent(host, config, state, clock=lambda: sim.clock, journal=journal)
    agent.backoff.update(backoff or {})
    reports = []
    try:
        for _ in range(passes):
            sim.step(1.0, sim.sc.phases[0])
            reports.append(agent.run_pass())
        sim.step(1.0, sim.sc.phases[0])  # what was written is where the IRQs go now
    finally:
        journal.close()
    return sim, reports


@pytest.mark.parametrize(("isolated", "cpus", "why"), [("6-7", CpuSets(), "CPU 6 is isolated"),
                                                       ("", CpuSets(critical="6-7"), "CPU 6 is banned")])  # fmt: skip
def test_a_many_queue_nic_on_a_forbidden_cpu_leaves_it_in_the_first_pass(tmp_path, isolated, cpus, why):
    """Eight queue IRQs on CPU 6 (isolated, or critical in the config) with max_changes = 2. Before, two moved
    per pass and the rest stayed on CPU 6 for three more passes; now every one moves in pass 1, marked as a
    violation fix, and none counts against the budget."""
    sim, (report,) = _passes(tmp_path, MANY_QUEUES.format(isolated=isolated), 1, cpus)
    moves = [d for d in report.decisions if d.knob.startswith("irq/")]
    assert len(moves) == 8 and all(d.outcome == "applied" for d in moves), [d.to_json() for d in moves]
    assert all(d.reason.startswith(f"violation: {why}; spread eth1") for d in moves), [d.reason for d in moves]
    assert {e.irq: sim.effective_cpu(e) for e in sim.irqs if sim.effective_cpu(e) == 6} == {}


def test_a_violation_fix_still_waits_for_its_backoff(tmp_path):
    """Outside the budget is not outside the checks: an IRQ whose knob backs off after a rollback is held, the
    other seven are moved in the same pass (before, max_changes held all but two)."""
    sim, (report,) = _passes(tmp_path, MANY_QUEUES.format(isolated="6-7"), 1, backoff={"irq/100/affinity": 5})
    outcomes = {d.knob: d.outcome for d in report.decisions}
    assert outcomes.pop("irq/100/affinity") == "held"
    assert set(outcomes.values()) == {"applied"} and len(outcomes) == 7, outcomes
    assert [e.irq for e in sim.irqs if sim.effective_cpu(e) == 6] == [100]


def test_one_nics_placement_does_not_hold_back_anothers_coalescing(tmp_path):
    """eth1's eight queues all on CPU 0 need seven placement moves; eth2 needs only its coalescing (rx-usecs
    64 at 20k packets/s). Before, with max_changes = 2 eth2 waited until eth1's placement and its own
    moderation were done (pass 5 and later); now the devices take turns, and eth2's rx-usecs is written in the
    first pass that proposes it (pass 2: the first has no rates yet)."""
    _, reports = _passes(tmp_path, TWO_NICS, 2)
    applied = [(i, d.knob) for i, r in enumerate(reports) for d in r.decisions if d.outcome == "applied"]
    assert (1, "net/eth2/coalesce/rx-usecs") in applied, [[d.to_json() for d in r.decisions] for r in reports]
    assert all(len([k for i, k in applied if i == n]) <= 2 for n in range(2)), applied  # the budget still holds
    held = [d.knob for d in reports[1].decisions if d.outcome == "held"]
    assert any(k.startswith("irq/") for k in held), held  # eth1's placement goes on next pass


RULES = Rules(banned_cpus=frozenset({5}), isolated_cpus=frozenset({6, 7}), irq_devices={100: "eth1", 101: "eth2"},
              device_cpus={"eth2": frozenset({6})})  # fmt: skip


@pytest.mark.parametrize(
    ("knob", "current", "target", "why"),
    [
        ("irq/100/affinity", "6", "0", "CPU 6 is isolated"),
        ("irq/100/affinity", "0-7", "1", "CPU 5 is banned; CPU 6-7 is isolated"),  # the default: every CPU
        ("irq/100/affinity", "6", "7", None),  # from one isolated CPU to another: no fix
        ("irq/100/affinity", "6", "0,6", None),  # still on it
        ("irq/100/affinity", "0", "1", None),  # an optimisation move
        ("irq/101/affinity", "6", "0", None),  # eth2 is configured on CPU 6: allowed there
        ("irq/101/affinity", "5", "6", "CPU 5 is banned"),  # to its own CPU
        ("net/eth1/rps-cpus", "6", "0", None),  # not an IRQ
        ("irq/100/affinity", "ff", "0", None),  # not a CPU list
    ],
)
def test_fixes_violation(knob, current, target, why):
    """What rule an IRQ's current CPUs break when the change moves it where none is broken; None otherwise."""
    assert fixes_violation(Change(knob, current, target, "test"), RULES) == why
