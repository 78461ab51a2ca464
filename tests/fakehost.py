"""A fake two-socket host as a /proc + /sys tree, for topology, inventory and findings tests."""

from __future__ import annotations

import os
from pathlib import Path

CPUS = 8
HEADER = "      " + "".join(f"CPU{c:<8d}" for c in range(CPUS))


def _row(irq: int, counts: list[int], tail: str) -> str:
    return f"{irq:4d}: " + "".join(f"{n:10d} " for n in counts) + tail


def _counts(cpu: int, n: int) -> list[int]:
    return [n if c == cpu else 0 for c in range(CPUS)]


# irq -> (action, effective CPU, count)
IRQS = {
    35: ("virtio1-config", 0, 0),
    36: ("virtio1-req.0", 1, 5000),
    37: ("virtio2-config", 0, 0),
    38: ("virtio2-input.0", 2, 900),
    39: ("virtio2-output.0", 2, 800),
    100: ("ens1f0-TxRx-0", 0, 70000),
    101: ("ens1f0-TxRx-1", 1, 60000),
    102: ("ens1f0-TxRx-2", 5, 50000),
    103: ("ens1f0-TxRx-3", 6, 40000),
    120: ("nvme0q0", 0, 10),
    121: ("nvme0q1", 0, 3000),
    122: ("nvme0q2", 4, 2000),
}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def pci_function(sys: Path, bdf: str, node: int, local: str, irqs: list[int], driver: str) -> Path:
    fn = sys / "devices" / "pci0000:00" / bdf
    for irq in irqs:
        write(fn / "msi_irqs" / str(irq), "msix\n")
    write(fn / "numa_node", f"{node}\n")
    write(fn / "local_cpulist", local + "\n")
    (sys / "bus" / "drivers" / driver).mkdir(parents=True, exist_ok=True)
    link(fn / "driver", f"../../../bus/drivers/{driver}")
    link(sys / "bus" / "pci" / "devices" / bdf, f"../../../devices/pci0000:00/{bdf}")
    return fn


def build(root: Path, cmdline: str = "ro isolcpus=managed_irq,domain,6-7 nohz_full=6-7 rcu_nocbs=6-7 -- nohz_full=1"):
    proc, sys = root / "proc", root / "sys"
    rows = [HEADER]
    for irq, (action, cpu, count) in IRQS.items():
        rows.append(_row(irq, _counts(cpu, count), f" PCI-MSIX-0000:00:00.0 {irq}-edge      {action}"))
        write(proc / "irq" / str(irq) / "smp_affinity_list", "0-7\n")
        write(proc / "irq" / str(irq) / "effective_affinity_list", f"{cpu}\n")
        write(proc / "irq" / str(irq) / "affinity_hint", "00\n")
        write(proc / "irq" / str(irq) / "node", "0\n")
    rows.append("LOC:" + "".join(f"{1000 * (c + 1):10d} " for c in range(CPUS)) + "  Local timer interrupts")
    write(proc / "interrupts", "\n".join(rows) + "\n")
    write(proc / "cmdline", cmdline + "\n")
    write(proc / "sys" / "kernel" / "random" / "boot_id", "boot-1\n")
    cpu = sys / "devices" / "system" / "cpu"
    for name, value in (("online", "0-7"), ("possible", "0-15"), ("isolated", "6-7"), ("nohz_full", "6-7")):
        write(cpu / name, value + "\n")
    for c in range(CPUS):
        write(cpu / f"cpu{c}" / "topology" / "thread_siblings_list", f"{c & ~1}-{c | 1}\n")
        for index, level in (("index0", 1), ("index2", 2), ("index3", 3)):
            write(cpu / f"cpu{c}" / "cache" / index / "level", f"{level}\n")
        write(cpu / f"cpu{c}" / "cache" / "index3" / "shared_cpu_list", "0-3\n" if c < 4 else "4-7\n")
        write(cpu / f"cpu{c}" / "cache" / "index2" / "shared_cpu_list", f"{c}\n")
    write(sys / "devices" / "system" / "node" / "node0" / "cpulist", "0-3\n")
    write(sys / "devices" / "system" / "node" / "node1" / "cpulist", "4-7\n")
    write(sys / "devices" / "system" / "node" / "possible", "0-1\n")
    # a multi-queue NIC on node 1 (two of its queues on node-0 CPUs), an NVMe on node 0
    pci_function(sys, "0000:81:00.0", 1, "4-7", [100, 101, 102, 103], "i40e")
    link(sys / "class" / "net" / "ens1f0", "../../devices/pci0000:00/0000:81:00.0/net/ens1f0")
    link(sys / "devices" / "pci0000:00" / "0000:81:00.0" / "net" / "ens1f0" / "device", "../../../0000:81:00.0")
    pci_function(sys, "0000:01:00.0", 0, "0-3", [120, 121, 122], "nvme")
    (sys / "devices" / "pci0000:00" / "0000:01:00.0" / "nvme" / "nvme0").mkdir(parents=True)
    link(sys / "class" / "nvme" / "nvme0", "../../devices/pci0000:00/0000:01:00.0/nvme/nvme0")
    link(sys / "devices" / "pci0000:00" / "0000:01:00.0" / "nvme" / "nvme0" / "device", "../../../0000:01:00.0")
    # virtio: the netdev's device is the virtio device; msi_irqs live on its PCI parent
    for bdf, virtio, irqs, driver in (
        ("0000:00:03.0", "virtio2", [37, 38, 39], "virtio_net"),
        ("0000:00:02.0", "virtio1", [35, 36], "virtio_blk"),
    ):
        fn = pci_function(sys, bdf, -1, "0-7", irqs, "virtio-pci")
        (fn / virtio).mkdir()
        link(fn / virtio / "driver", f"../../../../bus/drivers/{driver}")
        (sys / "bus" / "drivers" / driver).mkdir(parents=True, exist_ok=True)
    link(sys / "class" / "net" / "eth0", "../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth0")
    link(sys / "devices" / "pci0000:00" / "0000:00:03.0" / "virtio2" / "net" / "eth0" / "device", "../../../virtio2")
    link(sys / "block" / "vda", "../devices/pci0000:00/0000:00:02.0/virtio1/block/vda")
    link(sys / "devices" / "pci0000:00" / "0000:00:02.0" / "virtio1" / "block" / "vda" / "device", "../../../virtio1")
    (sys / "class" / "net" / "lo").mkdir(parents=True)  # virtual: no device link
    write(sys / "kernel" / "debug" / "irq" / "irqs" / "121", "handler: handle_edge_irq\nistate: 0x00004000\n"
          "dstate: 0x3660a200\n             IRQD_AFFINITY_MANAGED\n")  # fmt: skip
    return root


def _stat_line(tid: int, comm: str, cpu: int) -> str:
    rest = ["S"] + ["0"] * 49
    rest[36] = str(cpu)  # field 39
    return f"{tid} ({comm}) {' '.join(rest)}\n"


def task(proc: Path, pid: int, tid: int, comm: str, cpu: int, allowed: str) -> None:
    """A thread in a fake /proc: <pid>/comm and task/<tid>/{comm,stat,status}, last on `cpu`, allowed on `allowed`."""
    entry = proc / str(pid) / "task" / str(tid)
    entry.mkdir(parents=True)
    (proc / str(pid) / "comm").write_bytes(comm.encode() + b"\n")
    (entry / "comm").write_bytes(comm.encode() + b"\n")
    (entry / "stat").write_text(_stat_line(tid, comm, cpu))
    (entry / "status").write_text(f"Name:\t{comm}\nCpus_allowed:\tff\nCpus_allowed_list:\t{allowed}\n")
