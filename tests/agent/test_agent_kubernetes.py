"""The Kubernetes CPU manager in the agent (agent/kube.py): the exclusive CPUs of pods annotated
`irq-load-balancing.crio.io: "disable"` are critical while the kubelet's checkpoint gives them to the pod. Driven on
a simulated host whose root holds the kubelet's files (as a DaemonSet's --root /host does), through the agent's
own write path and journal.

The checkpoints are written by hand in the kubelet's format, version 2 (pkg/kubelet/cm/cpumanager/state/
checkpoint.go, CPUManagerCheckpointV2: {"policyName", "defaultCpuSet", "entries": {POD_UID: {CONTAINER: CPUSET}},
"checksum"}), one line as the kubelet writes it; the pod list is tests/fixtures/kubelet/pods.json
(`kubectl get pods -o json`): packet-forwarder opts in ("disable"), postgres-0 says "true" (not CRI-O's value),
web says nothing.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from conftest import REPO, cli

from irqtune.act.journal import Journal
from irqtune.agent.loop import Agent, PassReport
from irqtune.config import Config, ConfigError, Kubernetes, Limits, load_config
from irqtune.host import Host
from irqtune.measure.kubelet import ApiPods, pod_source
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import load_scenario
from irqtune.statedir import KUBE_FILE, boot_id

FORWARDER = "6f4c3b4e-8f1a-4c1e-9a55-0d6e2f7a9b10"  # telco/packet-forwarder: opted in
POSTGRES = "0b1f9e2c-3d4a-4b5c-8d6e-7f8091a2b3c4"  # db/postgres-0: "true", not "disable"
EIGHT_QUEUES = """
[host]
cpus = 8

[[nic]]
name = "eth1"
queues = 8
cpus = "0-7"

[[phase]]
name = "steady"
seconds = 60
nic = "eth1"
rate_pps = 200000
"""


def checkpoint(entries: dict[str, dict[str, str]], default: str = "0-1,4-5,7") -> str:
    """A static-policy checkpoint as the kubelet writes it (json.Marshal: one line, no spaces)."""
    data = {"policyName": "static", "defaultCpuSet": default, "entries": entries, "checksum": 2875437133}
    return json.dumps(data, separators=(",", ":"))


class Node:
    """A simulated node: eth1's eight queue IRQs one per CPU, the kubelet's files under its root, the agent in tune
    mode reading the pod list from a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.sim = SimMachine(load_scenario("s.toml", EIGHT_QUEUES), str(tmp_path / "tree"), seed=2)
        self.kubelet = Path(self.sim.root) / "var/lib/kubelet"
        self.kubelet.mkdir(parents=True)
        (self.kubelet / "pods.json").write_bytes((REPO / "tests/fixtures/kubelet/pods.json").read_bytes())
        self.write(checkpoint({}, "0-7"))
        host = SimulatedKernel.for_root(self.sim.root)
        self.state = tmp_path / "state"
        self.journal = Journal.open(str(self.state), boot_id(host))
        config = Config(mode="tune", interval=1.0, limits=Limits(dwell=0),
                        kubernetes=Kubernetes(pods="file:/var/lib/kubelet/pods.json"))  # fmt: skip
        self.agent = Agent(host, config, str(self.state), clock=lambda: self.sim.clock, journal=self.journal)

    def write(self, text: str) -> None:
        (self.kubelet / "cpu_manager_state").write_text(text)

    def passes(self, n: int) -> list[PassReport]:
        reports = []
        for _ in range(n):
            self.sim.step(1.0, self.sim.sc.phases[0])
            reports.append(self.agent.run_pass())
        self.sim.step(1.0, self.sim.sc.phases[0])  # what was written is where the IRQs go now
        return reports

    def cpus(self) -> list[int]:
        return sorted(self.sim.effective_cpu(e) for e in self.sim.irqs)


def moves(report: PassReport) -> dict[str, tuple[str, str, str]]:
    return {d.knob: (d.current, d.target, d.outcome) for d in report.decisions if d.knob.startswith("irq/")}


