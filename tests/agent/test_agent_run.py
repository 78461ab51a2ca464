"""`irqtune run`: observe on this host writes nothing; tune on a simulated host applies, rolls back, restores;
the systemd notify protocol against a real datagram socket; SIGTERM, SIGHUP, SIGKILL and the lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import fakehost
import pytest
from conftest import REPO, cli, require
from netns import can_make_namespaces, veth_pair

from irqtune.act.journal import Journal
from irqtune.agent.loop import Agent
from irqtune.config import Config, Limits, load_config
from irqtune.plan import Change
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import load_scenario
from irqtune.statedir import boot_id

EXE = [sys.executable, "-m", "irqtune"]

SCENARIO = """
[host]
cpus = 4

[[nic]]
name = "eth1"
queues = 2
rx_usecs = 64
rx_frames = 256

[[phase]]
seconds = 60
nic = "eth1"
rate_pps = 1400000
"""


def read(root: str, rel: str) -> str:
    return Path(root, rel).read_text().strip()


def usecs(root: str) -> int:
    return json.loads(read(root, "sys/class/net/eth1/irqtune-sim/ethtool.json"))["coalesce"]["rx_usecs"]


def affinities() -> dict[str, str]:
    out = {}
    for irq in os.listdir("/proc/irq"):
        if irq.isdigit():
            try:
                with open(f"/proc/irq/{irq}/smp_affinity_list") as f:
                    out[irq] = f.read()
            except OSError:  # the IRQ went away during the read: nothing to compare
                pass
    return out


@pytest.mark.slow
def test_observe_on_this_host_recommends_and_writes_nothing(tmp_path):
    before = affinities()
    code, out, err = cli("run", "--passes", "3", "--interval", "0.5", "--json", state=tmp_path)
    assert code == 0, err
    reports = [json.loads(line) for line in out.splitlines()]
    assert [r["pass"] for r in reports] == [1, 2, 3]
    assert all(d["outcome"] == "recommended" for r in reports for d in r["decisions"])
    assert affinities() == before
    assert not (tmp_path / "journal.json").exists() or json.loads((tmp_path / "journal.json").read_text()).get(
        "entries", []) == []  # fmt: skip


@pytest.fixture
def sim(tmp_path) -> SimMachine:
    return SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=2)


def step_in_background(sim: SimMachine, stop_after: float) -> subprocess.Popen:
    """Keep the simulated host moving in step with the wall clock (0.2 s of simulated time every 0.2 s) while an agent
    runs on it: the agent's windows are wall time, so it measures the scenario's rates (a faster clock showed it 5x
    the packets, a load no CPU could take)."""
    code = ("import sys, time\nfrom irqtune.sim.machine import SimMachine\n"
            "from irqtune.sim.scenario import load_scenario\n"
            f"sim = SimMachine(load_scenario('s.toml', {SCENARIO!r}), {sim.root!r}, seed=2)\n"
            f"end = time.time() + {stop_after}\n"
            "while time.time() < end:\n    sim.step(0.2, sim.sc.phases[0]); time.sleep(0.2)\n")  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", code])


@pytest.mark.slow
def test_tune_on_a_simulated_host_then_sigterm_restores(sim, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('mode = "tune"\ninterval = 0.5\nrestore_on_exit = true\n[limits]\ndwell = 0\n')
    mover = step_in_background(sim, 8)
    state = tmp_path / "state"
    agent = subprocess.Popen([*EXE, "--root", sim.root, "--state-dir", str(state), "run", "--config", str(config)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.time() + 20
        while time.time() < deadline and usecs(sim.root) == 64:
            time.sleep(0.2)
        assert usecs(sim.root) != 64  # it tuned: 700k pps per queue
        agent.send_signal(signal.SIGTERM)
        out, err = agent.communicate(timeout=20)
    finally:
        agent.kill()
        mover.kill()
    assert agent.returncode == 0, err
    assert "applied" in out and "restore:" in err
    assert usecs(sim.root) == 64  # put back on exit


@pytest.mark.slow
def test_sigkill_then_restore_leaves_every_knob_at_its_original(sim, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('mode = "tune"\ninterval = 0.5\n[limits]\ndwell = 0\n')
    mover = step_in_background(sim, 6)
    state = tmp_path / "state"
    ethtool = "sys/class/net/eth1/irqtune-sim/ethtool.json"
    original = read(sim.root, ethtool)
    affinity = {i: read(sim.root, f"proc/irq/{i}/smp_affinity_list") for i in (100, 101)}
    agent = subprocess.Popen([*EXE, "--root", sim.root, "--state-dir", str(state), "run", "--config", str(config)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for n, line in enumerate(agent.stdout):  # kill it right after its first applied change, mid-run
            if line.lstrip().startswith("applied:") or n > 200:  # (a pass prints a line every 0.5 s)
                break
        agent.kill()  # SIGKILL: no cleanup at all
        agent.wait(timeout=10)
    finally:
        mover.kill()
        mover.wait()
    now = {i: read(sim.root, f"proc/irq/{i}/smp_affinity_list") for i in (100, 101)}
    changed = read(sim.root, ethtool) != original or now != affinity
    assert changed  # the kill came after at least one change
    code, out, err = cli("restore", root=sim.root, state=state)
    assert code == 0, out + err
    assert json.loads(read(sim.root, ethtool)) == json.loads(original)
    assert {i: read(sim.root, f"proc/irq/{i}/smp_affinity_list") for i in (100, 101)} == affinity


def test_a_change_that_hurts_is_rolled_back(sim, tmp_path):
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    agent = Agent(
        host, Config(mode="tune", interval=1.0, limits=Limits(dwell=0)), state, clock=lambda: sim.clock, journal=journal
    )
    try:
        sim.step(1.0, sim.sc.phases[0])
        agent.run_pass()  # baseline: placement decided, no rates yet
        for _ in range(2):
            sim.step(1.0, sim.sc.phases[0])
            agent.run_pass()
        moved = sim.effective_cpu(sim.irqs[1])
        bad = Change("irq/101/affinity", str(moved), str(sim.effective_cpu(sim.irqs[0])), "test: both queues on one "
                       "CPU, 1.4 Mpps where it can take about 1.2", "eth1")  # fmt: skip
        agent._apply(bad, sim.clock, agent.rates)  # the agent's own write path
        sim.step(1.0, sim.sc.phases[0])
        assert {q.cpu for q in sim.step(1.0, sim.sc.phases[0])} == {int(bad.target)}
        report = agent.run_pass()
    finally:
        journal.close()
    rolled = [d for d in report.rollbacks if d.knob == "irq/101/affinity"]
    assert len(rolled) == 1 and rolled[0].outcome == "rolled-back" and rolled[0].target == str(moved)
    assert "drops+squeezes 0/s" in rolled[0].reason
    sim.step(1.0, sim.sc.phases[0])
    assert sim.effective_cpu(sim.irqs[1]) == moved
    assert "irq/101/affinity" in agent.backoff


@pytest.mark.slow
def test_notify_protocol_over_a_real_socket_and_the_lock(tmp_path):
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(15)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
    state = tmp_path / "state"
    agent = subprocess.Popen([*EXE, "--state-dir", str(state), "run", "--interval", "0.5"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        messages = []
        while not any("READY=1" in m for m in messages):
            messages.append(listener.recv(4096).decode())
        second = subprocess.run([*EXE, "--state-dir", str(state), "run", "--passes", "1"], capture_output=True,
                                text=True, timeout=30)  # fmt: skip
        assert second.returncode == 1 and "another irqtune run holds" in second.stderr
        agent.send_signal(signal.SIGHUP)
        while not any("RELOADING=1" in m for m in messages):
            messages.append(listener.recv(4096).decode())
        pings = sum("WATCHDOG=1" in m for m in messages)
        while sum("WATCHDOG=1" in m for m in messages) < pings + 2:
            messages.append(listener.recv(4096).decode())
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
        while not any("STOPPING=1" in m for m in messages):
            messages.append(listener.recv(4096).decode())
    finally:
        agent.kill()
        listener.close()
    assert agent.returncode == 0
    ready = next(m for m in messages if "READY=1" in m)
    assert "STATUS=pass 1 (observe)" in ready and f"MAINPID={agent.pid}" in ready
    assert any(m.startswith("STATUS=pass 2") for m in messages)


def test_run_refuses_a_bad_config_with_its_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('mode = "tune"\n[limits]\ndwel = 3\n')
    code, _, err = cli("run", "--config", str(config), "--passes", "1", state=tmp_path / "s")
    assert code == 1 and "c.toml:3: limits.dwel: unknown key" in err


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.netns
def test_a_link_flap_starts_a_pass_at_once(tmp_path):
    """In a throwaway namespace: the agent sleeps 60 s between passes, but a link going down wakes it."""
    require(can_make_namespaces() is None, can_make_namespaces() or "")
    with veth_pair() as pair:
        agent = subprocess.Popen(["ip", "netns", "exec", pair.receiver_ns, *EXE, "--state-dir", str(tmp_path), "run",
                                  "--interval", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)  # fmt: skip
        try:
            errors: list[str] = []
            lines: list[str] = []  # stdout: each pass's summary line, then its findings and decisions indented
            threading.Thread(target=lambda: errors.extend(agent.stderr), daemon=True).start()
            threading.Thread(target=lambda: lines.extend(agent.stdout), daemon=True).start()
            first = time.monotonic()
            while not lines and time.monotonic() - first < 30:
                time.sleep(0.1)
            assert lines and lines[0].startswith("pass 1 (observe)"), lines
            time.sleep(1.0)  # events from the namespace's setup, if any, are handled by now
            start = time.monotonic()
            subprocess.run(["ip", "-n", pair.receiver_ns, "link", "set", pair.receiver, "down"], check=True)
            while f"'{pair.receiver}' down" not in "".join(errors) and time.monotonic() - start < 15:
                time.sleep(0.1)
            took = time.monotonic() - start
            while not any(line.startswith("pass 2 ") for line in lines) and time.monotonic() - start < 15:
                time.sleep(0.1)  # the pass the event started
            passes = next((line for line in lines if line.startswith("pass 2 ")), "")
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=15)
        finally:
            agent.kill()
    assert any(f"event: '{pair.receiver}' down" in line for line in errors) and took < 15  # not the 60 s interval
    assert passes.startswith("pass ") and agent.returncode == 0


STORM = """
[host]
cpus = 4

