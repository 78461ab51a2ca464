"""plan and apply: the rss-ladder oracle, dry runs, rules, rivals, and SIGKILL at any point."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import fakehost
import pytest
from conftest import cli, fixture_text

from irqtune.plan import Change, Plan, Rules, check


def nic_host(root: Path, interrupts: str, nic: str, node_cpus: dict[int, str], local: str, node: int) -> Path:
    """A fake host around a real /proc/interrupts: topology, one NIC's PCI function and IRQ files."""
    proc, sys_ = root / "proc", root / "sys"
    fakehost.write(proc / "interrupts", interrupts)
    fakehost.write(proc / "sys" / "kernel" / "random" / "boot_id", "boot-nic\n")
    online = max(int(c.split("-")[-1]) for c in node_cpus.values())
    fakehost.write(sys_ / "devices" / "system" / "cpu" / "online", f"0-{online}\n")
    for n, cpus in node_cpus.items():
        fakehost.write(sys_ / "devices" / "system" / "node" / f"node{n}" / "cpulist", cpus + "\n")
    irqs = []
    for line in interrupts.splitlines():
        key, _, rest = line.partition(":")
        if key.strip().isdigit():
            irq = int(key)
            fakehost.write(proc / "irq" / str(irq) / "smp_affinity_list", f"0-{online}\n")
            fakehost.write(proc / "irq" / str(irq) / "effective_affinity_list", "0\n")
            if rest.split() and rest.split()[-1].startswith(nic):
                irqs.append(irq)
    fakehost.pci_function(sys_, "0000:81:00.0", node, local, irqs, "ixgbe")
    fakehost.link(sys_ / "class" / "net" / nic, f"../../devices/pci0000:00/0000:81:00.0/net/{nic}")
    fakehost.link(sys_ / "devices" / "pci0000:00" / "0000:81:00.0" / "net" / nic / "device", "../../../0000:81:00.0")
    return root


def test_plan_matches_netutils_rss_ladder(tmp_path):
    """netutils-linux's rss-ladder expected plan for eth1 on socket 1 of a 2x E5645 host."""
    root = nic_host(tmp_path / "h", fixture_text("interrupts-netutils-x86_64-12cpu-2socket-ixgbe-TxRx.txt"),
                    "eth1", {0: "0-5", 1: "6-11"}, "6-11", 1)  # fmt: skip
    code, out, _ = cli("plan", "--json", "--exclude", "eth0", root=root, state=tmp_path / "s")
    assert code == 0
    plan = json.loads(out)
    got = {c["irq"]: c["target"] for c in plan["changes"] if c["device"] == "eth1"}
    expected = {}
    for line in fixture_text("expected-netutils-rssladder-ixgbe-E5645.txt").splitlines():
        if "bound to CPU" in line:
            irq = int(line.split("(irq ")[1].split(")")[0])
            expected[irq] = line.rsplit("CPU", 1)[1].strip()
    assert got == expected and len(expected) == 8
    assert any("some CPUs serve several queues" in n for n in plan["notes"])  # rss-ladder warns the same


def test_dry_run_then_apply_then_restore(tmp_path):
    root = fakehost.build(tmp_path / "h")
    state = tmp_path / "s"
    before = {irq: (root / "proc" / "irq" / str(irq) / "smp_affinity_list").read_text() for irq in fakehost.IRQS}
    code, out, _ = cli("apply", root=root, state=state)
    assert code == 0 and "dry run" in out
    assert all((root / "proc" / "irq" / str(i) / "smp_affinity_list").read_text() == v for i, v in before.items())
    code, out, err = cli("apply", "--yes", "--json", root=root, state=state)
    assert code == 0, err
    results = json.loads(out)["results"]
    assert results and all(r["outcome"] == "applied" for r in results)
    assert (root / "proc" / "irq" / "100" / "smp_affinity_list").read_text().strip() == "4"  # ens1f0 on node 1
    assert cli("restore", root=root, state=state).exit_code == 0
    assert all((root / "proc" / "irq" / str(i) / "smp_affinity_list").read_text().strip() == v.strip()
               for i, v in before.items())  # fmt: skip


def test_rules_are_checked_before_writing():
    plan = Plan([Change("irq/5/affinity", "0-7", "6", "test")])
    rules = Rules(banned_cpus=frozenset({6}), isolated_cpus=frozenset({6}), excluded_devices=frozenset({"eth0"}),
                  managed_irqs=frozenset({5}), irq_devices={5: "eth0"})  # fmt: skip
    violations = check(plan, rules).violations
    assert len(violations) == 4 and any("banned" in v for v in violations) and any("managed" in v for v in violations)


def test_plan_avoids_banned_and_isolated_cpus(tmp_path):
    root = fakehost.build(tmp_path / "h")
    code, out, _ = cli("plan", "--json", "--ban-cpus", "4", root=root, state=tmp_path / "s")
    targets = {c["target"] for c in json.loads(out)["changes"] if c["device"] == "ens1f0"}
    assert code == 0 and targets == {"5"}  # node 1 is 4-7; 4 banned, 6-7 isolated


