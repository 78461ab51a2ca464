"""In the guest: the hard-IRQ probe (eBPF on irq:irq_handler_entry/exit, compiled by bcc against this guest
kernel's headers) counts the real e1000e and NVMe interrupts that /proc/interrupts counts in the same
window. Compiling under TCG takes about 40 s of the test (marker `probe`, in every boot)."""

from __future__ import annotations

import json
import mmap
import os
import threading
import time

import pytest
from conftest import cli
from guest import irq_named, udp_load

pytestmark = [pytest.mark.vm, pytest.mark.probe]


def _disk_reads(device: str, stop: threading.Event) -> None:
    """Direct reads from the NVMe namespace: each completes with an interrupt on an I/O queue."""
    fd = os.open(device, os.O_RDONLY | os.O_DIRECT)
    aligned = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
    try:
        n = 0
        while not stop.is_set():
            os.preadv(fd, [aligned], (n % 4096) * 4096)
            n += 1
    finally:
        os.close(fd)


def test_hardirq_counts_match_proc_for_e1000e_and_nvme(wire, record):
    ctrl = sorted(os.listdir("/sys/class/nvme"))[0]
    namespace = f"/dev/{ctrl}n1"
    stop = threading.Event()
    reader = threading.Thread(target=_disk_reads, args=(namespace, stop), daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        with udp_load(wire):
            code, out, err = cli("probe", "-d", "2", "--only", "hardirq", "--json")
    finally:
        stop.set()
        reader.join(timeout=10)
    assert code == 0, out + err
    seconds = time.monotonic() - started
    doc = json.loads(out)
    counted = {int(k): v["count"] for k, v in doc["probes"]["hardirq"]["data"]["irqs"].items()}
    proc = {int(k): v for k, v in doc["proc"]["interrupts"].items()}
    nvme_irqs = [irq_named(f"{ctrl}q{q}") for q in (1, 2, 3)]
    checked = {"e1000e rx": [wire.irq("rx")], "nvme io": nvme_irqs}
    seen = {}
    for name, irqs in checked.items():
        probe_n, proc_n = sum(counted.get(i, 0) for i in irqs), sum(proc.get(i, 0) for i in irqs)
        seen[name] = {"probe": probe_n, "proc": proc_n}
        assert proc_n > 20, (name, proc_n, proc)  # the load reached the device
        # the probe's window lies inside /proc's: it may miss the few ms between the reads, never count more
        assert 0.9 * proc_n <= probe_n <= proc_n, (name, probe_n, proc_n)
    record(f"{os.uname().release} probe vs /proc (hardirq, 2 s)", {**seen, "command_seconds": round(seconds, 1)})
