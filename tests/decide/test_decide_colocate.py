"""Co-location of queue IRQs with a process's threads, RPS/XPS to match, and reading thread placement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fakehost
import pytest
from conftest import require

from irqtune.act.knobs import make_knob
from irqtune.decide.colocate import colocate_plan, placed_cpus, steering_plan
from irqtune.host import Host
from irqtune.measure.inventory import Device, Inventory, IrqInfo, QueueIrq
from irqtune.measure.snapshot import IrqAffinity
from irqtune.measure.tasks import ThreadPlacement, find_process_threads, shown
from irqtune.measure.topology import Topology
from irqtune.plan import Change, Plan, Rules, check

# Two nodes of two cores with two hardware threads each: node 0 = CPUs 0-3 (cores 0,1 and 2,3), node 1 = 4-7.


def topology(isolated: tuple[int, ...] = ()) -> Topology:
    online = list(range(8))
    return Topology(
        online=online,
        possible=online,
        nodes={0: [0, 1, 2, 3], 1: [4, 5, 6, 7]},
        smt_groups=[[0, 1], [2, 3], [4, 5], [6, 7]],
        l3_groups=[[0, 1, 2, 3], [4, 5, 6, 7]],
        isolated=list(isolated),
        housekeeping=[c for c in online if c not in isolated],
    )


def nic(name: str = "eth0", queues: int = 2, first_irq: int = 100, node: int = 0,
        managed: frozenset[int] = frozenset(), on: int = 0) -> tuple[Device, dict[int, IrqInfo]]:  # fmt: skip
    """A NIC with combined queues whose IRQs all sit on CPU `on` (as after boot)."""
    local = [0, 1, 2, 3] if node == 0 else [4, 5, 6, 7]
    device = Device(name=name, kind="nic", driver="i40e", numa_node=node, local_cpus=local)
    infos = {}
    for q in range(queues):
        irq = first_irq + q
        device.irqs.append(QueueIrq(irq, f"{name}-TxRx-{q}", "rxtx", q))
        infos[irq] = IrqInfo(
            irq, (f"{name}-TxRx-{q}",), "IR-PCI-MSIX", device=name, kind="nic", role="rxtx", queue=q,
            managed="yes" if irq in managed else "no", affinity=IrqAffinity(requested=list(range(8)), effective=[on]),
        )  # fmt: skip
    return device, infos


def world(*devices: tuple[Device, dict[int, IrqInfo]], isolated: tuple[int, ...] = (),
          banned: frozenset[int] = frozenset()) -> tuple[Inventory, Topology, Rules]:  # fmt: skip
    inv = Inventory()
    for device, infos in devices:
        inv.devices.append(device)
        inv.irqs.update(infos)
    rules = Rules(
        banned_cpus=banned,
        isolated_cpus=frozenset(isolated),
        managed_irqs=frozenset(i for i, info in inv.irqs.items() if info.managed == "yes"),
        irq_devices={i: info.device for i, info in inv.irqs.items() if info.device},
    )
    return inv, topology(isolated), rules


def threads(*allowed: tuple[int, ...], pid: int = 4242, name: str = "memcached") -> list[ThreadPlacement]:
    return [ThreadPlacement(pid, pid + i, name, name, cpus[0], cpus) for i, cpus in enumerate(allowed)]


def spread(*targets: tuple[int, str]) -> list[Change]:
    return [Change(f"irq/{irq}/affinity", "0-7", cpus, "spread") for irq, cpus in targets]


def targets(plan: Plan) -> dict[str, str]:
    return {c.knob: c.target for c in plan.changes}


def checked(plan: Plan, rules: Rules) -> Plan:
    assert check(plan, rules).violations == []
    return plan


def recommendations(plan: Plan) -> list[str]:
    return [n for n in plan.notes if n.startswith("recommend: ")]


# -- co-location ---------------------------------------------------------------------------------------------


def test_irq_goes_to_the_smt_sibling_of_the_pinned_thread():
    inv, topo, rules = world(nic(queues=1))
    plan = checked(colocate_plan(inv, topo, rules, {"eth0": threads((2,), (2,))}), rules)
    [change] = plan.changes
    assert (change.knob, change.current, change.target) == ("irq/100/affinity", "0-7", "3")
    assert "SMT sibling of CPU 2" in change.reason and "memcached (pid 4242)" in change.reason


def test_same_cpu_when_the_sibling_is_isolated():
    inv, topo, rules = world(nic(queues=1), isolated=(3,))
    plan = checked(colocate_plan(inv, topo, rules, {"eth0": threads((2,))}), rules)
    assert targets(plan) == {"irq/100/affinity": "2"}
    assert "same CPU 2" in plan.changes[0].reason


def test_l3_fallback_spreads_queues_and_never_uses_isolated_cpus():
    # The application owns the isolated core 2-3: its IRQs go to the rest of the L3 group, one queue per CPU.
    inv, topo, rules = world(nic(queues=2), isolated=(2, 3))
    plan = checked(colocate_plan(inv, topo, rules, {"eth0": threads((2,), (3,))}), rules)
    assert targets(plan) == {"irq/100/affinity": "0", "irq/101/affinity": "1"}
    assert all("same L3 as CPU" in c.reason for c in plan.changes)


def test_no_allowed_cpu_near_the_process_leaves_the_irq_alone():
    inv, topo, rules = world(nic(queues=1), isolated=(2, 3), banned=frozenset({0, 1}))
    plan = checked(colocate_plan(inv, topo, rules, {"eth0": threads((2,))}), rules)
    assert plan.changes == [] and any("no allowed CPU on the core or L3" in n for n in plan.notes)


def test_queues_follow_the_process_cpus_in_order_and_crowding_is_noted():
    inv, topo, rules = world(nic(queues=4))
    plan = checked(colocate_plan(inv, topo, rules, {"eth0": threads((0,), (2,))}), rules)
    assert targets(plan) == {"irq/100/affinity": "1", "irq/101/affinity": "3", "irq/102/affinity": "1",
                             "irq/103/affinity": "3"}  # fmt: skip
    assert any("4 queues on 2 CPU(s)" in n for n in plan.notes)


def test_managed_irq_is_skipped_with_a_recommendation():
    inv, topo, rules = world(nic(queues=2, managed=frozenset({100}), on=1))
    plan = checked(colocate_plan(inv, topo, rules, {"eth0": threads((2,))}), rules)
    assert "irq/100/affinity" not in targets(plan) and targets(plan) == {"irq/101/affinity": "3"}
    assert any("IRQ 100" in n and "kernel-managed" in n for n in plan.notes)
    [rec] = recommendations(plan)
    assert "kernel-managed" in rec and "taskset -a -p -c 1 4242" in rec


def test_device_without_irqs_and_absent_process_get_no_colocation():
    inv, topo, rules = world(nic(queues=1))
    inv.devices.append(Device(name="veth0", kind="nic"))
    plan = colocate_plan(inv, topo, rules, {"veth0": threads((2,)), "eth0": [], "nope0": threads((2,))})
    assert plan.changes == []
    assert any(n.startswith("veth0: no queue IRQs") for n in plan.notes)
    assert any(n.startswith("nope0: no queue IRQs") for n in plan.notes)
    assert any(n.startswith("eth0: the process to co-locate with is not running") for n in plan.notes)


def test_excluded_device_is_left_alone():
    inv, topo, rules = world(nic(queues=1))
    rules = Rules(excluded_devices=frozenset({"eth0"}), irq_devices=rules.irq_devices)
    plan = checked(colocate_plan(inv, topo, rules, {"eth0": threads((2,))}), rules)
    assert plan.changes == [] and "eth0: excluded, left as it is" in plan.notes


def test_unpinned_process_moves_nothing_and_gets_a_pin_recommendation():
    inv, topo, rules = world(nic(queues=2, on=0))
    plan = colocate_plan(inv, topo, rules, {"eth0": threads(tuple(range(8)), tuple(range(8)))})
    assert plan.changes == []
    [rec] = recommendations(plan)
    assert "may run on any of CPU 0-7" in rec and "taskset -a -p -c 1 4242" in rec


def test_move_threads_recommends_only_next_to_the_planned_irqs():
    inv, topo, rules = world(nic(queues=2))
    base = Plan(changes=spread((100, "0"), (101, "2")))
    plan = colocate_plan(inv, topo, rules, {"eth0": threads((5,))}, base=base, move="threads")
    assert targets(plan) == targets(base)
    [rec] = recommendations(plan)
    assert "pin memcached (pid 4242) to CPU 1,3" in rec
    with pytest.raises(ValueError):
        colocate_plan(inv, topo, rules, {}, move="sideways")


def test_base_plan_changes_for_colocated_irqs_are_replaced():
    eth0, eth1 = nic("eth0", queues=1), nic("eth1", queues=1, first_irq=200, node=1)
    inv, topo, rules = world(eth0, eth1)
    base = Plan(changes=spread((100, "0"), (200, "4")), notes=["from spread"])
    plan = checked(colocate_plan(inv, topo, rules, {"eth0": threads((2,))}, base=base), rules)
    assert targets(plan) == {"irq/200/affinity": "4", "irq/100/affinity": "3"}
    assert plan.notes[0] == "from spread"


def test_process_on_the_far_node_is_noted():
    inv, topo, rules = world(nic(queues=1, node=0))
    plan = checked(colocate_plan(inv, topo, rules, {"eth0": threads((6,))}), rules)
    assert targets(plan) == {"irq/100/affinity": "7"}
    assert any("runs off the device's NUMA node" in n for n in recommendations(plan))


def test_untrusted_process_name_is_escaped_in_notes():
    inv, topo, rules = world(nic(queues=1))
    plan = colocate_plan(inv, topo, rules, {"eth0": threads(tuple(range(8)), name="x\x1b[2J\ny")})
    assert "\x1b" not in "".join(plan.notes) and "\n" not in "".join(plan.notes)
    assert "x\\x1b[2J\\ny" in "".join(plan.notes)  # escaped as Python would write it


# -- RPS / XPS -------------------------------------------------------------------------------------------------


def masks(device: str, queues: int, value: str = "") -> dict[str, str]:
    out = {f"net/{device}/rx-{q}/rps-cpus": value for q in range(queues)}
    out.update({f"net/{device}/tx-{q}/xps-cpus": value for q in range(queues)})
    return out


def test_rps_on_when_fewer_queues_than_node_cpus_and_xps_is_the_irq_core():
    inv, topo, rules = world(nic(queues=2))
    irq_cpus = {100: 0, 101: 2}
    plan = checked(steering_plan(inv, topo, rules, irq_cpus, masks("eth0", 2)), rules)
    assert targets(plan) == {
        "net/eth0/tx-0/xps-cpus": "0-1", "net/eth0/tx-1/xps-cpus": "2-3",
        "net/eth0/rx-0/rps-cpus": "1,3", "net/eth0/rx-1/rps-cpus": "1,3",
    }  # fmt: skip
    assert all(c.device == "eth0" for c in plan.changes)


def test_rps_off_when_queues_cover_the_node_and_isolated_cpus_never_in_masks():
    inv, topo, rules = world(nic(queues=3), isolated=(3,))
    irq_cpus = {100: 0, 101: 1, 102: 2}
    plan = checked(steering_plan(inv, topo, rules, irq_cpus, masks("eth0", 3, "0-3")), rules)
    got = targets(plan)
    assert {got[f"net/eth0/rx-{q}/rps-cpus"] for q in range(3)} == {""}  # off, the canonical empty mask
    assert got["net/eth0/tx-2/xps-cpus"] == "2" and got["net/eth0/tx-0/xps-cpus"] == "0-1"
    assert all(c.reason.startswith(("RPS off", "XPS")) for c in plan.changes)


def test_steering_targets_are_accepted_by_the_knobs(tmp_path: Path):
    inv, topo, rules = world(nic(queues=2))
    plan = steering_plan(inv, topo, rules, {100: 0, 101: 2}, masks("eth0", 2, "0-7"))
    host = Host(str(tmp_path))
    for c in plan.changes:
        assert make_knob(host, c.knob, topo).normalize(c.target) == c.target  # no write: validation only


def test_steering_only_plans_knobs_that_exist_and_skips_virtual_devices():
    inv, topo, rules = world(nic(queues=2))
    queues = {"net/eth0/tx-0/xps-cpus": "0-1", "net/veth0/rx-0/rps-cpus": ""}
    plan = steering_plan(inv, topo, rules, {100: 0, 101: 2}, queues)
    assert plan.changes == []  # tx-0 already right; the others do not exist
    assert any(n.startswith("veth0: no placed queue IRQs") for n in plan.notes)


def test_rps_falls_back_to_the_node_when_the_l3_has_no_spare_cpu():
    inv, topo, rules = world(nic(queues=2))
    topo.l3_groups = [[0, 1], [2, 3], [4, 5], [6, 7]]
    plan = checked(steering_plan(inv, topo, rules, {100: 0, 101: 1}, masks("eth0", 2)), rules)
    assert targets(plan)["net/eth0/rx-0/rps-cpus"] == "2-3"


def test_placed_cpus_prefers_the_plan_target_over_the_effective_affinity():
    inv, _, _ = world(nic(queues=2, on=5))
    plan = Plan(changes=spread((100, "2"), (101, "0-1")))
    assert placed_cpus(inv, plan) == {100: 2, 101: 5}


# -- measuring thread placement --------------------------------------------------------------------------------


def test_find_process_threads_on_a_fake_tree(tmp_path: Path):
    proc = tmp_path / "proc"
    (tmp_path / "sys").mkdir()
    fakehost.task(proc, 1234, 1234, "memcached", 2, "2-3")
    fakehost.task(proc, 1234, 1240, "memcached", 3, "3")
    fakehost.task(proc, 77, 77, "a) b 9 9", 5, "5")  # a comm with ")" and spaces must not shift stat fields
    fakehost.task(proc, 88, 88, "averyveryverylo", 1, "0-1")  # the kernel keeps 15 bytes of a longer name
    fakehost.task(proc, 99, 99, "other", 0, "0")
    (proc / "self").mkdir()
    (proc / "net").mkdir()
    host = Host(str(tmp_path))
    found = find_process_threads(host, "memcached")
    assert [(t.pid, t.tid, t.last_cpu, t.allowed) for t in found] == [(1234, 1234, 2, (2, 3)), (1234, 1240, 3, (3,))]
    [odd] = find_process_threads(host, "a) b 9 9")
    assert (odd.last_cpu, odd.allowed) == (5, (5,))
    assert [t.pid for t in find_process_threads(host, "averyveryverylongname")] == [88]
    assert find_process_threads(host, "absent") == []
    assert shown("x\x1b[31m") == "x\\x1b[31m"


def test_find_process_threads_skips_a_thread_that_vanished(tmp_path: Path):
    proc = tmp_path / "proc"
    fakehost.task(proc, 10, 10, "app", 0, "0")
    (proc / "10" / "task" / "11").mkdir()  # listed, but its files are gone
    assert [t.tid for t in find_process_threads(Host(str(tmp_path)), "app")] == [10]


CHILD = """
import os, sys, threading, time
os.sched_setaffinity(0, {1})
with open("/proc/self/comm", "w") as f:
    f.write(sys.argv[1])