def test_a_pod_that_starts_gets_its_cpus_free_of_irqs_and_gives_them_back_when_it_ends(tmp_path, caplog):
    """The node runs with eth1 on every CPU; then the kubelet gives packet-forwarder CPUs 2-3 and postgres-0
    CPU 6. In that pass the two IRQs on 2-3 leave (violation fixes, journaled); postgres-0's CPU 6 keeps its IRQ
    (not opted in). When the pod ends (its entry leaves the checkpoint) the placement is recomputed and CPUs 2-3
    take IRQs again, journaled as well. Before this change nothing read the kubelet: no IRQ moved."""
    node = Node(tmp_path)
    node.passes(2)
    assert node.cpus() == list(range(8))
    node.write(checkpoint({FORWARDER: {"dpdk": "2-3"}, POSTGRES: {"db": "6"}}))
    with caplog.at_level(logging.INFO, logger="irqtune.agent"):
        (started,) = node.passes(1)
    off = {knob: move for knob, move in moves(started).items() if move[0] in ("2", "3")}
    assert len(off) == 2 and all(outcome == "applied" for _, _, outcome in off.values()), moves(started)
    why = "violation: CPU {} is banned (kubernetes pod telco/packet-forwarder container dpdk holds 2-3); spread"
    assert all(d.reason.startswith(why.format(d.current)) for d in started.decisions if d.knob in off), [
        d.reason for d in started.decisions if d.knob in off
    ]
    assert not {2, 3} & set(node.cpus()) and 6 in node.cpus(), node.cpus()
    assert set(off) <= set(node.journal.entries), sorted(node.journal.entries)
    assert "pod telco/packet-forwarder container dpdk holds CPUs 2-3 alone" in caplog.text
    assert "postgres" not in caplog.text
    held = json.loads((node.state / KUBE_FILE).read_text())
    assert held["cpus"] == "2-3" and [c["pod"] for c in held["containers"]] == ["telco/packet-forwarder"]
    shown = cli("status", "--interval", "0", root=node.sim.root, state=node.state).stdout
    assert "KUBERNETES: PODS' EXCLUSIVE CPUS HELD FREE OF DEVICE IRQS" in shown, shown
    assert re.search(r"^2-3 +telco/packet-forwarder +dpdk$", shown, re.M), shown

    node.write(checkpoint({POSTGRES: {"db": "6"}}, "0-5,7"))
    with caplog.at_level(logging.INFO, logger="irqtune.agent"):
        (ended,) = node.passes(1)
    back = [
        knob for knob, (_, target, outcome) in moves(ended).items() if target in ("2", "3") and outcome == "applied"
    ]
    assert len(back) == 2 and {2, 3} <= set(node.cpus()), (moves(ended), node.cpus())
    assert set(back) <= set(node.journal.entries)
    assert "packet-forwarder container dpdk no longer holds CPUs 2-3" in caplog.text
    assert json.loads((node.state / KUBE_FILE).read_text())["cpus"] == ""


def test_a_malformed_checkpoint_is_one_problem_and_the_held_cpus_stay_held(tmp_path, caplog):
    """A checkpoint cut short (the kubelet mid-write, a disk error) is one FILE:LINE problem in each pass's report,
    logged once; the agent goes on, and CPUs 2-3 stay free of IRQs (a read error must not put IRQs onto a running
    pod's CPUs)."""
    node = Node(tmp_path)
    node.write(checkpoint({FORWARDER: {"dpdk": "2-3"}}))
    node.passes(1)
    assert not {2, 3} & set(node.cpus())
    node.write('{"policyName":"static","defaultCpuSet":"0-1,4-7","entries":{"6f4c')
    with caplog.at_level(logging.WARNING, logger="irqtune.agent"):
        reports = node.passes(3)
    for report in reports:
        (problem,) = report.problems
        assert str(problem).startswith("/var/lib/kubelet/cpu_manager_state:1:"), str(problem)
    assert caplog.text.count("cpu_manager_state:1:") == 1, caplog.text
    assert not {2, 3} & set(node.cpus()) and all(r.number for r in reports)