[[nic]]
name = "eth2"
queues = 1
cpus = "1"
napi = false

[[phase]]
seconds = 60
nic = "eth2"
rate_pps = 300000
"""


def test_storm_guard_sends_a_storming_irq_to_the_sink(tmp_path):
    """A NIC without NAPI takes an interrupt per packet (300k/s, above the storm threshold): with an
    irq_sink configured, the agent moves it there; with the device pinned by the config, it does not."""
    for pinned in (False, True):
        sim = SimMachine(load_scenario("s.toml", STORM), str(tmp_path / f"tree{pinned}"), seed=2)
        host = SimulatedKernel.for_root(sim.root)
        state = str(tmp_path / f"state{pinned}")
        text = '[cpus]\nirq_sink = "3"\n' + ('[[device]]\nname = "eth2"\ncpus = "1"\n' if pinned else "")
        config = load_config("c.toml", text)
        config.mode, config.limits.dwell = "tune", 0
        journal = Journal.open(state, boot_id(host))
        agent = Agent(host, config, state, clock=lambda sim=sim: sim.clock, journal=journal)
        try:
            for _ in range(4):
                sim.step(1.0, sim.sc.phases[0])
                report = agent.run_pass()
        finally:
            journal.close()
        sim.step(1.0, sim.sc.phases[0])
        moved = [d for d in report.decisions if d.reason.startswith("storm guard")]
        assert any(f["code"] == "irq-storm" for f in report.findings)
        if pinned:
            assert sim.effective_cpu(sim.irqs[0]) == 1 and not moved
        else:
            assert sim.effective_cpu(sim.irqs[0]) == 3


def test_colocation_and_steering_from_the_config(sim, tmp_path):
    """A process pinned to CPU 3 (a fake /proc entry in the simulated tree): the agent puts eth1's queue IRQs
    on CPU 3, XPS to CPU 3 and RPS to the CPUs that take no queue IRQ, all through the journal."""
    for tid in (4242, 4243):
        fakehost.task(Path(sim.root) / "proc", 4242, tid, "memcached", 3, "3")
    config = load_config("c.toml", 'mode = "tune"\n[[device]]\nname = "eth1"\ncolocate = "memcached"\nsteer = true\n')
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    try:
        sim.step(1.0, sim.sc.phases[0])
        report = Agent(host, config, state, clock=lambda: sim.clock, journal=journal).run_pass()
    finally:
        journal.close()
    applied = {d.knob: d.target for d in report.decisions if d.outcome == "applied"}
    assert applied["irq/100/affinity"] == applied["irq/101/affinity"] == "3"
    assert applied["net/eth1/tx-0/xps-cpus"] == applied["net/eth1/tx-1/xps-cpus"] == "3"
    assert applied["net/eth1/rx-0/rps-cpus"] == "0-2"
    assert read(sim.root, "sys/class/net/eth1/queues/tx-1/xps_cpus") == "8"
    assert all("memcached" in d.reason for d in report.decisions if d.knob.startswith("irq/"))
    code, out, err = cli("restore", root=sim.root, state=state)
    assert code == 0, out + err
    assert read(sim.root, "proc/irq/100/smp_affinity_list") == "0-3"
    assert read(sim.root, "sys/class/net/eth1/queues/rx-0/rps_cpus") in ("0", "00")


def test_each_pass_carries_advice_from_proc_rates(tmp_path):
    """TLB shootdowns hitting isolated CPUs (simulated, no probes): the agent's findings carry the advice."""
    spec = load_scenario("t.toml", (REPO / "irqtune/sim/scenarios/tlb-storm.toml").read_text()
                         .replace("cpus = 8\n", 'cpus = 8\nisolated = "6-7"\n', 1))  # fmt: skip
    sim = SimMachine(spec, str(tmp_path / "tree"), seed=1)
    host = SimulatedKernel.for_root(sim.root)
    agent = Agent(host, Config(), str(tmp_path / "state"), clock=lambda: sim.clock)
    for _ in range(2):
        sim.step(1.0, spec.phases[1])
        report = agent.run_pass()
    hits = [f for f in report.findings if f["code"] == "tlb-on-isolated"]
    assert {f["cpu"] for f in hits} == {6, 7} and all("Advice" in f["message"] for f in hits)
    assert not report.decisions or all(d.outcome == "recommended" for d in report.decisions)  # observe


