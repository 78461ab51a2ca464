"""NVMe queue map: which IRQ serves each blk-mq hardware context, and which context is polled (no IRQ)."""

from __future__ import annotations

from conftest import cli, make_root

from irqtune.host import Host
from irqtune.measure.nvme import read_nvme_queues

# A guest with nvme.poll_queues=1 and 4 I/O queue pairs (seen under QEMU, Linux 6.12): queue 0 is the admin
# queue, hctx0..2 are served by nvme0q1..q3 with interrupts, hctx3 (nvme0q4) is polled and has no IRQ.
INTERRUPTS = """\
           CPU0       CPU1       CPU2       CPU3
 46:         16          0          0          0  PCI-MSIX-0000:00:0c.0   0-edge      nvme0q0
 47:          0          0          0          0  PCI-MSIX-0000:00:0c.0   1-edge      nvme0q1
 48:         33          0          0          0  PCI-MSIX-0000:00:0c.0   2-edge      nvme0q2
 49:          0          5          0          0  PCI-MSIX-0000:00:0c.0   3-edge      nvme0q3
"""


def _root(tmp_path, interrupts: str = INTERRUPTS):
    params = "sys/module/nvme/parameters"
    files = {"proc/interrupts": interrupts, "sys/class/nvme/nvme0/dev": "241:0\n",
             f"{params}/poll_queues": "1\n", f"{params}/write_queues": "0\n"}  # fmt: skip
    for hctx, cpus in enumerate(("2-3", "0", "1", "0-3")):
        files[f"sys/block/nvme0n1/mq/{hctx}/cpu_list"] = cpus + "\n"
    return make_root(tmp_path, files)


def test_each_hardware_queue_has_its_irq_and_the_one_without_is_polled(tmp_path):
    report = read_nvme_queues(Host(str(_root(tmp_path))))
    (ctrl,) = report.controllers
    assert ctrl.admin_irq == 46
    assert ctrl.queue_irqs == {0: 47, 1: 48, 2: 49, 3: None}
    assert ctrl.poll_queues == [3]
    assert report.to_json()["controllers"][0]["poll_queues"] == [3]


def test_the_nvme_command_names_the_polled_queue(tmp_path):
    code, out, _ = cli("nvme", root=_root(tmp_path))
    assert code == 0
    assert "hctx3: 0-3 poll" in out and "hctx0: 2-3 IRQ 47" in out and "polled: hctx3" in out


def test_without_the_admin_queue_row_nothing_is_called_polled(tmp_path):
    """Another driver's naming (or an unreadable table): no queue is guessed to be polled."""
    report = read_nvme_queues(Host(str(_root(tmp_path, INTERRUPTS.splitlines()[0] + "\n"))))
    assert report.controllers[0].queue_irqs == {} and report.controllers[0].poll_queues == []
