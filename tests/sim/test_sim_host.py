"""The simulated host: its tree reads like a real one, and tuning it through the real knobs changes it."""

from __future__ import annotations

import json
import re

import pytest
from conftest import cli

from irqtune.agent.loop import Agent
from irqtune.config import Config
from irqtune.findings import Measurements, find_all
from irqtune.measure.nic_ethtool import read_nic_ethtool
from irqtune.measure.reading import read_host
from irqtune.measure.snapshot import take_snapshot
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import ScenarioError, library, load_scenario

SCENARIO = """
[host]
cpus = 8
nodes = ["0-3", "4-7"]
isolated = "6-7"

[[nic]]
name = "eth1"
queues = 4
node = 1

[[nvme]]
name = "nvme0"
queues = 4
media = "optane"

[[phase]]
name = "steady"
seconds = 3
nic = "eth1"
rate_pps = 400000
"""


@pytest.fixture
def sim(tmp_path) -> SimMachine:
    return SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=5)


def test_tree_reads_like_a_real_host(sim):
    sim.step(1.0, sim.sc.phases[0])
    code, out, err = cli("snapshot", "--json", root=sim.root)
    assert code == 0, err
    snap = json.loads(out)
    assert snap["problems"] == [] and snap["unavailable"] == {}
    assert snap["interrupts"]["cpus"] == list(range(8))
    code, out, _ = cli("status", "-i", "0", "--json", root=sim.root)
    devices = {d["name"]: d for d in json.loads(out)["devices"]}
    assert devices["eth1"]["numa_node"] == 1 and [q["queue"] for q in devices["eth1"]["irqs"]] == [0, 1, 2, 3]
    assert devices["nvme0"]["kind"] == "nvme" and len(devices["nvme0"]["irqs"]) == 5


def test_status_shows_each_nics_rings_and_rss(sim):
    code, out, err = cli("status", "-i", "0", "--json", root=sim.root)
    assert code == 0, err
    eth1 = next(d for d in json.loads(out)["devices"] if d["name"] == "eth1")
    assert eth1["rings"] == {"rx": 1024, "rx_max": 4096, "tx": 1024, "tx_max": 4096}
    rss = eth1["rss"]
    assert (rss["hfunc"], rss["queues"], rss["table_size"], rss["indir"][:5]) == ("toeplitz", [0, 1, 2, 3], 128,
                                                                                [0, 1, 2, 3, 0])  # fmt: skip
    text = cli("status", "-i", "0", root=sim.root).stdout
    assert "eth1: rx ring 1024/4096, tx ring 1024/4096, RSS toeplitz over queues 0-3 (128 entries)" in text


def test_tuning_through_the_real_knobs_changes_the_simulation(sim, tmp_path):
    phase = sim.sc.phases[0]
    before = sim.step(1.0, phase)
    assert {q.cpu for q in before} == {0}  # every queue on CPU 0, remote from the NIC's node 1
    code, out, err = cli("apply", "--yes", root=sim.root, state=tmp_path / "s")
    assert code == 0, out + err
    after = sim.step(1.0, phase)
    assert {q.cpu for q in after} == {4, 5}
    assert sum(q.cpu_used for q in after) < sum(q.cpu_used for q in before)  # no cross-NUMA cost any more
    assert max(q.latency for q in after) < min(q.latency for q in before)
    counts = json.loads(cli("snapshot", "--json", root=sim.root).stdout)["interrupts"]["rows"]["100"]["counts"]
    assert set(counts) == {"0", "4"}  # the first second on CPU 0, the second on CPU 4


def test_healthy_nvme_at_one_interrupt_per_io_is_no_storm(tmp_path):
    """Optane at QD16: every queue's IRQ above 100k/s, one per completed read (diskstats): the agent's findings
    have no irq-storm (the rate alone made one)."""
    spec = load_scenario(library()["nvme-optane"])
    sim = SimMachine(spec, str(tmp_path / "tree"), seed=3)
    agent = Agent(SimulatedKernel.for_root(sim.root), Config(), str(tmp_path / "state"), clock=lambda: sim.clock)
    for _ in range(2):
        sim.step(1.0, spec.phases[2])
        report = agent.run_pass()
    assert min(q.irq_rate for q in sim.last_nvme) > 100_000 and len(sim.last_nvme) == 4
    assert not [f for f in report.findings if f["code"] == "irq-storm"], report.findings
    assert agent.rates.block["nvme0n1"] == pytest.approx(sum(q.iops for q in sim.last_nvme), rel=0.01)


