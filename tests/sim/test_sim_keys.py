"""Scenario keys for the host's SMT, the operator's irq_sink, a NIC's driver, deferral and channel maximum, an
NVMe device's service time and goal: validated with the file, line and key, and shown to the agent as a real host
shows them."""

from __future__ import annotations

import os
import re

import pytest

from irqtune.host import Host
from irqtune.measure.topology import read_topology
from irqtune.sim.ethtool import SimEthtool
from irqtune.sim.machine import SMT_CONTENTION, SimMachine
from irqtune.sim.policy import Irqtune
from irqtune.sim.run import run_scenario
from irqtune.sim.scenario import ScenarioError, load_scenario

SCENARIO = """
[host]
cpus = 8
smt = 2
irq_sink = "0"

[[nic]]
name = "eth0"
queues = 2
cpus = "0-1"
driver = "ixgbe"
flavour = "timer-from-first"
deferral = false

[[nvme]]
name = "nvme0"
queues = 2
media = "optane"
service_us = 20
goal = "latency"

[[phase]]
name = "steady"
seconds = 2
tlb_task = "java"

[[phase.load]]
device = "eth0"
rate_pps = 200000

[[phase.load]]
device = "nvme0"
iodepth = 1
"""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("smt = 2", "smt = 3", "s.toml:4: host.smt: 8 CPUs do not make whole cores of 3 threads"),
        ("smt = 2", "smt = 9", "s.toml:4: host.smt: expected 1 (no SMT) to 8 threads per core"),
        ("smt = 2", 'smt = 2\nnodes = ["0-3", "4-7"]', "s.toml:4: host.smt: CPU 0 and its sibling 4 are on different"),
        ('irq_sink = "0"', 'irq_sink = "9"', "s.toml:5: host.irq_sink: CPU 9 does not exist"),
        ('irq_sink = "0"', 'irq_sink = "0-"', "s.toml:5: host.irq_sink:"),
        ('driver = "ixgbe"', 'driver = "mlx9"', "s.toml:11: nic[0].driver: unknown driver 'mlx9' (expected one of"),
        ("deferral = false", 'deferral = "no"', "s.toml:13: nic[0].deferral: expected bool"),
        ("deferral = false", "max_channels = 1", "s.toml:13: nic[0].max_channels: expected 2..1024 (at least its"),
        ("service_us = 20", "service_us = -1", "s.toml:19: nvme[0].service_us: must not be negative"),
        ('goal = "latency"', 'goal = "speed"', "s.toml:20: nvme[0].goal: expected one of latency, balanced"),
        ('tlb_task = "java"', 'tlb_task = ""', "s.toml:25: phase[0].tlb_task: expected a process name of 1 to 15"),
        ('tlb_task = "java"', 'tlb_task = "a-very-long-task-name"', "s.toml:25: phase[0].tlb_task: expected a"),
    ],
)
def test_new_keys_are_validated_with_file_line_and_key(old, new, message):
    text = SCENARIO.replace(old, new, 1)
    assert text != SCENARIO
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario("s.toml", text)


@pytest.fixture
def sim(tmp_path) -> SimMachine:
    return SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=3)


def test_the_tree_shows_smt_siblings_to_the_agents_topology(sim):
    base = os.path.join(sim.root, "sys/devices/system/cpu")
    for name in ("thread_siblings_list", "core_cpus_list"):
        with open(os.path.join(base, "cpu1/topology", name), encoding="ascii") as f:
            assert f.read() == "1,5\n"
    assert read_topology(Host(sim.root)).smt_groups == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_the_tree_reports_the_declared_driver_whatever_the_flavour(sim, tmp_path):
    link = os.readlink(os.path.join(sim.root, "sys/class/net/eth0/device/driver"))
    assert os.path.basename(link) == "ixgbe"
    plain = SimMachine(load_scenario("p.toml", SCENARIO.replace('driver = "ixgbe"\n', "")), str(tmp_path / "p"))
    assert os.path.basename(os.readlink(os.path.join(plain.root, "sys/class/net/eth0/device/driver"))) == "mlx5_core"


def test_a_nic_run_on_fewer_channels_than_its_driver_allows_shows_the_maximum(sim, tmp_path):
    """`max_channels`: ethtool -l's pre-set maximum, what the agent's CPU-bound advice reads; 0 = its queues."""
    wide = SimMachine(load_scenario("w.toml", SCENARIO.replace("deferral = false", "max_channels = 8")),
                      str(tmp_path / "w"))  # fmt: skip
    with SimEthtool(Host(wide.root)) as client:
        assert client.get_channels("eth0") == {"combined_max": 8, "combined_count": 2}
    with SimEthtool(Host(sim.root)) as client:
        assert client.get_channels("eth0") == {"combined_max": 2, "combined_count": 2}


def test_busy_smt_siblings_slow_each_others_packets(sim):
    phase = sim.sc.phases[0]
    first = {q.queue: q for q in sim.step(1.0, phase)}
    for cpu in (4, 5):  # the siblings of the queues' CPUs 0 and 1 were busy during the step before
        sim._busy_now[cpu] = 1.0
    second = sim.step(1.0, phase)
    assert sim.smt_factor(0) == pytest.approx(1 + SMT_CONTENTION) and sim.smt_factor(2) == 1.0
    for q in second:
        alone = first[q.queue]
        packets = (q.cpu_used - q.overhead) / (alone.cpu_used - alone.overhead)  # the packets' own work
        assert packets == pytest.approx(1 + SMT_CONTENTION, rel=0.01) and q.latency > alone.latency


def test_an_nvme_service_time_replaces_the_medias(sim):
    assert sim.nvme_media(sim.sc.nvmes[0]).mean == pytest.approx(20e-6)
    sim.step(1.0, sim.sc.phases[0])
    assert all(q.latency > 20e-6 for q in sim.last_nvme)  # Optane's own 8 µs would complete well under 20


def test_the_simulated_agent_gets_the_scenarios_operator_settings(tmp_path):
    policy = Irqtune()
    run_scenario(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), policy=policy)
    config = policy.config
    assert config.cpus.irq_sink == "0"
    assert config.goal_for("nvme0", "nvme") == "latency"
    assert config.bound("net/eth0/napi-defer-hard-irqs") == (0, 0)
