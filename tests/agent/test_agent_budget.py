"""Budgets only where they pay: a NAPI budget step is kept after its probation only if more packets got through or
fewer were dropped (a fall of time_squeeze alone only shows the squeeze moved), and CPU-bound overload gets advice
(more channels, RPS to idle CPUs, threaded NAPI) instead of a budget raise.

The verdict is driven through the loop's `_verify` with synthetic rates (the simulator's budget does not change
what a queue delivers below saturation); the overload runs on the simulated host (receive-overload: two queues
at 1.2 Mpps each on four CPUs that take 1 Mpps each).
"""

from __future__ import annotations

import json
from pathlib import Path

from irqtune.act.journal import Journal
from irqtune.agent.loop import PROBATION_PASSES, Agent
from irqtune.config import Config, Limits
from irqtune.measure.rates import Rates
from irqtune.plan import Change
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import library, load_scenario
from irqtune.statedir import boot_id

BUDGET = "sysctl/net.core.netdev_budget"


def window(delivered: float, dropped: float, squeeze: float) -> Rates:
    """One second on two CPUs that share the work: what a budget step is judged by."""
    per_cpu = {"processed": delivered / 2, "dropped": 0.0, "time_squeeze": squeeze / 2}
    return Rates(interval=1.0, cpus=[0, 1], softnet={0: dict(per_cpu), 1: dict(per_cpu)},
                 netdev={"eth0": {"rx_packets": delivered, "rx_drop": dropped}},
                 softirq_time={0: 0.6, 1: 0.6})  # fmt: skip


def _agent(tmp_path: Path, scenario: str = "receive-overload") -> tuple[Agent, SimMachine, Journal]:
    spec = load_scenario("s.toml", Path(library()[scenario]).read_text())
    sim = SimMachine(spec, str(tmp_path / "tree"), seed=1)
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    config = Config(mode="tune", interval=1.0, limits=Limits(dwell=0))
    return Agent(host, config, state, clock=lambda: sim.clock, journal=journal), sim, journal


def _probation(tmp_path: Path, after: Rates) -> tuple[Agent, list[Change], str]:
    """Raise netdev_budget 300 -> 600 through the agent's write path at 2 Mpps delivered, 400k drops/s and
    3,300 squeezes/s; judge it on PROBATION_PASSES windows like `after`. (the agent, its rollbacks, the sysctl then)."""
    agent, sim, journal = _agent(tmp_path)
    try:
        step = Change(BUDGET, "300", "600", "test: time_squeeze with drops")
        agent._apply(step, sim.clock, window(2e6, 400_000, 3_300))
        assert step.outcome == "applied", step.note
        rollbacks = [back for _ in range(PROBATION_PASSES) for back in agent._verify(after, sim.clock)]
    finally:
        journal.close()
    return agent, rollbacks, (Path(sim.root) / "proc/sys/net/core/netdev_budget").read_text().strip()


def test_a_budget_raise_that_only_moved_the_squeeze_is_rolled_back(tmp_path):
    """Delivered and drops unchanged, time_squeeze halved: before, the step was kept (healthy: less drops+squeezes);
    now it is rolled back at the end of its probation as having paid nothing, with the numbers."""
    agent, rollbacks, value = _probation(tmp_path, window(2e6, 400_000, 1_650))
    assert [(d.knob, d.outcome) for d in rollbacks] == [(BUDGET, "rolled-back")], rollbacks
    why = rollbacks[0].reason
    assert "paid nothing" in why and "the squeeze only moved" in why, why
    assert "delivered 2,000,000 -> 2,000,000 packets/s" in why and "drops 400,000 -> 400,000/s" in why, why
    assert "time_squeeze 3,300 -> 1,650/s" in why, why
    assert value == "300" and agent.pending == []
    assert BUDGET in agent.backoff


def test_a_budget_raise_that_delivered_more_is_kept(tmp_path):
    agent, rollbacks, value = _probation(tmp_path, window(2.2e6, 200_000, 1_650))
    assert rollbacks == [] and value == "600"
    assert agent.pending == []  # kept: off probation


def test_cpu_bound_overload_gets_channel_and_rps_advice_not_a_budget_raise(tmp_path):
    """Both queues' CPUs at 100 % in softirq, squeezed, 400k drops/s: before, the agent doubled netdev_budget and
    netdev_budget_usecs (the squeeze halved, not a packet more got through). Now it raises nothing and names the
    ways to more CPUs: more channels (this driver allows 4), RPS to the idle CPUs 2-3, threaded NAPI."""
    agent, sim, journal = _agent(tmp_path)
    ethtool = Path(sim.root) / "sys/class/net/eth0/irqtune-sim/ethtool.json"
    state = json.loads(ethtool.read_text())
    state["channels"]["combined_max"] = 4  # a driver with more channels than the NIC uses
    ethtool.write_text(json.dumps(state))
    reports = []
    try:
        for _ in range(6):
            sim.step(1.0, sim.sc.phases[0])
            reports.append(agent.run_pass())
    finally:
        journal.close()
    knobs = [d.knob for r in reports for d in r.decisions]
    assert not any("netdev_budget" in k for k in knobs), knobs
    advice = [f["message"] for r in reports[1:] for f in r.findings if f["code"] == "napi-cpu-bound"]
    assert len(advice) == len(reports) - 1, [r.findings for r in reports]  # every pass after the first
    text = advice[-1]
    assert "CPU 0 100%, CPU 1 100% in softirq+irq" in text and "400,000 drops/s" in text, text
    assert "irqtune set net/eth0/channels/combined 4" in text, text
    assert "RPS to idle CPUs 2-3 (CPU 2 100% idle, CPU 3 100% idle" in text, text
    assert "net/eth0/threaded 1" in text, text
    assert not any(f["code"] == "napi-threaded-advised" for r in reports for f in r.findings)  # said once