@pytest.mark.slow
def test_simulate_is_reproducible_with_a_seed(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    runs = [json.loads(cli("simulate", str(path), "--seed", seed, "--json", "--tree", str(tmp_path / f"t{i}")).stdout)
            for i, seed in enumerate(("3", "3", "4"))]  # fmt: skip
    strip = [{k: v for k, v in r.items() if k != "tree"} for r in runs]
    assert strip[0] == strip[1] and strip[0] != strip[2]
    phase = strip[0]["phases"][0]
    assert phase["delivered_pps"] == pytest.approx(400000) and phase["irq_rate"] > 0 and phase["mean_latency_us"] > 0


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("queues = 4\nnode = 1", "queus = 4\nnode = 1", "s.toml:9: nic[0].queus: unknown key"),
        ("rate_pps = 400000", "rate_pps = -1", "s.toml:21: phase[0].rate_pps: must not be negative"),
        ('isolated = "6-7"', 'isolated = "6-12"', "s.toml:5: host.isolated: CPU 8 does not exist"),
        ("queues = 4\nmedia", "queues = 9\nmedia", "s.toml:14: nvme[0].queues: 9 queues"),
        ("rate_pps = 400000", 'rate_pps = 400000\narrivals = "mmpp"', "s.toml:22: phase[0].arrivals: expected one"),
        ("node = 1", "node = 1\nring = 16", "s.toml:11: nic[0].ring: expected 64..65536 descriptors"),
        ("node = 1", 'node = 1\ncpus = "0-8"', "s.toml:11: nic[0].cpus: CPU 8 does not exist"),
    ],
)
def test_scenario_errors_name_the_key_and_line(tmp_path, old, new, message):
    text = SCENARIO.replace(old, new)
    assert text != SCENARIO
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario("s.toml", text)
    path = tmp_path / "s.toml"
    path.write_text(text)
    code, _, err = cli("simulate", str(path))
    assert code == 1 and "Traceback" not in err and message.split(": ", 1)[1] in err


def test_coalescing_through_the_knob_reaches_the_simulated_driver(sim, tmp_path):
    phase, state = sim.sc.phases[0], str(tmp_path / "s")
    before = sim.step(1.0, phase)
    code, out, _ = cli("set", "net/eth1/coalesce/rx-usecs", "64", root=sim.root, state=state)
    assert code == 0 and "applied: 8 -> 64" in out
    code, out, _ = cli("set", "net/eth1/coalesce/rx-max-frames", "256", root=sim.root, state=state)
    assert code == 0
    after = sim.step(1.0, phase)
    assert sum(q.irq_rate for q in after) < sum(q.irq_rate for q in before) / 3  # fewer, bigger batches
    assert min(q.latency for q in after) > max(q.latency for q in before)  # paid in latency
    code, out, _ = cli("set", "net/eth1/coalesce/rx-usecs", "99999", root=sim.root, state=state)
    assert code == 3 and "refused" in out and "out of range" in out
    code, _, err = cli("set", "net/eth1/channels/combined", "9", root=sim.root, state=state)
    assert code == 1 and "above the driver's maximum of 4" in err
    assert cli("restore", root=sim.root, state=state).exit_code == 0
    assert cli("get", "net/eth1/coalesce/rx-usecs", root=sim.root).stdout.strip() == "8"


def test_ring_sizes_through_the_knob_reach_the_simulated_driver_within_its_maximum(sim, tmp_path):
    state = str(tmp_path / "s")
    assert cli("get", "net/eth1/rings/rx", root=sim.root).stdout.strip() == "1024"
    code, out, err = cli("set", "net/eth1/rings/rx", "4096", root=sim.root, state=state)
    assert code == 0 and "applied: 1024 -> 4096" in out, out + err
    code, _, err = cli("set", "net/eth1/rings/tx", "8192", root=sim.root, state=state)
    assert code == 1 and "8192 is above the driver's maximum of 4096" in err
    code, out, _ = cli("set", "net/eth1/rings/rx-jumbo", "64", root=sim.root, state=state)
    assert code == 3 and "does not report rings rx_jumbo" in out  # this driver has no jumbo ring
    journal = json.loads((tmp_path / "s" / "journal.json").read_text())["entries"]
    assert journal["net/eth1/rings/rx"]["original"] == "1024" and "net/eth1/rings/tx" not in journal
    assert cli("restore", root=sim.root, state=state).exit_code == 0
    assert cli("get", "net/eth1/rings/rx", root=sim.root).stdout.strip() == "1024"


