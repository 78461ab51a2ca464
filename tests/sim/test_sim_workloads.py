"""Workloads of the simulated host: livelock without NAPI, closed-loop clients, bursts and the ring,
TLB shootdowns in /proc/interrupts, NVMe completion modes, napi-set by kernel version."""

from __future__ import annotations

import json

import pytest
from conftest import cli

from irqtune.model.queue import nic_queue
from irqtune.sim.machine import SimMachine
from irqtune.sim.policy import Policy
from irqtune.sim.run import MIN_SUBSTEPS, run_scenario, substeps
from irqtune.sim.scenario import library, load_scenario
from irqtune.sim.workload import burst_share, closed_loop, during, interrupt_per_packet, queue_load, resolves


@pytest.mark.slow
def test_receive_livelock_without_napi_and_flat_delivery_with_it(tmp_path):
    results, _, _ = run_scenario(load_scenario(library()["receive-livelock"]), str(tmp_path / "t"))
    legacy = [r.nics["eth0"]["delivered_pps"] for r in results]
    napi = [r.nics["eth1"]["delivered_pps"] for r in results]
    offered = [r.nics["eth0"]["offered_pps"] for r in results]
    peak = legacy.index(max(legacy))
    assert 0 < peak < len(legacy) - 1
    assert legacy[peak:] == sorted(legacy[peak:], reverse=True) and legacy[-1] == 0  # it falls to nothing
    assert all(n >= min(o, 1 / 0.8e-6) * 0.999 for n, o in zip(napi, offered))  # NAPI delivers what it can
    assert interrupt_per_packet(1 / 2.3e-6 * 0.99, 0.8e-6, 1.5e-6).delivered == pytest.approx(1 / 2.3e-6 * 0.99)


def test_closed_loop_rate_solves_the_littles_law_fixed_point():
    def at(rate):
        return nic_queue(rate, 4e-6, 1.5e-6, 32e-6, 0)

    rate, result = closed_loop(4, 150e-6, at)
    assert rate * (150e-6 + result.mean_latency) == pytest.approx(4, rel=2e-3)
    faster, _ = closed_loop(4, 150e-6, lambda r: nic_queue(r, 4e-6, 1.5e-6, 0, 1))
    assert faster > rate  # a coalescing window costs closed-loop throughput: the feedback DIM needs


def test_bursts_above_capacity_fill_the_ring_and_drop_the_rest():
    scenario = load_scenario(library()["bursty"])
    load = scenario.phases[0].loads[0]

    def at(rate):
        return nic_queue(rate, 0.8e-6, 1.5e-6, 8e-6, 32)

    small, big = queue_load(load, 4, 512, at), queue_load(load, 4, 8192, at)
    assert small[0] == big[0] == pytest.approx((0.9 * 300e3 + 0.1 * 8e6) / 4)
    assert small[1].delivered < big[1].delivered <= big[0]  # a bigger ring keeps more of each burst


def test_tlb_storm_shows_on_the_process_cpus_only(tmp_path):
    scenario = load_scenario(library()["tlb-storm"])
    sim = SimMachine(scenario, str(tmp_path / "t"))
    sim.step(1.0, scenario.phases[0])
    quiet = json.loads(cli("snapshot", "--json", root=sim.root).stdout)["interrupts"]["rows"]
    sim.step(1.0, scenario.phases[1])
    storm = json.loads(cli("snapshot", "--json", root=sim.root).stdout)["interrupts"]["rows"]
    assert sum(quiet["TLB"]["counts"].values()) == 0
    tlb = {int(c): n for c, n in storm["TLB"]["counts"].items()}
    assert set(tlb) == set(range(2, 8)) and all(
        n == pytest.approx(50_000 * 5 / 6, rel=0.025) for n in tlb.values()
    )  # ±2 % noise
    assert {int(c): n for c, n in storm["CAL"]["counts"].items()} == tlb  # counted in CAL too (current kernels)
    res = {int(c): n for c, n in storm["RES"]["counts"].items()}
    assert set(res) == set(range(2, 8)) and all(n == pytest.approx(2000, rel=0.025) for n in res.values())


def test_nvme_completion_mode_changes_the_model(tmp_path):
    scenario = load_scenario(library()["nvme-optane"])
    sim = SimMachine(scenario, str(tmp_path / "t"))
    sim.step(1.0, scenario.phases[0])
    irq = sim.last_nvme
    sim.tree.write("sys/block/nvme0n1/irqtune-sim/completion", "poll\n")
    sim.step(1.0, scenario.phases[0])
    poll = sim.last_nvme
    assert all(q.irq_rate > 0 for q in irq) and all(q.irq_rate == 0 for q in poll)
    assert max(q.latency for q in poll) < min(q.latency for q in irq)
    assert sum(q.cpu_used for q in poll) > sum(q.cpu_used for q in irq)
    rows = json.loads(cli("snapshot", "--json", root=sim.root).stdout)["interrupts"]["rows"]
    nvme_rows = [r for r in rows.values() if any("nvme0q" in a for a in r.get("actions", []))]
    assert nvme_rows and sum(sum(r["counts"].values()) for r in nvme_rows) > 0  # the IRQ second is counted


