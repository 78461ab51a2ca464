"""NAPI policies: budget on squeeze with drops, busy polling detected, IRQ suspension chosen where the model
says it pays, threaded advice; and the agent setting suspension up on a simulated memcached host (per NAPI,
through the journal) but not on a kernel without per-NAPI suspension."""

from __future__ import annotations

from pathlib import Path

import pytest

from irqtune.act.journal import Journal
from irqtune.agent.loop import Agent
from irqtune.config import Config, DeviceRule
from irqtune.decide import napi
from irqtune.decide.moderation import SUSPEND_US, Moderation, choose
from irqtune.measure.rates import Rates
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.netdev import SimNetdev
from irqtune.sim.scenario import library, load_scenario
from irqtune.statedir import boot_id


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


def test_suspension_is_chosen_only_where_the_model_says_it_pays():
    now = Moderation(0, 1)
    busy = choose(180_000, now, "latency", 4.0, 1.5, busy_polled=True, suspension=True, queues=8)
    assert busy is not None and busy.setting.suspend_us == SUSPEND_US and busy.setting.defer > 0
    assert "busy-polling application" in busy.reason
    light = choose(24_000, now, "latency", 4.0, 1.5, busy_polled=True, suspension=True, queues=8)
    assert light is None or light.setting.suspend_us == 0  # a mostly idle application sleeps: IRQs must wake it
    unpolled = choose(180_000, now, "latency", 4.0, 1.5, busy_polled=False, suspension=True, queues=8)
    assert unpolled is None or unpolled.setting.suspend_us == 0  # suspension does nothing without the app
    old_kernel = choose(180_000, now, "latency", 4.0, 1.5, busy_polled=True, suspension=False, queues=8)
    assert old_kernel is None or old_kernel.setting.suspend_us == 0


def test_threaded_advice_when_softirq_starves_a_squeezed_cpu():
    [found] = napi.threaded_advice(rates(squeeze=20, softirq=0.7), "eth1", {0, 1}, threaded=False)
    assert found.code == "napi-threaded-advised" and found.cpu == 0 and "net/eth1/threaded 1" in found.message
    assert napi.threaded_advice(rates(squeeze=20, softirq=0.7), "eth1", {0}, threaded=True) == []
    assert napi.threaded_advice(rates(squeeze=0, softirq=0.9), "eth1", {0}, threaded=False) == []
    assert napi.threaded_advice(rates(squeeze=20, softirq=0.3), "eth1", {0}, threaded=False) == []


def agent_run(tmp_path, text: str, passes: int = 4):
    spec = load_scenario("m.toml", text)
    sim = SimMachine(spec, str(tmp_path / "tree"), seed=1)
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    config = Config(mode="tune")
    config.devices.append(DeviceRule(name=spec.nics[0].name, goal="latency"))
    agent = Agent(host, config, state, clock=lambda: sim.clock, journal=journal)
    reports = []
    try:
        for _ in range(passes):
            sim.step(1.0, spec.phases[0])
            reports.append(agent.run_pass())
    finally:
        journal.close()
    return host, [d for r in reports for d in r.decisions]


@pytest.mark.slow
def test_agent_sets_up_suspension_for_a_busy_polling_memcached(tmp_path):
    text = Path(library()["memcached-high"]).read_text()
    host, decisions = agent_run(tmp_path / "new", text)
    suspended = [d for d in decisions if d.knob.endswith("irq-suspend-timeout") and d.outcome == "applied"]
    assert len(suspended) == 8  # 4 in the pass that chose it (max_changes), the rest in the next
    assert "busy-polling application" in suspended[0].reason and "on every NAPI" in suspended[-1].reason
    with SimNetdev(host, "6.18") as client:
        values = client.napis()
    assert all(n["irq_suspend_timeout"] == SUSPEND_US * 1000 and n["defer_hard_irqs"] > 0 for n in values)
    _, older = agent_run(tmp_path / "old", text.replace("cpus = 16", 'cpus = 16\nkernel = "6.12"', 1))
    assert not any("irq-suspend-timeout" in d.knob for d in older)  # per-NAPI suspension is 6.13
