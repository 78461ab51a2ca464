"""Issue 16.13: IRQ affinity is host-wide, so from a network namespace other than the host's (`ip netns exec`) the
commands that write refuse IRQ knobs unless --allow-host-wide; namespace-local knobs and restore are not held."""

from __future__ import annotations

import json
import os
from pathlib import Path

import fakehost
import pytest
from conftest import cli

from irqtune.host import Host

HOST_NS, OTHER_NS = "net:[4026531840]", "net:[4026532417]"


def namespaces(root: Path, mine: str, init: str = HOST_NS) -> Path:
    """The fake root's /proc/self/ns/net and /proc/1/ns/net links (what the kernel shows as their targets)."""
    for pid, target in (("self", mine), ("1", init)):
        ns = root / "proc" / pid / "ns"
        ns.mkdir(parents=True, exist_ok=True)
        os.symlink(target, ns / "net")
    return root


@pytest.fixture
def in_netns(tmp_path) -> Path:
    return namespaces(fakehost.build(tmp_path / "host"), OTHER_NS)


def affinity(root: Path, irq: int) -> str:
    return (root / "proc" / "irq" / str(irq) / "smp_affinity_list").read_text().strip()


def test_the_namespace_is_read_from_the_two_links(tmp_path):
    assert Host(str(namespaces(fakehost.build(tmp_path / "a"), OTHER_NS))).foreign_netns()
    assert not Host(str(namespaces(fakehost.build(tmp_path / "b"), HOST_NS))).foreign_netns()
    assert not Host(str(fakehost.build(tmp_path / "c"))).foreign_netns(), "unknown (no links): not refused"


@pytest.mark.parametrize("knob", ["irq/100/affinity", "irq/default/affinity"])
def test_set_refuses_irq_affinity_from_another_namespace(in_netns, tmp_path, knob):
    before = affinity(in_netns, 100)
    code, _, err = cli("set", knob, "4-5", root=in_netns, state=tmp_path / "state")
    assert code == 1 and "host-wide" in err and "--allow-host-wide" in err, err
    assert affinity(in_netns, 100) == before
    code, _, err = cli("set", "irq/100/affinity", "4-5", "--allow-host-wide", root=in_netns, state=tmp_path / "state")
    assert code == 0 and affinity(in_netns, 100) == "4-5", err
    code, _, err = cli("restore", root=in_netns, state=tmp_path / "state")
    assert code == 0 and affinity(in_netns, 100) == before, "restore puts the original back without the flag"


def test_a_namespace_local_knob_is_not_held(in_netns, tmp_path):
    rps = in_netns / "sys" / "class" / "net" / "ens1f0" / "queues" / "rx-0" / "rps_cpus"
    fakehost.write(rps, "0\n")
    code, _, err = cli("set", "net/ens1f0/rx-0/rps-cpus", "0-1", root=in_netns, state=tmp_path / "state")
    assert code == 0 and rps.read_text() == "3", err


def test_apply_refuses_a_plan_with_irq_knobs_and_writes_nothing(in_netns, tmp_path):
    code, out, _ = cli("plan", "--json", root=in_netns, state=tmp_path / "state")
    assert any(c["knob"].startswith("irq/") for c in json.loads(out)["changes"]), "the plan moves IRQs"
    before = {irq: affinity(in_netns, irq) for irq in (100, 101, 102, 103)}
    code, _, err = cli("apply", "--yes", "--take-over", root=in_netns, state=tmp_path / "state")
    assert code == 1 and "host-wide" in err and "nothing written" in err, err
    assert {irq: affinity(in_netns, irq) for irq in before} == before
    code, _, err = cli("apply", "--yes", "--take-over", "--allow-host-wide", root=in_netns, state=tmp_path / "state")
    assert code == 0 and {irq: affinity(in_netns, irq) for irq in before} != before, err


def test_the_agent_refuses_irq_moves_from_another_namespace_unless_allowed(in_netns, tmp_path):
    def irq_outcomes(*flags: str) -> set[str]:
        code, out, err = cli("run", "--mode", "tune", "--passes", "1", "--json", *flags, root=in_netns,
                             state=tmp_path / f"state{len(flags)}")  # fmt: skip
        assert code == 0, err
        return {d["outcome"] for d in json.loads(out.splitlines()[0])["decisions"] if d["knob"].startswith("irq/")}

    assert irq_outcomes() == {"refused"}
    assert "applied" in irq_outcomes("--allow-host-wide")


def test_set_help_says_irq_affinity_is_host_wide():
    code, out, _ = cli("set", "--help")
    assert code == 0 and "host-wide" in out and "--allow-host-wide" in out