SMALL_RING = SCENARIO.replace("queues = 4\nnode = 1", 'queues = 4\nnode = 1\nring = 64\ncpus = "0-3"\nrx_usecs = 500\n'
                              "rx_frames = 4096").replace("rate_pps = 400000", "rate_pps = 2000000")  # fmt: skip


def _findings_over_one_second(sim) -> list:
    """What `status` would find over one simulated second: two readings, the NICs' rings read over ethtool."""
    host = SimulatedKernel.for_root(sim.root)
    before = take_snapshot(host, with_affinity=False)
    sim.step(1.0, sim.sc.phases[0])
    reading = read_host(host, before=before, monotonic=before.monotonic + 1.0)
    rings = {name: e["rings"] for name, e in read_nic_ethtool(host, ["eth1"]).items()}
    return find_all(Measurements(reading.topology, reading.inventory, reading.rates, rings=rings))


def test_a_small_rx_ring_drops_and_the_advice_raises_it_with_numbers(tmp_path):
    """500k packets/s per queue waiting about 250 µs each hold about 125 packets: a 64-descriptor ring overflows
    (docs/physics.md §9.10); the finding names the ring, its maximum and the drops, and the ring raised through
    the knob ends them."""
    sim = SimMachine(load_scenario("s.toml", SMALL_RING), str(tmp_path / "tree"), seed=5)
    found = [f for f in _findings_over_one_second(sim) if f.code == "rx-ring-small"]
    assert len(found) == 1 and found[0].severity == "warning" and found[0].device == "eth1", found
    drops = float(re.search(r"drops ([0-9,.]+) received", found[0].message).group(1).replace(",", ""))
    assert drops == pytest.approx(4 * (500_000 - 64 / 253e-6), rel=0.05)
    assert (
        "rx ring at 64 of the driver's maximum 4096: raise it (irqtune set net/eth1/rings/rx 128)" in found[0].message
    )
    assert cli("set", "net/eth1/rings/rx", "4096", root=sim.root, state=str(tmp_path / "s")).exit_code == 0
    after = _findings_over_one_second(sim)
    assert not [f for f in after if f.code in ("rx-ring-small", "rx-drops")], after


def test_the_agent_reports_the_small_ring_too(tmp_path):
    """The agent reads rings only for NICs that drop (no extra netlink GET on a quiet pass): its findings carry
    rx-ring-small as status's do."""
    sim = SimMachine(load_scenario("s.toml", SMALL_RING), str(tmp_path / "tree"), seed=5)
    agent = Agent(SimulatedKernel.for_root(sim.root), Config(), str(tmp_path / "state"), clock=lambda: sim.clock)
    for _ in range(2):
        sim.step(1.0, sim.sc.phases[0])
        report = agent.run_pass()
    small = [f for f in report.findings if f["code"] == "rx-ring-small"]
    assert [f["device"] for f in small] == ["eth1"] and "rx ring at 64 of the driver's maximum 4096" in small[0][
        "message"
    ]


@pytest.mark.parametrize(("kernel", "errno_name"), [("6.18", "EPERM"), ("6.6", "EIO")])
def test_managed_nvme_irqs_are_refused_like_the_configured_kernel(tmp_path, kernel, errno_name):
    sim = SimMachine(load_scenario("s.toml", SCENARIO.replace("[host]", f'[host]\nkernel = "{kernel}"')),
                  str(tmp_path / "tree"))  # fmt: skip
    irq = next(e.irq for e in sim.irqs if e.device == "nvme0" and e.queue == 1)
    state = str(tmp_path / "s")
    code, out, _ = cli("set", f"irq/{irq}/affinity", "5", root=sim.root, state=state)
    assert code == 3 and f"({errno_name})" in out
    code, out, _ = cli("status", "-i", "0", "--json", root=sim.root, state=state)
    entry = next(e for d in json.loads(out)["devices"] for e in d["irqs"] if e["irq"] == irq)
    assert (entry["managed"], entry["managed_source"]) == ("yes", "learned")
    code, _, err = cli("set", "irq/100/affinity", "5", "--allow-isolated", root=sim.root, state=state)
    assert code == 0, err


