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


NIC = 'name = "eth0"\nqueues = 2'
FINITE = "expected a finite number, got"
NUMBERS = [  # (old, new, message)
    *[
        (NIC, f"{NIC}\n{key} = {v}", f"m.toml:9: nic[0].{key}: {FINITE} {v}")
        for key in ("p99_target_us", "irq_cost_us", "service_us")
        for v in ("nan", "inf")
    ],
    ("queues = 2\n\n[[phase]]", "queues = 2\ncstate_us = nan\n\n[[phase]]", f"m.toml:13: nvme[0].cstate_us: {FINITE}"),
    *[("rate_pps = 1000", f"rate_pps = {v}", f"m.toml:18: phase[0].rate_pps: {FINITE} {v}") for v in ("nan", "inf")],
    *[
        ("clients = 4", f"clients = 4\n{key} = nan", f"m.toml:30: phase[1].load[0].{key}: {FINITE} nan")
        for key in ("burst_pps", "burst_ms", "burst_every_ms", "think_us")
    ],
    ("iodepth = 8", "iops = inf", f"m.toml:33: phase[1].load[1].iops: {FINITE} inf"),
    ("seconds = 5\ntlb", "seconds = nan\ntlb", f"m.toml:22: phase[1].seconds: {FINITE} nan"),
    ("seconds = 5\ntlb", "seconds = 1e-300\ntlb", "m.toml:22: phase[1].seconds: expected 0.001 to 86400, got 1e-300"),
    ("seconds = 5\ntlb", "seconds = 1e300\ntlb", "m.toml:22: phase[1].seconds: expected 0.001 to 86400, got 1e+300"),
    ("tlb_shootdowns = 100", "tlb_shootdowns = inf", f"m.toml:23: phase[1].tlb_shootdowns: {FINITE} inf"),
    ("cpus = 8", "cpus = 8\nhz = 0", "m.toml:4: host.hz: expected 10 to 10000, got 0"),
    (NIC, f"{NIC}\nusecs_quantum = 0", "m.toml:9: nic[0].usecs_quantum: expected 1 to 1000, got 0"),
    (NIC, f"{NIC}\nrx_usecs = 9223372036854775807", "m.toml:9: nic[0].rx_usecs: expected 0 to 100000"),
    (NIC, f"{NIC}\nirq_cost_us = 1e300", "m.toml:9: nic[0].irq_cost_us: expected 0 to 1000, got 1e+300"),
    ('name = "one"', f'name = "{"x" * 5000}"', "m.toml:15: phase[0].name: expected at most 64 characters"),
    ('name = "one"', "name = 1" + "0" * 400, "m.toml:15: phase[0].name: expected str, got 10000"),
    ("rate_pps = 1000", "rate_pps = 1" + "0" * 400, "m.toml:18: phase[0].rate_pps: expected a 64-bit integer"),
]


@pytest.mark.parametrize(("old", "new", "message"), NUMBERS)
def test_every_number_is_finite_and_in_range(old, new, message):
    """Issue 16.8: nan/inf rates and durations, hz = 0, seconds = 1e-300, a 5,000-character name: each a located
    error, not a traceback, a division by zero or a run that never ends."""
    text = MULTI.replace(old, new, 1)
    assert text != MULTI
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario("m.toml", text)


def test_phases_last_at_most_a_day():
    text = MULTI.replace("seconds = 5", "seconds = 80000")
    with pytest.raises(ScenarioError, match=re.escape("m.toml:16: phase[0].seconds: the phases last 160,000 s")):
        load_scenario("m.toml", text)


def test_a_value_nested_deep_is_a_located_error():
    """Issue 16.8: quoting a table 1,500 deep in the message raised RecursionError."""
    text = MULTI.replace('nic = "eth0"', "nic" + ".a" * 1500 + " = 1", 1)
    with pytest.raises(ScenarioError, match=re.escape("m.toml:17: phase[0].nic: expected a device name, got {'a'")):
        load_scenario("m.toml", text)
