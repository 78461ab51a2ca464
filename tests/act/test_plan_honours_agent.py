"""The one-shot plan and apply: changes asked for on the command line (an IRQ selector resolved as set resolves it),
and the agent's config honoured as a pass of the agent honours it (agent/critical.py): the exclusive CPUs of opted-in
Kubernetes pods and the [pin] values. On the fake host of tests/fakehost.py: ens1f0's queue IRQs 100-103 on node 1
(local CPUs 4-7, 6-7 isolated: the spread uses 4-5), virtio2 (eth0) IRQs 37-39, every IRQ's affinity 0-7.

The config is found where the agent finds it (agent/service.py DEFAULT_CONFIG, pointed at the test's file), so an
`irqtune apply --yes` typed without --config honours it as well.
"""

from __future__ import annotations

import json
from pathlib import Path

import fakehost
import pytest
from conftest import REPO, cli

from irqtune.agent import service
from irqtune.statedir import KUBE_FILE

FORWARDER = "6f4c3b4e-8f1a-4c1e-9a55-0d6e2f7a9b10"  # telco/packet-forwarder (fixtures/kubelet/pods.json): opted in
ENS1F0 = (100, 101, 102, 103)


@pytest.fixture
def root(tmp_path) -> Path:
    return fakehost.build(tmp_path / "root")


def affinity(root: Path, irq: int) -> str:
    return (root / "proc" / "irq" / str(irq) / "smp_affinity_list").read_text().strip()


def agent_config(tmp_path: Path, monkeypatch, text: str) -> Path:
    """The agent's config file, where a plain `irqtune plan` finds it."""
    path = tmp_path / "irqtune.toml"
    path.write_text(text)
    monkeypatch.setattr(service, "DEFAULT_CONFIG", str(path))
    return path


def kubelet(root: Path, entries: dict[str, dict[str, str]]) -> None:
    """The kubelet's checkpoint (static policy, format version 2) and its pod list, under the root."""
    where = root / "var" / "lib" / "kubelet"
    where.mkdir(parents=True)
    (where / "pods.json").write_bytes((REPO / "tests/fixtures/kubelet/pods.json").read_bytes())
    data = {"policyName": "static", "defaultCpuSet": "0-3,5-7", "entries": entries, "checksum": 1}
    (where / "cpu_manager_state").write_text(json.dumps(data, separators=(",", ":")))


def test_plan_takes_an_irq_selector_and_names_each_irq_it_selects(root, tmp_path):
    """`plan irq/virtio2*/affinity=0-1`: the selector resolved to IRQs 37-39 by set's resolver, each a change in
    place of the spread's, named in a note (text and --json); apply --yes writes and journals each one. Before, plan
    and apply took no KNOB=VALUE (a usage error)."""
    state = tmp_path / "state"
    code, out, err = cli("plan", "irq/virtio2*/affinity=0-1", root=root, state=state)
    assert code == 0, out + err
    for irq, action in ((37, "virtio2-config"), (38, "virtio2-input.0"), (39, "virtio2-output.0")):
        assert f"irq/{irq}/affinity: 0-7 -> 0-1    # asked: irq/virtio2*/affinity=0-1 ({action})" in out, out
        assert f"IRQ {irq} ({action}, device eth0)" in out
    code, out, _ = cli("plan", "--json", "irq/virtio2*/affinity=0-1", root=root, state=state)
    plan = json.loads(out)
    asked = {c["irq"]: (c["target"], c["device"]) for c in plan["changes"] if c["reason"].startswith("asked")}
    assert asked == {37: ("0-1", "eth0"), 38: ("0-1", "eth0"), 39: ("0-1", "eth0")}, plan
    assert len([c for c in plan["changes"] if c["knob"] == "irq/38/affinity"]) == 1  # the spread's own is replaced
    assert any(n.startswith("irq/virtio2*/affinity selects IRQ 37 (virtio2-config") for n in plan["notes"]), plan
    code, out, err = cli("apply", "--yes", "--take-over", "irq/virtio2*/affinity=0-1", root=root, state=state)
    assert code == 0, out + err
    assert [affinity(root, irq) for irq in (37, 38, 39)] == ["0-1"] * 3
    assert {f"irq/{irq}/affinity" for irq in (37, 38, 39)} <= set(json.loads((state / "journal.json").read_text())
                                                                  ["entries"])  # fmt: skip


def test_an_asked_change_breaks_the_same_rules_and_a_selector_must_match(root, tmp_path):
    """An asked move onto an isolated CPU is a violation (plan exits 1, apply writes nothing); a selector that
    matches nothing is an error naming what could match; KNOB without =VALUE is a usage error."""
    state = tmp_path / "state"
    code, out, _ = cli("plan", "--json", "irq/ens1f0-TxRx-2/affinity=6", root=root, state=state)
    assert code == 1 and json.loads(out)["violations"] == ["irq/102/affinity: CPU 6 is isolated"]
    code, _, _ = cli("apply", "--yes", "--take-over", "irq/ens1f0-TxRx-2/affinity=6", root=root, state=state)
    assert code == 1 and affinity(root, 102) == "0-7"
    code, _, err = cli("plan", "irq/eht0*/affinity=2", root=root, state=state)
    assert code == 1 and "no IRQ matches eht0*" in err and "ens1f0" in err
    assert cli("plan", "irq/eth0/affinity", root=root, state=state).exit_code == 2


