"""Queue names from IRQ actions, and finding the system's bcc."""

from __future__ import annotations

import os

import pytest
from conftest import IN_CI, require

from irqtune.bcc import find_bcc, load_bcc
from irqtune.measure.queues import classify_action


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("eth0-TxRx-3", ("eth0", "nic", "rxtx", 3)),
        ("i40e-eth0-TxRx-3", ("eth0", "nic", "rxtx", 3)),
        ("i40e-enp195s0f3-TxRx-93", ("enp195s0f3", "nic", "rxtx", 93)),
        ("eth0-Tx-Rx-7", ("eth0", "nic", "rxtx", 7)),
        ("eth1-rx-2", ("eth1", "nic", "rx", 2)),
        ("eth0-tx-0", ("eth0", "nic", "tx", 0)),
        ("eth0-tx-0-rx-3", ("eth0", "nic", "rxtx", 3)),
        ("eth6-4", ("eth6", "nic", "rxtx", 4)),
        ("mlx5_comp3@pci:0000:01:00.0", ("0000:01:00.0", "nic", "rxtx", 3)),
        ("mlx4-12@0000:13:00.0", ("0000:13:00.0", "nic", "rxtx", 12)),
        ("mlx4-async@pci:0000:04:00.0", ("0000:04:00.0", "nic", "control", None)),
        ("i40e-0000:c3:00.3:fdir-TxRx-0", ("0000:c3:00.3", "nic", "control", None)),
        ("virtio2-input.0", ("virtio2", "", "rx", 0)),
        ("virtio2-output.1", ("virtio2", "", "tx", 1)),
        ("virtio1-req.0", ("virtio1", "", "io", 0)),
        ("virtio0-config", ("virtio0", "", "config", None)),
        ("nvme0q0", ("nvme0", "nvme", "admin", 0)),
        ("nvme12q64", ("nvme12", "nvme", "io", 64)),
        ("megasas0-msix39", ("megasas0", "block", "io", 39)),
    ],
)
def test_queue_names(action, expected):
    q = classify_action(action)
    assert (q.device, q.kind, q.role, q.queue) == expected


@pytest.mark.parametrize("action", ["timer", "ahci[0000:00:1f.2]", "lpfc:12", "i8042", "xhci_hcd", "hpet2", ""])
def test_other_actions_are_not_queues(action):
    assert classify_action(action) is None


def test_bcc_override_that_is_not_bcc(tmp_path, monkeypatch):
    fake = tmp_path / "bcc"
    fake.mkdir()
    monkeypatch.setenv("IRQTUNE_BCC_PATH", str(fake))
    info = find_bcc()
    assert not info.available and "not found" in info.reason
    (fake / "__init__.py").write_text("VERSION = 'unrelated PyPI bcc'\n")
    monkeypatch.delitem(__import__("sys").modules, "bcc", raising=False)
    if find_bcc().available:  # libbcc.so present: the path is accepted, the import must reject it
        with pytest.raises(ImportError, match="not iovisor bcc"):
            load_bcc()
    else:
        with pytest.raises(ImportError, match="libbcc"):
            load_bcc()


@pytest.mark.bpf
def test_system_bcc_loads():
    info = find_bcc()
    require(info.available or not (IN_CI and os.geteuid() == 0), info.reason)
    if not info.available:
        pytest.skip(info.reason)
    bcc = load_bcc()
    assert hasattr(bcc, "BPF")