threading.Thread(target=time.sleep, args=(120,), daemon=True).start()
end = time.monotonic() + 0.05
while time.monotonic() < end:
    pass  # run a little, so the kernel has a CPU to report
print("ready", flush=True)
time.sleep(120)
"""


def test_find_a_real_pinned_process_by_name():
    require(1 in os.sched_getaffinity(0), "needs CPU 1 (this test pins a child process there)")
    name = f"itq-colo-{os.getpid() % 100000}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, name], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        found = find_process_threads(Host("/"), name)
        assert {t.pid for t in found} == {child.pid} and len(found) == 2
        assert all(t.allowed == (1,) for t in found)
        assert all(t.process == name for t in found)
        assert found[0].tid == child.pid and found[0].last_cpu == 1
    finally:
        child.kill()
        child.wait(timeout=10)


def test_with_isolcpus_an_ordinary_thread_is_not_pinned():
    """isolcpus=6-7: an ordinary thread's mask is the housekeeping set 0-5, which is not a pinning."""
    inv, topo, rules = world(nic(), isolated=(6, 7))
    plan = colocate_plan(inv, topo, rules, {"eth0": threads((0, 1, 2, 3, 4, 5))})
    assert not plan.changes and any("recommend" in n for n in plan.notes)
    pinned = colocate_plan(inv, topo, rules, {"eth0": threads((2,), (2,))})
    assert set(targets(pinned).values()) <= {"2", "3"}  # same core as the pinned threads


def test_a_status_file_is_split_at_newlines_only(tmp_path: Path):
    """Issue 16.8: str.splitlines() also breaks at \\x1c (and \\f, \\v, U+2028): a name holding one made a line
    of its own, and a forged Cpus_allowed_list in it won over the real one."""
    proc = tmp_path / "proc"
    fakehost.task(proc, 5, 5, "app", 0, "2-3")
    (proc / "5" / "task" / "5" / "status").write_text("Name:\tx\x1cCpus_allowed_list:\t7\nCpus_allowed_list:\t2-3\n")
    [thread] = find_process_threads(Host(str(tmp_path)), "app")
    assert thread.allowed == (2, 3)