def test_two_drives_managed_queues_share_a_group_but_not_a_cpu(tmp_path):
    """The kernel spreads each drive's queues over the same CPU groups; x86's vector matrix delivers each managed
    IRQ to the CPU of its group with the fewest managed IRQs, so the second drive's queue i lands on the group's
    other CPU (before, both on its first: four CPUs took every completion while four idled)."""
    text = SCENARIO.replace("[[phase]]", '[[nvme]]\nname = "nvme1"\nqueues = 4\n\n[[phase]]')
    sim = SimMachine(load_scenario("s.toml", text), str(tmp_path / "tree"))
    for q, group in enumerate([[0, 1], [2, 3], [4, 5], [6, 7]], start=1):
        cpus = [sim.effective_cpu(e) for e in sim.irqs if e.queue == q and e.device.startswith("nvme")]
        assert cpus == group
        irq = next(e.irq for e in sim.irqs if e.device == "nvme1" and e.queue == q)
        assert sim.tree.read(f"proc/irq/{irq}/effective_affinity_list") == f"{group[1]}\n"
        assert sim.tree.read(f"proc/irq/{irq}/smp_affinity_list") == f"{group[0]}-{group[1]}\n"


def test_overload_drops_what_the_cpus_cannot_process_and_spreading_helps(tmp_path):
    scenario = load_scenario(library()["receive-overload"])
    sim = SimMachine(scenario, str(tmp_path / "tree"))
    phase = scenario.phases[0]
    before = sim.step(1.0, phase)  # both queues on CPU 0: one CPU at 1 us per packet
    assert sum(q.delivered for q in before) == pytest.approx(1_000_000) and all(q.irq_rate == 0 for q in before)
    snap = json.loads(cli("snapshot", "--json", root=sim.root).stdout)
    nic = scenario.nics[0].name  # ring overflows are the NIC's drops (rx_missed_errors), not the backlog's
    assert snap["netdev"][nic]["rx_drop"] == pytest.approx(1_400_000, rel=0.01)
    assert snap["netdev"][nic]["rx_packets"] == pytest.approx(1_000_000, rel=0.01)
    assert sum(r["dropped"] for r in snap["softnet"]["rows"]) == 0
    code, _, err = cli("set", "irq/101/affinity", "1", root=sim.root, state=tmp_path / "s")
    assert code == 0, err
    after = sim.step(1.0, phase)  # one queue per CPU: each still above its 1 Mpps
    assert sum(q.delivered for q in after) == pytest.approx(2_000_000)


def test_rss_table_and_key_through_the_knob_journaled_refused_beyond_the_queues_and_restored(sim, tmp_path):
    """net/eth1/rss/{indir,hkey}: the same get/set/journal/restore path as every knob; eth1 has 4 queues."""
    state = str(tmp_path / "s")
    default = ",".join(str(i % 4) for i in range(128))
    assert cli("get", "net/eth1/rss/indir", root=sim.root).stdout.strip() == default
    code, out, err = cli("set", "net/eth1/rss/indir", "equal 2", root=sim.root, state=state)
    assert code == 0 and "applied" in out and "(set in the simulated driver)" in out, out + err
    assert cli("get", "net/eth1/rss/indir", root=sim.root).stdout.strip() == ",".join(["0,1"] * 64)
    code, _, err = cli("set", "net/eth1/rss/indir", ",".join(["4"] * 128), root=sim.root, state=state)
    assert code == 1 and "queue 4 does not exist: eth1 has 4 RX queues (entries 0..3)" in err, err
    code, _, err = cli("set", "net/eth1/rss/indir", "0,1,2", root=sim.root, state=state)
    assert code == 1 and "the table has 128 entries, got 3" in err, err
    key = ":".join(["ab"] * 40)
    code, out, err = cli("set", "net/eth1/rss/hkey", key.replace(":", "").upper(), root=sim.root, state=state)
    assert code == 0 and f"-> {key}" in out, out + err
    code, _, err = cli("set", "net/eth1/rss/hkey", "abcd", root=sim.root, state=state)
    assert code == 1 and "expected a 40-byte key in hex" in err, err
    journal = json.loads((tmp_path / "s" / "journal.json").read_text())["entries"]
    assert journal["net/eth1/rss/indir"]["original"] == default
    assert journal["net/eth1/rss/hkey"]["original"] == ":".join(["6d", "5a"] * 20)
    assert cli("restore", root=sim.root, state=state).exit_code == 0
    assert cli("get", "net/eth1/rss/indir", root=sim.root).stdout.strip() == default
    assert cli("get", "net/eth1/rss/hkey", root=sim.root).stdout.strip() == ":".join(["6d", "5a"] * 20)