def test_plan_and_apply_keep_irqs_off_an_opted_in_pods_exclusive_cpus(root, tmp_path, monkeypatch):
    """The agent's config watches the kubelet; its checkpoint gives telco/packet-forwarder (opted in) CPU 4. The
    spread of ens1f0 then uses CPU 5 only and the plan names the pod; apply --yes leaves CPU 4 free. Before, the
    one-shot commands read no kubelet: half of ens1f0's IRQs went to the pod's CPU."""
    agent_config(tmp_path, monkeypatch, '[kubernetes]\npods = "file:/var/lib/kubelet/pods.json"\n')
    kubelet(root, {FORWARDER: {"dpdk": "4"}})
    state = tmp_path / "state"
    code, out, err = cli("plan", "--json", root=root, state=state)
    assert code == 0, out + err
    plan = json.loads(out)
    targets = {c["irq"]: c["target"] for c in plan["changes"] if c["device"] == "ens1f0"}
    assert targets == dict.fromkeys(ENS1F0, "5"), plan
    held = "device IRQs kept off the CPUs opted-in pods hold alone: kubernetes pod telco/packet-forwarder"
    assert f"{held} container dpdk holds 4" in plan["notes"], plan["notes"]
    code, out, err = cli("apply", "--yes", "--take-over", root=root, state=state)
    assert code == 0, out + err
    assert [affinity(root, irq) for irq in ENS1F0] == ["5"] * 4
    code, out, _ = cli("plan", "--json", "irq/ens1f0*/affinity=4-5", root=root, state=state)
    assert code == 1 and "irq/100/affinity: CPU 4 is banned" in json.loads(out)["violations"]


def test_the_cpus_the_agent_holds_stay_held_where_the_kubelet_is_not_watched_here(root, tmp_path, monkeypatch):
    """No [kubernetes] in the config this command reads, but the agent's state file says it holds CPU 4 for a pod:
    the one-shot plan keeps off it too (the agent would move the IRQs straight back), and says where it learned
    it. A kubelet that cannot be read falls back the same way, the problem named (exit 3); one that can be read has
    the last word."""
    state = tmp_path / "state"
    state.mkdir()
    held = {"cpus": "4", "containers": [{"pod": "telco/packet-forwarder", "uid": FORWARDER, "container": "dpdk",
                                         "cpus": "4"}]}  # fmt: skip
    (state / KUBE_FILE).write_text(json.dumps(held))
    code, out, err = cli("plan", "--json", root=root, state=state)
    assert code == 0, out + err
    plan = json.loads(out)
    assert {c["target"] for c in plan["changes"] if c["device"] == "ens1f0"} == {"5"}, plan
    assert any(KUBE_FILE in n for n in plan["notes"]), plan["notes"]
    agent_config(tmp_path, monkeypatch, '[kubernetes]\npods = "file:/var/lib/kubelet/pods.json"\n')
    code, out, err = cli("plan", "--json", root=root, state=state)  # no checkpoint under the root
    assert code == 3 and "cpu_manager_state" in err
    assert {c["target"] for c in json.loads(out)["changes"] if c["device"] == "ens1f0"} == {"5"}
    kubelet(root, {})  # readable now, and the pod has ended: the kubelet's word, not the file's
    code, out, err = cli("plan", "--json", root=root, state=state)
    assert code == 0 and {c["target"] for c in json.loads(out)["changes"] if c["device"] == "ens1f0"} == {"4", "5"}


def test_a_pinned_knob_is_left_alone_and_a_plan_that_moves_it_is_refused(root, tmp_path, monkeypatch):
    """[pin] holds IRQ 102 at 0-7: the computed plan leaves it (a note says why) and apply --yes writes the other
    three; a saved plan or an asked change that moves it breaks the rules (exit 1, nothing written). Before, plan
    and apply moved it to CPU 4, undoing the pin the agent holds."""
    agent_config(tmp_path, monkeypatch, '[pin]\n"irq/102/affinity" = "0-7"\n')
    state = tmp_path / "state"
    code, out, err = cli("plan", "--json", root=root, state=state)
    assert code == 0, out + err
    plan = json.loads(out)
    assert "irq/102/affinity" not in {c["knob"] for c in plan["changes"]}, plan
    assert "irq/102/affinity: pinned at 0-7 by the config's [pin]; left alone" in plan["notes"]
    saved = tmp_path / "plan.json"
    moved = {"knob": "irq/102/affinity", "current": "0-7", "target": "4", "reason": "by hand"}
    saved.write_text(json.dumps({**plan, "changes": [*plan["changes"], moved]}))
    code, _, err = cli("apply", "--yes", "--take-over", "--plan", str(saved), root=root, state=state)
    assert code == 1 and "irq/102/affinity: pinned at 0-7 by the config's [pin]" in err
    assert [affinity(root, irq) for irq in ENS1F0] == ["0-7"] * 4
    code, out, _ = cli("plan", "--json", "irq/ens1f0*/affinity=5", root=root, state=state)
    assert code == 1 and json.loads(out)["violations"] == ["irq/102/affinity: pinned at 0-7 by the config's [pin]"]
    code, out, err = cli("apply", "--yes", "--take-over", root=root, state=state)
    assert code == 0, out + err
    assert [affinity(root, irq) for irq in ENS1F0] == ["4", "5", "0-7", "5"]
