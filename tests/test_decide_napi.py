"""NAPI policies: budget on squeeze with drops, IRQ suspension for busy-polling applications, threaded advice;
and the agent setting suspension up on a simulated memcached host (per NAPI, through the journal)."""

from __future__ import annotations

from irqtune.act.journal import Journal
from irqtune.agent.loop import Agent
from irqtune.config import Config
from irqtune.decide import napi
from irqtune.measure.rates import Rates
from irqtune.sim.host import SimHost
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.netdev import SimNetdev
from irqtune.sim.scenario import library, load_scenario
from irqtune.state import boot_id


def rates(squeeze: float = 0.0, dropped: float = 0.0, rx_drop: float = 0.0, rx: float = 0.0, polled: float = 0.0,
          softirq: float = 0.0) -> Rates:  # fmt: skip
    return Rates(interval=1.0, cpus=[0, 1], softnet={0: {"time_squeeze": squeeze, "dropped": dropped}, 1: {}},
                 netdev={"eth1": {"rx_packets": rx, "rx_drop": rx_drop}, "lo": {"rx_drop": 99.0}},
                 busy_poll_rx=polled, softirq_time={0: softirq})  # fmt: skip


def test_budget_doubles_only_when_squeezes_come_with_drops():
    assert napi.budget(rates(squeeze=500), 300, 2000) == []  # squeezed, nothing lost: fine
    assert napi.budget(rates(dropped=500), 300, 2000) == []  # drops without squeezes: not the budget
    assert napi.budget(rates(squeeze=0.5, rx_drop=10), 300, 2000) == []  # under 1/s per CPU
    raised = {p.knob: p.target for p in napi.budget(rates(squeeze=40, rx_drop=10), 300, 2000)}
    assert raised == {"sysctl/net.core.netdev_budget": "600", "sysctl/net.core.netdev_budget_usecs": "4000"}
    capped = {p.knob: p.target for p in napi.budget(rates(squeeze=40, dropped=10), 2000, 8000)}
    assert capped == {"sysctl/net.core.netdev_budget": str(napi.BUDGET_MAX)}
    assert napi.budget(rates(squeeze=40, rx_drop=0), 300, 2000) == []  # lo's drops do not count


def test_busy_polling_needs_a_real_share_of_the_packets():
    assert napi.busy_polling(rates(rx=100_000, polled=90_000), ["eth1"]) == 0.9
    assert napi.busy_polling(rates(rx=100_000, polled=5_000), ["eth1"]) is None  # 5 %: incidental
    assert napi.busy_polling(rates(rx=2_000, polled=500), ["eth1"]) is None  # too few packets polled
    assert napi.busy_polling(rates(rx=0, polled=5_000), ["eth1"]) is None


def test_suspension_sets_deferral_and_every_napi():
    proposals = napi.suspension("eth1", 0.9, 0, 0, {8193: 0, 8194: napi.SUSPEND_NS})
    targets = {p.knob: p.target for p in proposals}
    assert targets == {"net/eth1/napi-defer-hard-irqs": "100", "net/eth1/gro-flush-timeout": "20000",
                       "napi/eth1/8193/irq-suspend-timeout": "20000000"}  # fmt: skip
    assert napi.suspension("eth1", 0.9, 100, 20_000, {8193: napi.SUSPEND_NS}) == []  # already set up


def test_threaded_advice_when_softirq_starves_a_squeezed_cpu():
    [found] = napi.threaded_advice(rates(squeeze=20, softirq=0.7), "eth1", {0, 1}, threaded=False)
    assert found.code == "napi-threaded-advised" and found.cpu == 0 and "net/eth1/threaded 1" in found.message
    assert napi.threaded_advice(rates(squeeze=20, softirq=0.7), "eth1", {0}, threaded=True) == []
    assert napi.threaded_advice(rates(squeeze=0, softirq=0.9), "eth1", {0}, threaded=False) == []
    assert napi.threaded_advice(rates(squeeze=20, softirq=0.3), "eth1", {0}, threaded=False) == []


def test_agent_sets_up_suspension_for_a_busy_polling_memcached(tmp_path):
    spec = load_scenario(library()["memcached-low"])
    sim = SimHost(spec, str(tmp_path / "tree"), seed=1)
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    agent = Agent(host, Config(mode="tune"), state, clock=lambda: sim.clock, journal=journal)
    try:
        for _ in range(3):
            sim.step(1.0, spec.phases[0])
            report = agent.run_pass()
            if any(d.knob.endswith("irq-suspend-timeout") for d in report.decisions):
                break
    finally:
        journal.close()
    applied = [d for d in report.decisions if d.outcome == "applied"]
    assert any("busy polling" in d.reason for d in applied), report.decisions
    nic = spec.nics[0].name
    with SimNetdev(host, "6.18") as client:
        values = [n for n in client.napis() if n["irq_suspend_timeout"]]
    assert values and all(n["irq_suspend_timeout"] == napi.SUSPEND_NS and n["defer_hard_irqs"] == 100 for n in values)
    assert not any(d.knob == f"net/{nic}/coalesce/rx-usecs" for d in report.decisions)  # suspension owns it
