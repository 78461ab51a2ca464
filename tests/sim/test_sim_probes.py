"""What the eBPF probes would measure on the simulated host (sim/probes.py): the counts agree with the tree's
own counters, and the agent in `simulate` gets them, so the advice that needs probe data is produced there."""

from __future__ import annotations

import json
import re

import pytest
from conftest import cli

from irqtune.decide.advice import ProbeView
from irqtune.sim.machine import SimMachine
from irqtune.sim.nvme import IRQ_COST
from irqtune.sim.policy import Irqtune
from irqtune.sim.probes import SimProbes, histogram
from irqtune.sim.run import run_scenario
from irqtune.sim.scenario import library, load_scenario
from irqtune.sim.score import shorten

SCENARIO = """
[host]
cpus = 8

[[nic]]
name = "eth0"
queues = 2
irq_cost_us = 2.5

[[nvme]]
name = "nvme0"
queues = 2
media = "optane"

[[phase]]
name = "storm"
seconds = 2
tlb_shootdowns = 6000
tlb_cpus = "4-7"
tlb_task = "khugepaged"

[[phase.load]]
device = "eth0"
rate_pps = 100000

[[phase.load]]
device = "nvme0"
iops = 40000
"""


@pytest.fixture
def stepped(tmp_path) -> tuple[SimMachine, dict]:
    sim = SimMachine(load_scenario("p.toml", SCENARIO), str(tmp_path / "tree"), seed=4)
    probes = SimProbes(sim)
    assert probes.window() is None  # nothing measured before the first step
    irqs = {e.irq: sum(e.counts) for e in sim.irqs}
    sim.step(1.0, sim.sc.phases[0])
    window = probes.window()
    return sim, {"window": window, "irqs": {e.irq: sum(e.counts) - irqs[e.irq] for e in sim.irqs}}


def test_the_window_has_the_shape_advice_reads(stepped):
    _, got = stepped
    view = ProbeView.of(got["window"])
    assert view.duration == 1.0 and set(view.sections) == {"hardirq", "block", "tlb"}


def test_hardirq_counts_are_the_interrupts_the_tree_counted_at_the_models_cost(stepped):
    sim, got = stepped
    irqs = got["window"]["probes"]["hardirq"]["data"]["irqs"]
    assert {int(k): v["count"] for k, v in irqs.items()} == {k: n for k, n in got["irqs"].items() if n}
    nic = next(e.irq for e in sim.irqs if e.device == "eth0")
    nvme = next(e.irq for e in sim.irqs if e.device == "nvme0" and e.queue == 1)
    assert irqs[str(nic)]["mean_seconds"] == pytest.approx(2.5e-6, rel=1e-3)
    assert irqs[str(nvme)]["mean_seconds"] == pytest.approx(IRQ_COST, rel=1e-3)


def test_block_latency_is_the_models_issue_to_completion_time(stepped):
    sim, got = stepped
    disk = got["window"]["probes"]["block"]["data"]["devices"]["nvme0n1"]
    completed = sum(q.iops for q in sim.last_nvme)
    assert disk["latency"]["count"] == pytest.approx(completed, rel=0.01) == sim.counters.disks["nvme0n1"]
    assert set(disk["queues"]) == {"hctx0", "hctx1"}
    # the application's mean latency (closed form) less the submission and the wake-up the tracepoints miss
    app = sum(q.latency * q.iops for q in sim.last_nvme) / completed
    assert disk["latency"]["mean_seconds"] == pytest.approx(app - 4e-6, rel=0.1)


def test_tlb_shootdowns_per_cpu_and_their_sender(stepped):
    sim, got = stepped
    tlb = got["window"]["probes"]["tlb"]["data"]
    assert tlb["reasons"]["remote_shootdown"]["per_cpu"] == {cpu: sim.counters.tlb[cpu] for cpu in range(4, 8)}
    assert tlb["senders"] == {"khugepaged": 6000}


def test_a_histogram_keeps_the_count_and_the_mean():
    h = histogram([1e-6, 3e-6, 100e-6], 300)
    assert h["count"] == 300 and h["mean_seconds"] == pytest.approx(104e-6 / 3, rel=1e-3)
    assert sum(n for _, n in h["buckets"]) == 300 and h["max_seconds"] == pytest.approx(100e-6)


def _findings(name: str, seconds: float, tree) -> list[str]:
    """What the agent reported running `name` (its phases shortened to `seconds` in all) in simulate."""
    policy = Irqtune()
    run_scenario(shorten(load_scenario(library()[name]), seconds), str(tree), policy=policy)
    return policy.findings


def test_simulate_produces_the_nvme_advice_that_needs_the_block_probe(tmp_path):
    found = _findings("nvme-latency", 3, tmp_path)
    poll = [f for f in found if "nvme-poll-would-pay" in f]
    assert poll and "completions take 20.0 µs on average (20,000 I/O)" in poll[0]


def test_simulate_names_the_sender_of_tlb_shootdowns_from_the_tlb_probe(tmp_path):
    found = _findings("tlb-storm", 6, tmp_path)
    churn = [f for f in found if "tlb-churn" in f]
    assert churn and "shootdown senders in the probe window (all CPUs): app 50,000" in churn[0]


def test_polling_advice_weighs_the_devices_goal(tmp_path):
    """The same device and load: polling pays where the goal is latency, not where it is efficiency."""
    latency = _findings("nvme-latency", 3, tmp_path / "latency")
    efficiency = _findings("nvme-efficiency", 3, tmp_path / "efficiency")
    assert any("nvme-poll-would-pay" in f for f in latency)
    spin = [f for f in efficiency if "nvme-poll-hybrid" in f]
    assert not any("nvme-poll-would-pay" in f for f in efficiency)
    assert spin and "at the goal's price of a core (500 µs)" in spin[0]


def test_simulate_prints_and_saves_what_the_agent_reported(tmp_path):
    out_file = tmp_path / "r.json"
    code, out, err = cli("simulate", "nvme-latency", "--policy", "irqtune", "--duration", "3s", "-o", str(out_file))
    assert code == 0, err
    assert re.search(r"^reported: t=1s info nvme-poll-would-pay: nvme0: polling would pay", out, re.M), out
    assert any("nvme-poll-would-pay" in f for f in json.loads(out_file.read_text())["findings"])