def test_without_a_kubernetes_table_the_checkpoint_is_not_read_and_a_reload_turns_it_on_and_off(tmp_path):
    """pods = "" (the default): the kubelet's files are ignored, every CPU keeps its IRQ. A reload that sets
    [kubernetes] holds the pod's CPUs in its first pass; one that removes it gives them back."""
    node = Node(tmp_path)
    node.agent.config = Config(mode="tune", interval=1.0, limits=Limits(dwell=0))
    node.write(checkpoint({FORWARDER: {"dpdk": "2-3"}}))
    (report,) = node.passes(1)
    assert node.cpus() == list(range(8)) and report.problems == []
    assert not (node.state / KUBE_FILE).exists()

    node.agent.config = Config(mode="tune", interval=1.0, limits=Limits(dwell=0),
                               kubernetes=Kubernetes(pods="file:/var/lib/kubelet/pods.json"))  # fmt: skip
    node.passes(1)  # a reload turns it on: held at once, and shown
    assert not {2, 3} & set(node.cpus()) and (node.state / KUBE_FILE).exists()
    node.agent.config = Config(mode="tune", interval=1.0, limits=Limits(dwell=0))
    node.passes(1)  # and off again: given back, and status no longer shows a pod no agent holds
    assert {2, 3} <= set(node.cpus()) and not (node.state / KUBE_FILE).exists()


def test_the_kubernetes_table_is_checked_with_its_line():
    config = load_config("c.toml", '[kubernetes]\npods = "file:/run/pods.json"\n')
    assert config.kubernetes.pods == "file:/run/pods.json"
    assert config.kubernetes.cpu_manager_state == "/var/lib/kubelet/cpu_manager_state"
    assert (
        config.kubernetes.annotation == "irq-load-balancing.crio.io" and load_config("d.toml", "").kubernetes.pods == ""
    )
    for text, where in [('pods = "kubelet"', "c.toml:2: kubernetes.pods"),
                        ('pods = "file:"', "c.toml:2: kubernetes.pods"),
                        ('pods = "file:pods.json"', "c.toml:2: kubernetes.pods"),
                        ('cpu_manager_state = "state"', "c.toml:2: kubernetes.cpu_manager_state"),
                        ('pod = "api"', "c.toml:2: kubernetes.pod")]:  # fmt: skip
        with pytest.raises(ConfigError) as err:
            load_config("c.toml", f"[kubernetes]\n{text}\n")
        assert str(err.value).startswith(where), str(err.value)


def test_api_takes_the_node_from_the_downward_apis_variable(tmp_path):
    source = pod_source(Host(str(tmp_path)), "api", {"NODE_NAME": "worker-7"})
    assert isinstance(source, ApiPods) and source.node == "worker-7"
    assert pod_source(Host(str(tmp_path)), "") is None


class Counting:
    """A pod source that counts how often it is asked."""

    def __init__(self, inner) -> None:
        self.inner, self.asked = inner, 0

    def pods(self):
        self.asked += 1
        return self.inner.pods()


def test_the_pods_are_asked_for_only_when_the_checkpoints_pods_change(tmp_path):
    """Five passes over one checkpoint ask the API server (here the file) once; a pod starting asks again, and so
    does one ending. Before, every pass listed the node's pods: at 10 s passes, 0.1 requests/s per node."""
    node = Node(tmp_path)
    counted = node.agent.kube.source = Counting(node.agent.kube.source)
    node.write(checkpoint({FORWARDER: {"dpdk": "2-3"}}))
    node.passes(5)
    assert counted.asked == 1 and not {2, 3} & set(node.cpus())
    node.write(checkpoint({FORWARDER: {"dpdk": "2-3"}, POSTGRES: {"db": "6"}}))
    node.passes(2)
    node.write(checkpoint({POSTGRES: {"db": "6"}}))
    node.passes(2)
    assert counted.asked == 3 and {2, 3} <= set(node.cpus())
