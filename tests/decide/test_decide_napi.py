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


def test_budget_is_not_raised_on_cpus_saturated_in_softirq_and_irq():
    """CPU-bound overload: the squeezed CPU has no time left, so a bigger budget buys no packet."""
    assert napi.budget(rates(squeeze=40, rx_drop=10, softirq=0.95), 300, 2000) == []
    saturated = rates(squeeze=40, rx_drop=10, softirq=0.85)
    saturated.irq_time = {0: 0.1}  # hard IRQ counts too
    assert napi.budget(saturated, 300, 2000) == []
    assert len(napi.budget(rates(squeeze=40, rx_drop=10, softirq=0.6), 300, 2000)) == 2  # time to spare


@pytest.mark.parametrize(
    ("before", "after", "paid", "word"),
    [
        ((2_000_000, 400_000, 3_300), (2_000_000, 400_000, 1_650), False, "the squeeze only moved"),
        ((2_000_000, 400_000, 3_300), (2_040_000, 390_000, 1_650), False, "paid nothing"),  # within 5 % noise
        ((2_000_000, 400_000, 3_300), (2_000_000, 200_000, 3_300), False, "paid nothing"),  # the load fell
        ((2_000_000, 400_000, 3_300), (2_200_000, 200_000, 1_650), True, "more delivered"),
        ((2_000_000, 100_000, 3_300), (2_050_000, 40_000, 1_650), True, "fewer dropped"),  # no less offered
        ((10_000, 40, 900), (10_000, 0, 100), False, "paid nothing"),  # under the 50/s floor
    ],
)
def test_a_budget_step_pays_only_by_packets(before, after, paid, word):
    """More delivered or fewer dropped at no less load, beyond noise; a fall of time_squeeze alone is nothing."""
    got, why = napi.budget_paid(napi.Delivery(*before), napi.Delivery(*after))
    assert got is paid and word in why, why
    assert f"time_squeeze {before[2]:,.0f} -> {after[2]:,.0f}/s" in why


def overload(idle: float = 0.97) -> Rates:
    """CPUs 0 and 1 serve eth1 flat out and squeeze; CPUs 2-7 idle, 3 busy with something else."""
    cpus = list(range(8))
    return Rates(interval=1.0, cpus=cpus,
                 softnet={c: {"processed": 1e6, "time_squeeze": 3_300.0, "dropped": 0.0} if c < 2 else {}
                          for c in cpus},
                 netdev={"eth1": {"rx_packets": 2e6, "rx_drop": 400_000.0}},
                 softirq_time={0: 0.97, 1: 0.92}, irq_time={0: 0.02, 1: 0.03},
                 idle_time={c: (idle if c != 3 else 0.1) if c >= 2 else 0.0 for c in cpus})  # fmt: skip


def test_cpu_bound_overload_advice_names_more_channels_idle_cpus_and_threaded_napi():
    [found] = napi.cpu_bound_advice(overload(), "eth1", {0, 1}, set(range(8)), 2, ("combined", 16), threaded=False)
    assert found.code == "napi-cpu-bound" and found.device == "eth1" and found.cpu == 0
    text = found.message
    assert "CPU 0 99%, CPU 1 95% in softirq+irq" in text and "6,600 squeezes/s" in text, text
    assert "400,000 drops/s" in text and "netdev_budget" in text
    assert "2 -> 8 (irqtune set net/eth1/channels/combined 8; 8 CPUs available, the driver allows 16)" in text
    assert "RPS to idle CPUs 2,4-7" in text and "CPU 2 97% idle" in text and "rps-cpus 2,4-7" in text  # 3 is busy
    assert "net/eth1/threaded 1" in text