NAPI_STORM = STORM.replace("napi = false", "napi = true\nrx_usecs = 0\nrx_frames = 1")


def test_storm_guard_raises_coalescing_unless_the_goal_is_latency(tmp_path):
    """A NAPI NIC at rx-usecs 0 storms at 300k packets/s: the guard raises its coalescing and the storm ends;
    a device whose goal is latency keeps its setting (it is not low-criticality)."""
    for goal in ("balanced", "latency"):
        sim = SimMachine(load_scenario("s.toml", NAPI_STORM), str(tmp_path / goal), seed=2)
        host = SimulatedKernel.for_root(sim.root)
        state = str(tmp_path / f"state-{goal}")
        config = load_config("c.toml", f'mode = "tune"\n[[device]]\nname = "eth2"\ngoal = "{goal}"\n')
        journal = Journal.open(state, boot_id(host))
        agent = Agent(host, config, state, clock=lambda sim=sim: sim.clock, journal=journal)
        reports = []
        try:
            for _ in range(4):
                queues = sim.step(1.0, sim.sc.phases[0])
                reports.append(agent.run_pass())
        finally:
            journal.close()
        stormed = any(f["code"] == "irq-storm" for f in reports[1].findings)
        raised = [d for r in reports for d in r.decisions if d.reason.startswith("storm guard") and
                  d.knob.endswith("rx-usecs")]  # fmt: skip
        assert stormed, reports[1].findings
        if goal == "latency":
            assert not raised
        else:
            assert raised[0].target == "64" and raised[0].outcome == "applied"
            assert sum(q.irq_rate for q in queues) < 100_000  # the storm is over
            assert not any(f["code"] == "irq-storm" for f in reports[-1].findings)


