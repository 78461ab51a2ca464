"""Scenario files: every library scenario loads; errors name the file, line and key, nested tables included."""

from __future__ import annotations

import re

import pytest

from irqtune.sim.scenario import ScenarioError, library, load_scenario

MULTI = """
[host]
cpus = 8
isolated = "6-7"

[[nic]]
name = "eth0"
queues = 2

[[nvme]]
name = "nvme0"
queues = 2

[[phase]]
name = "one"
seconds = 5
nic = "eth0"
rate_pps = 1000

[[phase]]
name = "two"
seconds = 5
tlb_shootdowns = 100
tlb_cpus = "2-3"

[[phase.load]]
device = "eth0"
arrivals = "closed-loop"
clients = 4

[[phase.load]]
device = "nvme0"
iodepth = 8
"""


def test_library_has_the_scenarios_the_issue_names():
    names = set(library())
    assert {
        "idle-server",
        "steady-rx",
        "line-rate-small",
        "bursty",
        "memcached-low",
        "memcached-high",
        "load-step",
        "diurnal",
        "receive-overload",
        "nvme-optane",
        "nvme-nand",
        "tlb-storm",
        "mixed-criticality",
    } <= names
    for path in library().values():
        scenario = load_scenario(path)
        assert scenario.phases and all(p.seconds > 0 for p in scenario.phases)


def test_loads_inline_and_in_tables():
    sc = load_scenario("m.toml", MULTI)
    one, two = sc.phases
    assert [(load.device, load.rate_pps) for load in one.loads] == [("eth0", 1000.0)]
    assert [(load.device, load.arrivals, load.clients, load.iodepth) for load in two.loads] == [
        ("eth0", "closed-loop", 4, 0),
        ("nvme0", "poisson", 0, 8),
    ]
    assert two.tlb_shootdowns == 100 and two.load_for("nvme0").iodepth == 8 and one.load_for("nvme0") is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("clients = 4", "clients = 0", "m.toml:29: phase[1].load[0].clients: closed-loop arrivals need clients"),
        ("iodepth = 8", "iodepth = 8\nrate_pps = 5", "m.toml:34: phase[1].load[1].rate_pps: nvme0 is an NVMe"),
        ('device = "nvme0"', 'device = "nvme9"', "m.toml:32: phase[1].load[1].device: no [[nic]] or [[nvme]]"),
        ("iodepth = 8", "iodepht = 8", "m.toml:33: phase[1].load[1].iodepht: unknown key"),
        ('tlb_cpus = "2-3"', 'tlb_cpus = "2-9"', "m.toml:24: phase[1].tlb_cpus: CPU 8 does not exist"),
        ("rate_pps = 1000", "rate_pps = -5", "m.toml:18: phase[0].rate_pps: must not be negative"),
        ('nic = "eth0"\nrate', "rate", "m.toml:17: phase[0].rate_pps: a load needs its device"),
        ("queues = 2\n\n[[nvme]]", 'queues = 2\ncpus = "0,12"\n\n[[nvme]]', "m.toml:9: nic[0].cpus: CPU 12 does"),
        ('name = "eth0"\nqueues = 2', 'name = "eth0"\nqueues = 2\nflavour = "itr"', "m.toml:9: nic[0].flavour"),
        ("seconds = 5\ntlb", "seconds = 0\ntlb", "m.toml:22: phase[1].seconds: a phase needs a positive"),
        ("clients = 4", 'clients = "4"', "m.toml:29: phase[1].load[0].clients: expected int"),
    ],
)
def test_errors_name_the_key_and_line(old, new, message):
    text = MULTI.replace(old, new, 1)
    assert text != MULTI
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario("m.toml", text)
