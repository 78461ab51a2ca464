"""Topology, isolation and the IRQ -> device/queue inventory on a fake two-socket host."""

from __future__ import annotations

import os

import fakehost
import pytest

from irqtune.host import Host
from irqtune.measure.inventory import build_inventory
from irqtune.measure.snapshot import take_snapshot
from irqtune.measure.topology import Topology, parse_cmdline, read_topology
from irqtune.statedir import load_learned_managed, remember_managed


@pytest.fixture
def host(tmp_path):
    return Host(str(fakehost.build(tmp_path)))


def inventory(host: Host, learned=None):
    snap = take_snapshot(host)
    assert snap.problems == []
    return build_inventory(host, snap.interrupts, snap.affinity, learned)


def test_topology(host):
    topo = read_topology(host)
    assert topo.online == list(range(8)) and topo.possible == list(range(16))
    assert topo.nodes == {0: [0, 1, 2, 3], 1: [4, 5, 6, 7]}
    assert topo.smt_groups == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert topo.l3_groups == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert topo.isolated == [6, 7] and topo.nohz_full == [6, 7] and topo.rcu_nocbs == [6, 7]
    assert topo.isolcpus == [6, 7] and topo.isolcpus_flags == ["managed_irq", "domain"]
    assert topo.housekeeping == [0, 1, 2, 3, 4, 5]
    assert topo.node_of(5) == 1


def test_cmdline_stops_at_init_arguments_and_reports_typos():
    topo = Topology()
    parse_cmdline("nohz_full=2-3 irqaffinity=0,1 -- nohz_full=9", topo)
    assert topo.nohz_full == [2, 3] and topo.irqaffinity == [0, 1]
    parse_cmdline("rcu_nocbs=3-1", topo)
    assert topo.problems and "rcu_nocbs" in str(topo.problems[0])


def test_topology_without_sys_uses_the_interrupts_header(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "sys").mkdir()
    topo = read_topology(Host(str(tmp_path)), fallback_online=[0, 2, 3])
    assert topo.online == [0, 2, 3] and topo.housekeeping == [0, 2, 3] and topo.source == "proc headers"


def test_devices_and_queues(host):
    inv = inventory(host)
    devices = {d.name: d for d in inv.devices}
    assert set(devices) == {"ens1f0", "nvme0", "eth0", "vda"}
    nic = devices["ens1f0"]
    assert (nic.kind, nic.driver, nic.bus_id, nic.numa_node, nic.local_cpus) == (
        "nic", "i40e", "0000:81:00.0", 1, [4, 5, 6, 7],
    )  # fmt: skip
    assert [(q.irq, q.role, q.queue) for q in nic.irqs] == [(100, "rxtx", 0), (101, "rxtx", 1), (102, "rxtx", 2),
                                                           (103, "rxtx", 3)]  # fmt: skip
    assert [(q.role, q.queue) for q in devices["nvme0"].irqs] == [("admin", 0), ("io", 1), ("io", 2)]
    assert devices["eth0"].driver == "virtio_net" and devices["eth0"].bus_id == "0000:00:03.0"
    assert [(q.irq, q.role) for q in devices["eth0"].irqs] == [(37, "config"), (38, "rx"), (39, "tx")]
    assert [(q.irq, q.role, q.queue) for q in devices["vda"].irqs] == [(35, "config", None), (36, "io", 0)]
    assert devices["vda"].kind == "block"
    assert inv.irqs[36].device == "vda" and inv.irqs[36].affinity.effective == [1]


def test_managed_from_debugfs_else_unknown(host):
    inv = inventory(host)
    assert (inv.irqs[121].managed, inv.irqs[121].managed_source) == ("yes", "debugfs")
    assert inv.irqs[122].managed == "unknown"


def test_managed_learned_in_this_boot_only(host, tmp_path):
    state = tmp_path / "state"
    remember_managed(str(state), "boot-1", 36, ["virtio1-req.0"], "EIO")
    remember_managed(str(state), "boot-1", 38, ["something-else"], "EPERM")
    learned = load_learned_managed(str(state), "boot-1")
    inv = inventory(host, learned)
    assert (inv.irqs[36].managed, inv.irqs[36].managed_source) == ("yes", "learned")
    assert inv.irqs[38].managed == "unknown"  # the IRQ number now belongs to another action
    assert load_learned_managed(str(state), "boot-2") == {}
    assert not [f for f in os.listdir(state) if ".tmp." in f]


def test_remapping(host):
    assert inventory(host).remapping == "off"


def test_device_link_escaping_sys_is_skipped(host, tmp_path, caplog):
    outside = tmp_path / "outside"
    (outside / "msi_irqs" / "100").mkdir(parents=True)
    os.symlink(str(outside), os.path.join(host.root, "sys", "class", "net", "evil"))
    inv = inventory(host)
    assert "evil" not in {d.name for d in inv.devices}
    assert "escapes" in caplog.text or "refused" in caplog.text


def test_scsi_disk_found_through_its_hba(host):
    sys = fakehost.Path(host.root) / "sys"
    fakehost.pci_function(sys, "0000:05:00.0", 0, "0-3", [130, 131], "megaraid_sas")
    disk = sys / "devices" / "pci0000:00" / "0000:05:00.0" / "host0" / "target0:0:0" / "0:0:0:0"
    disk.mkdir(parents=True)
    fakehost.link(sys / "block" / "sda", "../devices/pci0000:00/0000:05:00.0/host0/target0:0:0/0:0:0:0/block/sda")
    fakehost.link(disk / "block" / "sda" / "device", "../../../0:0:0:0")
    devices = {d.name: d for d in inventory(host).devices}
    assert devices["sda"].kind == "block" and devices["sda"].bus_id == "0000:05:00.0"
    assert "0000:05:00.0" not in devices  # the HBA is claimed by its disk, not listed as "other"


def test_nvme_report(host):
    from irqtune.measure.nvme import read_nvme

    sys = fakehost.Path(host.root) / "sys"
    fakehost.write(sys / "module" / "nvme" / "parameters" / "poll_queues", "2\n")
    for hctx, cpus in ((0, "0-3"), (1, "4-7")):
        fakehost.write(sys / "block" / "nvme0n1" / "mq" / str(hctx) / "cpu_list", cpus + "\n")
    fakehost.write(sys / "block" / "nvme0n1" / "queue" / "io_poll", "1\n")
    report = read_nvme(host)
    assert report.poll_queues == "2"
    (ctrl,) = report.controllers
    assert (ctrl.name, ctrl.namespaces, ctrl.hw_queues, ctrl.io_poll) == ("nvme0", ["nvme0n1"], 2, "1")
    assert ctrl.queue_cpus == {0: [0, 1, 2, 3], 1: [4, 5, 6, 7]}
    assert any("6.4" in note for note in report.notes)