def test_restore_only_if_the_config_says_so(sim, tmp_path):
    """The service's ExecStopPost: `restore --only-if-config FILE` restores when FILE has restore_on_exit = true,
    keeps the journal when false, and restores nothing (exit 1) when FILE is broken."""
    state = str(tmp_path / "state")
    original = read(sim.root, "proc/irq/100/smp_affinity_list")
    code, out, err = cli("set", "irq/100/affinity", "1", root=sim.root, state=state)
    assert code == 0, out + err
    keep, restore, broken = tmp_path / "keep.toml", tmp_path / "restore.toml", tmp_path / "broken.toml"
    keep.write_text("restore_on_exit = false\n")
    restore.write_text("restore_on_exit = true\n")
    broken.write_text("restore_on_exit = maybe\n")
    code, out, err = cli("restore", "--only-if-config", str(keep), root=sim.root, state=state)
    assert code == 0 and "journal kept" in err and read(sim.root, "proc/irq/100/smp_affinity_list") == "1"
    code, out, err = cli("restore", "--only-if-config", str(broken), root=sim.root, state=state)
    assert (
        code == 1
        and "broken.toml:1:19: Invalid value" in err
        and read(sim.root, "proc/irq/100/smp_affinity_list") == "1"
    )
    code, out, err = cli("restore", "--only-if-config", str(restore), root=sim.root, state=state)
    assert code == 0, out + err
    assert read(sim.root, "proc/irq/100/smp_affinity_list") == original


