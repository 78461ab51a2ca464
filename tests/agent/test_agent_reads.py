"""One agent pass reads /proc/interrupts once: every finding, proposal, placement and write check of the pass uses
the same reading (measure/reading.py). Counted through the host layer, where every read goes."""

from __future__ import annotations

import pytest
from conftest import lifeline_devices, real_linux, require

from irqtune.act.journal import Journal
from irqtune.agent.loop import Agent
from irqtune.config import Config, DeviceRule, Limits
from irqtune.host import Host
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import load_scenario
from irqtune.statedir import boot_id

SCENARIO = """
[host]
cpus = 4

[[nic]]
name = "eth1"
queues = 4
rx_usecs = 64
rx_frames = 256

[[phase]]
seconds = 60
nic = "eth1"
rate_pps = 400000
"""


@pytest.fixture
def count_reads(monkeypatch):
    """How many times each path below a root was read, whatever reader was used."""
    counts: dict[str, int] = {}
    real = Host._read_in

    def counting(self, tree, rel):
        path = f"/{tree}/{rel}"
        counts[path] = counts.get(path, 0) + 1
        return real(self, tree, rel)

    monkeypatch.setattr(Host, "_read_in", counting)
    return counts


def _interrupts_reads(counts: dict[str, int]) -> int:
    return sum(n for path, n in counts.items() if path.endswith("/proc/interrupts"))


def test_an_observe_pass_on_this_host_reads_proc_interrupts_once(count_reads, tmp_path):
    require(real_linux(), "needs a real Linux /proc")
    rules = [DeviceRule(name=name, manage=False) for name in lifeline_devices()]
    agent = Agent(Host("/"), Config(devices=rules), str(tmp_path), clock=lambda: 0.0)
    times = iter([1.0, 2.0, 3.0])
    agent.clock = lambda: next(times)
    for _ in range(3):
        count_reads.clear()
        report = agent.run_pass()
        assert _interrupts_reads(count_reads) == 1, (report.number, count_reads)


def test_a_tune_pass_that_places_and_writes_reads_proc_interrupts_once(count_reads, tmp_path):
    """Placement, coalescing and the affinity writes' managed check (engine.prepare) all in one pass."""
    sim = SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=3)
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    agent = Agent(host, Config(mode="tune", interval=1.0, limits=Limits(dwell=0, max_changes=8)), state,
                  clock=lambda: sim.clock, journal=journal)  # fmt: skip
    applied = []
    try:
        for _ in range(3):
            sim.step(1.0, sim.sc.phases[0])
            count_reads.clear()
            report = agent.run_pass()
            applied += [d.knob for d in report.decisions if d.outcome == "applied"]
            assert _interrupts_reads(count_reads) == 1, (report.number, count_reads)
    finally:
        journal.close()
    assert any(k.startswith("irq/") for k in applied), applied  # the pass did write affinity (prepare ran)


def test_config_housekeeping_confines_placement(tmp_path):
    """[cpus] housekeeping = "2-3": the agent places the NIC's queue IRQs on CPUs 2-3 only (the others are as good
    as banned for IRQs); without it the spread uses all four."""
    sim = SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=3)
    host = SimulatedKernel.for_root(sim.root)
    targets = {}
    for housekeeping in ("", "2-3"):
        config = Config(interval=1.0)
        config.cpus.housekeeping = housekeeping
        agent = Agent(host, config, str(tmp_path / f"state{housekeeping}"), clock=lambda: sim.clock)
        sim.step(1.0, sim.sc.phases[0])
        report = agent.run_pass()
        targets[housekeeping] = {d.target for d in report.decisions if d.knob.startswith("irq/")}
    assert targets[""] == {"0", "1", "2", "3"}, targets
    assert targets["2-3"] == {"2", "3"}, targets