@pytest.mark.parametrize(("kernel", "code", "text"), [("6.18", 0, "applied: 0 -> 20000000"),
                                                      ("6.6", 3, "unsupported")])  # fmt: skip
def test_napi_set_on_a_simulated_root_follows_the_kernel_version(tmp_path, kernel, code, text):
    scenario = load_scenario(library()["memcached-low"])
    scenario.host.kernel = kernel
    sim = SimMachine(scenario, str(tmp_path / "t"))
    napi_id = sim.napi_id(sim.irqs[0])
    knob = f"napi/eth0/{napi_id}/irq-suspend-timeout"
    got, out, err = cli("set", knob, "20000000", root=sim.root, state=tmp_path / "s")
    assert got == code and text in out + err
    if code == 0:
        sim.step(1.0, scenario.phases[0])
        assert sim.napi_for(sim.nic_settings(scenario.nics[0]), sim.irqs[0].irq, None).suspend == pytest.approx(0.02)
        got, out, err = cli("restore", root=sim.root, state=tmp_path / "s")
        assert got == 0 and cli("get", knob, root=sim.root).stdout.strip() == "0"


SHORT_BURSTS = """[host]
cpus = 4

[[nic]]
name = "eth0"
queues = 2
cpus = "0-1"

[[phase]]
name = "bursts"
seconds = 3
nic = "eth0"
arrivals = "bursty"
rate_pps = 200000
burst_pps = 1000000
burst_ms = 200
burst_every_ms = 1000
"""


def test_bursts_of_two_parts_or_more_are_resolved_the_rest_mixed():
    """A 200 ms burst is seen by parts of 0.1 s (10 an interval of 1 s, 50 of 5 s); the library's 2 ms bursts would
    need 1000 parts and stay mixed in one step per interval."""
    short = load_scenario("s.toml", SHORT_BURSTS)
    assert substeps(short, 1.0) == 10 and substeps(short, 5.0) == 50 and substeps(short, 0.5) == MIN_SUBSTEPS
    assert substeps(load_scenario(library()["bursty"]), 1.0) == 1
    load = short.phases[0].loads[0]
    assert resolves(load, 0.1) and not resolves(load, 0.125)
    assert [burst_share(load, t, 0.1) for t in (0.0, 0.1, 0.2, 1.0)] == pytest.approx([1.0, 1.0, 0.0, 1.0])
    assert burst_share(load, 0.15, 0.1) == pytest.approx(0.5) and burst_share(load, 0.0, 3.0) == pytest.approx(0.2)
    assert during(load, 0.0, 0.1).rate_pps == 1_000_000 and during(load, 0.3, 0.1).rate_pps == 200_000
    half = during(load, 0.15, 0.1)
    assert half.arrivals == "bursty" and half.burst_ms / half.burst_every_ms == pytest.approx(0.5)
    assert during(load, 0.0, 1.0) is load  # a whole interval: the mix


@pytest.mark.slow
def test_an_interval_in_parts_shows_the_bursts_between_them_and_counts_what_one_step_would(tmp_path):
    """/proc/net/dev read between parts: 1 Mpps in the burst's parts, 200 kpps after; over the interval the same
    packets as one step of it; a counter that gains under one event a part still counts (carried over)."""
    spec = load_scenario("s.toml", SHORT_BURSTS)
    parts, whole = SimMachine(spec, str(tmp_path / "a")), SimMachine(spec, str(tmp_path / "b"))
    rates = []
    for part in range(10):
        before = parts.counters.netdev["eth0"][0]
        parts.step(0.1, spec.phases[0], start=part * 0.1, carry=part < 9)
        rates.append((parts.counters.netdev["eth0"][0] - before) / 0.1)
    assert rates[:2] == pytest.approx([1e6] * 2, rel=1e-3) and rates[2:] == pytest.approx([2e5] * 8, rel=1e-3)
    whole.step(1.0, spec.phases[0])
    assert parts.counters.netdev["eth0"][0] == pytest.approx(whole.counters.netdev["eth0"][0], abs=2)
    assert sum(parts.counters.ticks[0]) == sum(whole.counters.ticks[0]) == 100  # USER_HZ ticks of 10 ms
    assert parts.counters.ticks[0][1] == pytest.approx(whole.counters.ticks[0][1], abs=1)  # 0.1 s parts: not lost


@pytest.mark.slow
def test_a_run_with_resolved_bursts_lets_the_policy_look_between_the_parts(tmp_path):
    class Counting(Policy):
        ticks = 0

        def tick(self, ctl):
            self.ticks += 1

    policy = Counting()
    results, trace, _ = run_scenario(load_scenario("s.toml", SHORT_BURSTS), str(tmp_path / "t"), policy=policy)
    assert policy.ticks == 3 * 9  # 10 parts an interval, the policy between them
    assert [i.offered_pps for i in trace] == pytest.approx([360_000] * 3, rel=1e-6)
    assert results[0].p99_us > 0