def test_apply_refuses_to_fight_irqbalance(tmp_path):
    root = fakehost.build(tmp_path / "h")
    fakehost.write(root / "proc" / "4242" / "comm", "irqbalance\n")
    code, _, err = cli("apply", "--yes", root=root, state=tmp_path / "s")
    assert code == 1 and "irqbalance is running" in err and "systemctl stop irqbalance" in err
    assert (root / "proc" / "irq" / "100" / "smp_affinity_list").read_text().strip() == "0-7"
    assert cli("apply", "--yes", "--take-over", root=root, state=tmp_path / "s").exit_code == 0


def big_host(root: Path, queues: int = 64) -> Path:
    header = "      " + "".join(f"CPU{c:<8d}" for c in range(16))
    rows = [f"{100 + q:4d}: " + "".join(f"{0:10d} " for _ in range(16)) + f" PCI-MSI {q}-edge  eth9-TxRx-{q}"
            for q in range(queues)]  # fmt: skip
    return nic_host(root, "\n".join([header, *rows]) + "\n", "eth9", {0: "0-15"}, "0-15", 0)


def affinities(root: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text().strip() for p in (root / "proc" / "irq").glob("*/smp_affinity_list")}


@pytest.mark.slow
def test_sigkill_at_any_point_then_restore_gives_back_every_original(tmp_path):
    """50 runs of `apply --yes` killed with SIGKILL at random moments, each followed by restore."""
    root = big_host(tmp_path / "h")
    original = affinities(root)
    exe = [sys.executable, "-m", "irqtune", "--root", str(root)]
    rng = random.Random(2026)
    state = tmp_path / "calibrate"
    start = time.monotonic()
    subprocess.run([*exe, "--state-dir", str(state), "apply", "--yes"], check=True, capture_output=True)
    full = time.monotonic() - start
    subprocess.run([*exe, "--state-dir", str(state), "restore"], check=True, capture_output=True)
    mid_write = 0
    for trial in range(50):
        state = tmp_path / f"state{trial}"
        proc = subprocess.Popen([*exe, "--state-dir", str(state), "apply", "--yes"], stdout=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.0) * full)
        proc.kill()
        proc.wait()
        changed = sum(affinities(root)[k] != v for k, v in original.items())
        mid_write += 0 < changed < 64
        restore = subprocess.run([*exe, "--state-dir", str(state), "restore"], capture_output=True, text=True)
        assert restore.returncode == 0, restore.stdout + restore.stderr
        assert affinities(root) == original, f"trial {trial}: not restored after a kill with {changed} changed"
    print(f"kills between the first and the last write: {mid_write} of 50")
    assert mid_write >= 10, f"only {mid_write} of 50 kills landed between the first and the last write"


READ_KNOBS = """
import json, sys
from irqtune.host import Host
from irqtune.act.knobs import make_knob
host = Host("/")
print(json.dumps({k: make_knob(host, k).read() for k in sys.argv[1:]}))
"""


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.netns
def test_sigkill_during_apply_in_a_namespace_then_restore(tmp_path):
    """The same 50 kills against real sysfs knobs of a veth device with 8 queues, in a throwaway namespace."""
    from conftest import require
    from netns import can_make_namespaces, veth_pair

    require(can_make_namespaces() is None, f"{can_make_namespaces()}")
    with veth_pair(queues=8) as pair:
        ns, dev = pair.receiver_ns, pair.receiver
        knobs = [f"net/{dev}/rx-{q}/rps-cpus" for q in range(8)] + [f"net/{dev}/tx-{q}/xps-cpus" for q in range(8)]
        knobs += [f"net/{dev}/gro-flush-timeout", f"net/{dev}/napi-defer-hard-irqs"]

        def in_ns(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
            return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=check)

        def values() -> dict[str, str]:
            return json.loads(in_ns(sys.executable, "-c", READ_KNOBS, *knobs).stdout)

        original = values()
        targets = {k: ("1" if "cpus" in k else "20000" if "gro" in k else "2") for k in knobs}
        assert all(original[k] != t for k, t in targets.items()), original
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps({"schema": 1, "changes": [{"knob": k, "target": t} for k, t in targets.items()]}))
        irqtune = [sys.executable, "-m", "irqtune"]
        calibrate = tmp_path / "calibrate"
        start = time.monotonic()
        in_ns(*irqtune, "--state-dir", str(calibrate), "apply", "--plan", str(plan), "--yes")
        full = time.monotonic() - start
        start = time.monotonic()
        in_ns(*irqtune, "--state-dir", str(calibrate), "verify")  # start-up, journal, reads: no writes
        startup = time.monotonic() - start
        assert values() == targets
        in_ns(*irqtune, "--state-dir", str(calibrate), "restore")
        assert values() == original
        rng, mid_write = random.Random(7), 0
        for trial in range(50):
            state = tmp_path / f"s{trial}"
            argv = [
                "ip",
                "netns",
                "exec",
                ns,
                *irqtune,
                "--state-dir",
                str(state),
                "apply",
                "--plan",
                str(plan),
                "--yes",
            ]
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(min(startup, full) * 0.8, full * 1.05))  # mostly inside the writes
            proc.kill()
            proc.wait()
            if state.exists():
                changed = sum(v != original[k] for k, v in values().items())
                mid_write += 0 < changed < len(knobs)
            restore = in_ns(*irqtune, "--state-dir", str(state), "restore", check=False)
            assert restore.returncode == 0, restore.stdout + restore.stderr
            assert values() == original, f"trial {trial}: not restored"
        print(f"namespace kills between the first and the last write: {mid_write} of 50")
        assert mid_write >= 10