@pytest.mark.slow
def test_the_agent_serves_its_metrics(sim, tmp_path):
    """`irqtune run --listen`: the exporter's metrics plus the agent's own, on a simulated host in tune mode."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    config = tmp_path / "c.toml"
    config.write_text('mode = "tune"\ninterval = 0.5\n[limits]\ndwell = 0\n')
    mover = step_in_background(sim, 8)
    agent = subprocess.Popen([*EXE, "--root", sim.root, "--state-dir", str(tmp_path / "state"), "run", "--config",
                              str(config), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        url = agent.stderr.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:"), url
        deadline, samples = time.time() + 20, {}
        while time.time() < deadline:
            text = urlopen(url, timeout=5).read().decode()
            samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip
            applied = [v for (name, labels), v in samples.items()
                       if name == "irqtune_agent_changes_total" and ("outcome", "applied") in labels]  # fmt: skip
            knobs = {dict(labels)["knob"]: v for (name, labels), v in samples.items() if name == "irqtune_knob_value"}
            if applied and samples.get(("irqtune_agent_journal_entries", ())) and "net/eth1/coalesce/rx-usecs" in knobs:
                break
            time.sleep(0.5)
        agent.send_signal(signal.SIGTERM)
        agent.communicate(timeout=20)
    finally:
        agent.kill()
        mover.kill()
    assert samples[("irqtune_agent_passes_total", ())] >= 1
    assert sum(applied) >= 1 and samples[("irqtune_agent_journal_entries", ())] >= 1
    assert samples[("irqtune_agent_drifted_knobs", ())] == 0  # nothing else touched what it wrote
    assert "net/eth1/coalesce/rx-usecs" in knobs
    assert any(name == "irqtune_interrupts_total" for name, _ in samples)  # what irqtune export serves too
    assert agent.returncode == 0


@pytest.mark.slow
def test_sighup_from_observe_to_tune_starts_tuning(sim, tmp_path):
    """An operator flips mode = "tune" and reloads: the agent opens the journal and applies from then on."""
    config = tmp_path / "c.toml"
    config.write_text('mode = "observe"\ninterval = 0.5\nrestore_on_exit = false\n[limits]\ndwell = 0\n')
    mover = step_in_background(sim, 10)
    state = tmp_path / "state"
    agent = subprocess.Popen([*EXE, "--root", sim.root, "--state-dir", str(state), "run", "--config", str(config)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []
    try:
        for line in agent.stdout:
            lines.append(line)
            if line.startswith("pass 2 "):
                break
        assert not (state / "journal.json").exists()
        config.write_text(config.read_text().replace("observe", "tune"))
        agent.send_signal(signal.SIGHUP)
        deadline = time.time() + 15
        for line in agent.stdout:
            lines.append(line)
            if line.lstrip().startswith("applied:") or time.time() > deadline:
                break
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=20)
    finally:
        agent.kill()
        mover.kill()
    assert "(tune mode)" in err
    assert any(line.lstrip().startswith("applied:") for line in lines), "".join(lines[-5:])
    assert json.loads((state / "journal.json").read_text())["entries"]


def test_a_value_the_driver_rounds_is_not_written_again(tmp_path):
    """A device that keeps rx-usecs in steps of 50 µs (as ENA is seen to) reads back 50 for 32: the agent
    remembers that, and when it wants 32 again it leaves the knob alone instead of rewriting it every pass."""
    scenario = load_scenario("s.toml", SCENARIO.replace("rx_frames = 256", "rx_frames = 256\nusecs_quantum = 50"))
    sim = SimMachine(scenario, str(tmp_path / "tree"), seed=2)
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    config = Config(mode="tune", interval=1.0, limits=Limits(dwell=0))
    agent = Agent(host, config, state, clock=lambda: sim.clock, journal=journal)
    agent.placed = True
    want = [Change("net/eth1/coalesce/rx-usecs", "", "32", "test: 32 µs", "eth1")]
    agent.proposer.propose = lambda *args: ([Change(d.knob, usecs(sim.root).__str__(), d.target, d.reason, d.device)
                                             for d in want], [])  # fmt: skip
    try:
        outcomes = []
        for _ in range(4):
            sim.step(1.0, sim.sc.phases[0])
            outcomes.append([(d.outcome, d.note) for d in agent.run_pass().decisions])
    finally:
        journal.close()
    assert outcomes[0] == [] and outcomes[1] == [("applied", "the device holds 50 for 32")], outcomes  # no rates yet
    assert usecs(sim.root) == 50  # written once: the device rounded 32 to 50
    assert outcomes[2:] == [[("unchanged", "the driver rounds 32 to 50")]] * 2


def test_drift_is_counted_for_the_exporter(sim, tmp_path):
    """A knob the agent set and something else changed since counts in irqtune_agent_drifted_knobs."""
    from irqtune.agent.service import record
    from irqtune.export import AgentStats

    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    agent = Agent(host, Config(mode="tune", interval=1.0), state, clock=lambda: sim.clock, journal=journal)
    stats = AgentStats()
    try:
        sim.step(1.0, sim.sc.phases[0])
        report = agent.run_pass()  # placement: eth1's queue IRQs spread
        record(stats, report, agent, journal, 0.1)
        assert stats.journal_entries >= 1 and stats.drifted_knobs == 0
        changed = next(iter(journal.entries))
        irq = changed.split("/")[1]
        Path(sim.root, f"proc/irq/{irq}/smp_affinity_list").write_text("0-3\n")  # irqbalance, say
        record(stats, report, agent, journal, 0.1)
    finally:
        journal.close()
    assert stats.drifted_knobs == 1


def test_placement_held_by_max_changes_is_finished_in_later_passes(sim, tmp_path):
    """Two queue IRQs to place with max_changes = 1: one per pass, until both are where the plan wants them."""
    host = SimulatedKernel.for_root(sim.root)
    state = str(tmp_path / "state")
    journal = Journal.open(state, boot_id(host))
    config = Config(mode="tune", interval=1.0, limits=Limits(max_changes=1, dwell=0))
    agent = Agent(host, config, state, clock=lambda: sim.clock, journal=journal)
    placed = []
    try:
        for _ in range(3):
            sim.step(1.0, sim.sc.phases[0])
            report = agent.run_pass()
            placed += [d.knob for d in report.decisions if d.knob.startswith("irq/") and d.outcome == "applied"]
    finally:
        journal.close()
    assert sorted(placed) == ["irq/100/affinity", "irq/101/affinity"] and agent.placed


@pytest.mark.slow
def test_observe_text_prints_findings_and_recommends_every_pass(sim, tmp_path):
    """Text mode (what the service journal keeps): each finding on its own line with its numbers, warnings every
    pass and info once; placement is recommended on every pass while it still differs, not only on pass 1."""
    code, out, err = cli("run", "--passes", "3", "--interval", "0.5", root=sim.root, state=tmp_path / "state")
    assert code == 0, err
    passes = out.split("pass ")[1:]
    assert len(passes) == 3, out
    for text in passes:
        assert "  warning nic-queues-one-cpu: all 2 queue IRQs of eth1" in text, text
        assert "  recommended: irq/" in text, text  # the spread is recommended again: nothing was written
    info = [line for line in out.splitlines() if line.startswith("  info ")]
    assert info and len(info) == len(set(info)), info  # info once, not every pass