def test_cpu_bound_overload_advice_offers_only_what_the_host_has():
    [found] = napi.cpu_bound_advice(overload(), "eth1", {0, 1}, set(range(8)), 2, ("rx", 2), threaded=True)
    assert "channels" not in found.message and "threaded" not in found.message  # at the driver's maximum
    assert "rps-cpus 2,4-7" in found.message
    [found] = napi.cpu_bound_advice(overload(), "eth1", {0, 1}, {0, 1}, 2, None, threaded=None)
    assert "none left" in found.message  # every available CPU serves it already
    [found] = napi.cpu_bound_advice(overload(), "eth1", {0, 1}, set(range(8)), 8, ("combined", 16), threaded=True)
    assert "channels" not in found.message  # as many queues as CPUs
    assert napi.cpu_bound_advice(overload(), "eth1", {2, 3}, set(range(8)), 2, None, False) == []  # not its CPUs
    calm = overload()
    calm.softnet[0]["time_squeeze"] = calm.softnet[1]["time_squeeze"] = 0.0
    assert napi.cpu_bound_advice(calm, "eth1", {0, 1}, set(range(8)), 2, None, False) == []  # busy, not squeezed


def test_busy_polling_needs_a_real_share_of_the_packets():
    assert napi.busy_polling(rates(rx=100_000, polled=90_000), ["eth1"]) == 0.9
    assert napi.busy_polling(rates(rx=100_000, polled=5_000), ["eth1"]) is None  # 5 %: incidental
    assert napi.busy_polling(rates(rx=2_000, polled=500), ["eth1"]) is None  # too few packets polled
    assert napi.busy_polling(rates(rx=0, polled=5_000), ["eth1"]) is None


def test_suspension_is_chosen_only_where_the_model_says_it_pays():
    """Near saturation (230k of the 250k a 4 µs queue can take) deferral alone hands busy periods to ksoftirqd
    and suspension keeps them in the application; at 180k it only adds an empty poll per batch (§2.7), so
    deferral alone wins there (the old candidate list, without a 10 µs deferral of its own, chose suspension)."""
    now = Moderation(0, 1)
    busy = choose(230_000, now, "latency", 4.0, 1.5, busy_polled=True, suspension=True, queues=8)
    assert busy is not None and busy.setting.suspend_us == SUSPEND_US and busy.setting.defer > 0
    assert "busy-polling application" in busy.reason
    moderate = choose(180_000, now, "latency", 4.0, 1.5, busy_polled=True, suspension=True, queues=8)
    assert moderate is not None and moderate.setting.suspend_us == 0 and moderate.setting.defer > 0
    light = choose(24_000, now, "latency", 4.0, 1.5, busy_polled=True, suspension=True, queues=8)
    assert light is None or light.setting.suspend_us == 0  # a mostly idle application sleeps: IRQs must wake it
    unpolled = choose(230_000, now, "latency", 4.0, 1.5, busy_polled=False, suspension=True, queues=8)
    assert unpolled is None or unpolled.setting.suspend_us == 0  # suspension does nothing without the app
    old_kernel = choose(230_000, now, "latency", 4.0, 1.5, busy_polled=True, suspension=False, queues=8)
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
    """memcached-high with less think time: each queue near saturation, where suspension pays (at the library's
    150 µs deferral alone does, in the model and in the simulator's objective alike)."""
    text = Path(library()["memcached-high"]).read_text().replace("think_us = 150", "think_us = 80")
    host, decisions = agent_run(tmp_path / "new", text)
    suspended = [d for d in decisions if d.knob.endswith("irq-suspend-timeout") and d.outcome == "applied"]
    assert len(suspended) == 8  # 4 in the pass that chose it (max_changes), the rest in the next
    assert "busy-polling application" in suspended[0].reason and "on every NAPI" in suspended[-1].reason
    with SimNetdev(host, "6.18") as client:
        values = client.napis()
    assert all(n["irq_suspend_timeout"] == SUSPEND_US * 1000 and n["defer_hard_irqs"] > 0 for n in values)
    _, older = agent_run(tmp_path / "old", text.replace("cpus = 16", 'cpus = 16\nkernel = "6.12"', 1))
    assert not any("irq-suspend-timeout" in d.knob for d in older)  # per-NAPI suspension is 6.13
