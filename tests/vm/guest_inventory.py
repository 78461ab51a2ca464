"""In the guest: what irqtune sees of real drivers (e1000e queue IRQs, NVMe admin/io/poll queues, NUMA nodes,
isolated CPUs), each checked against the kernel's own files, not against irqtune."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import cli
from guest import irq_named

pytestmark = pytest.mark.vm


def _status() -> dict:
    code, out, err = cli("status", "--no-probe", "--json", "-i", "0.5")
    assert code == 0, err
    return json.loads(out)


def test_e1000e_queue_irqs_have_their_roles(wire):
    devices = {d["name"]: d for d in _status()["devices"]}
    receiver = devices[wire.receiver]
    assert receiver["driver"] == "e1000e"
    roles = {(q["role"], q["queue"]): q["irq"] for q in receiver["irqs"]}
    # e1000e names its MSI-X vectors DEV-rx-0, DEV-tx-0 and DEV (the link/other vector): e1000_request_msix
    assert roles[("rx", 0)] == irq_named(f"{wire.receiver}-rx-0")
    assert roles[("tx", 0)] == irq_named(f"{wire.receiver}-tx-0")
    assert any(role not in ("rx", "tx") for role, _ in roles), roles


def test_nvme_admin_io_and_poll_queues(record):
    ctrl_name = os.listdir("/sys/class/nvme")[0]
    code, out, err = cli("nvme", "--json")
    assert code == 0, err
    (ctrl,) = json.loads(out)["controllers"]
    assert json.loads(out)["poll_queues"].strip() == "1"
    assert ctrl["admin_irq"] == irq_named(f"{ctrl_name}q0")
    # 4 I/O queue pairs, nvme.poll_queues=1: 3 with interrupts, the last context polled
    assert ctrl["hw_queues"] == 4 and ctrl["poll_queues"] == [3], ctrl
    assert [ctrl["queue_irqs"][str(h)] for h in range(3)] == [irq_named(f"{ctrl_name}q{q}") for q in (1, 2, 3)]
    code, text, _ = cli("nvme")
    assert re.search(r"hctx3: [0-9,-]+ poll", text), text  # the poll map: every housekeeping CPU
    record(f"{os.uname().release} nvme", {"admin_irq": ctrl["admin_irq"], "queue_irqs": ctrl["queue_irqs"]})
    devices = {d["name"]: d for d in _status()["devices"]}
    roles = sorted((q["role"], q["queue"]) for q in devices[ctrl_name]["irqs"])
    assert ("io", 1) in roles and ("io", 3) in roles, roles


def test_numa_nodes_as_the_kernel_has_them():
    topology = _status()["topology"]
    nodes = {n: Path(f"/sys/devices/system/node/node{n}/cpulist").read_text().strip() for n in (0, 1)}
    assert nodes == {0: "0-1", 1: "2-3"}
    assert topology["nodes"] == {"0": [0, 1], "1": [2, 3]}


@pytest.mark.isolated
def test_isolated_and_nohz_full_cpus():
    topology = _status()["topology"]
    assert Path("/sys/devices/system/cpu/isolated").read_text().strip() == "3"
    assert topology["isolated"] == [3] and topology["nohz_full"] == [3]
    assert topology["housekeeping"] == [0, 1, 2]
