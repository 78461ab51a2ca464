"""A simulated host: renders /proc and /sys in the kernel's formats and reacts to what is written.

The agent reads the tree through `--root` with the same code as a real host; IRQ affinity
files written by the agent move a queue's interrupts to the new CPU at the next step, and
per-queue latency, CPU and interrupt rate follow the closed-form model (`model.py`) with
the cross-NUMA cost when a queue's IRQ lands on a CPU away from its NIC.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from dataclasses import dataclass, field

from ..parse.common import U32, CpuListError, format_cpulist, parse_cpulist
from ..parse.softirqs import VECTORS
from .ethtool import default_state
from .kernel import write_rules
from .model import nic_queue
from .scenario import PhaseSpec, Scenario

IRQ_BASE = 100
CROSS_NUMA = 1.2  # per-packet cost multiplier when the IRQ CPU is on another node (physics.md §7.2)


@dataclass
class SimIrq:
    irq: int
    action: str
    device: str
    queue: int
    bdf: str
    managed: bool = False
    counts: list[int] = field(default_factory=list)


@dataclass
class QueueStep:
    """What one queue did in one step, for results."""

    device: str
    queue: int
    cpu: int
    rate: float  # offered packets/s
    irq_rate: float
    cpu_used: float
    latency: float
    delivered: float = 0.0  # packets/s processed; the rest is dropped at the ring


class SimHost:
    def __init__(self, scenario: Scenario, root: str, seed: int = 1) -> None:
        self.sc, self.root, self.rng = scenario, root, random.Random(seed)
        self.cpus = scenario.cpus
        self.nodes = scenario.node_cpus()
        self.irqs: list[SimIrq] = []
        irq = IRQ_BASE
        for n, nic in enumerate(scenario.nics):
            for q in range(nic.queues):
                self.irqs.append(SimIrq(irq, f"{nic.name}-TxRx-{q}", nic.name, q, f"0000:{0x81 + n:02x}:00.0"))
                irq += 1
        for n, nvme in enumerate(scenario.nvmes):
            for q in range(nvme.queues + 1):
                self.irqs.append(SimIrq(irq, f"{nvme.name}q{q}", nvme.name, q, f"0000:{0x01 + n:02x}:00.0", q > 0))
                irq += 1
        ncpu = len(self.cpus)
        for entry in self.irqs:
            entry.counts = [0] * ncpu
        self.loc = [0] * ncpu
        self.softirqs = {v: [0] * ncpu for v in VECTORS}
        self.softnet = [[0, 0, 0] for _ in range(ncpu)]  # processed, dropped, time_squeeze
        self.ticks = [[0, 0] for _ in range(ncpu)]  # irq, softirq (USER_HZ)
        self.clock = 0.0
        self._render_static()
        managed = [e.irq for e in self.irqs if e.managed]
        write_rules(root, scenario.host.kernel, managed, self.cpus)
        self.render()

    # -- the tree ------------------------------------------------------------
    def _write(self, rel: str, text: str) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="ascii") as f:
            f.write(text)

    def _link(self, rel: str, target: str) -> None:
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.islink(path):
            os.symlink(target, path)

    def _render_static(self) -> None:
        every = format_cpulist(self.cpus)
        self._write("proc/sys/kernel/random/boot_id", str(uuid.UUID(int=self.rng.getrandbits(128))) + "\n")
        self._write("proc/sys/kernel/hostname", "simulated\n")
        self._write("proc/sys/kernel/osrelease", f"{self.sc.host.kernel}-irqtune-sim\n")
        self._write(
            "proc/cmdline", "ro" + (f" isolcpus={self.sc.host.isolated}" if self.sc.host.isolated else "") + "\n"
        )
        for name, value in (
            ("online", every),
            ("possible", every),
            ("present", every),
            ("isolated", self.sc.host.isolated),
        ):
            self._write(f"sys/devices/system/cpu/{name}", value + "\n")
        for node, cpus in self.nodes.items():
            self._write(f"sys/devices/system/node/node{node}/cpulist", format_cpulist(cpus) + "\n")
            for cpu in cpus:
                self._write(f"sys/devices/system/cpu/cpu{cpu}/cache/index3/level", "3\n")
                self._write(
                    f"sys/devices/system/cpu/cpu{cpu}/cache/index3/shared_cpu_list", format_cpulist(cpus) + "\n"
                )
        for entry in self.irqs:
            base = f"proc/irq/{entry.irq}"
            self._write(f"{base}/smp_affinity_list", every + "\n")
            self._write(f"{base}/node", f"{self._device_node(entry.device)}\n")
            self._write(f"{base}/affinity_hint", "0\n")
        if self.irqs:
            self._write("proc/irq/default_smp_affinity", f"{(1 << len(self.cpus)) - 1:x}\n")
        for n, nic in enumerate(self.sc.nics):
            bdf = f"0000:{0x81 + n:02x}:00.0"
            self._pci(bdf, nic.node, [e.irq for e in self.irqs if e.device == nic.name], "mlx5_core")
            self._link(f"sys/class/net/{nic.name}", f"../../devices/pci0000:00/{bdf}/net/{nic.name}")
            netdir = f"sys/devices/pci0000:00/{bdf}/net/{nic.name}"
            self._link(f"{netdir}/device", "../../../" + bdf)
            for name, value in (("gro_flush_timeout", "0"), ("napi_defer_hard_irqs", "0"), ("threaded", "0"),
                                ("ifindex", str(10 + n))):  # fmt: skip
                self._write(f"{netdir}/{name}", value + "\n")
            for q in range(nic.queues):
                self._write(f"{netdir}/queues/rx-{q}/rps_cpus", "0\n")
                self._write(f"{netdir}/queues/tx-{q}/xps_cpus", "0\n")
            state = default_state(nic.queues, nic.rx_usecs, nic.rx_frames)
            self._write(f"{netdir}/irqtune-sim/ethtool.json", json.dumps(state, indent=1, sort_keys=True))
        for n, nvme in enumerate(self.sc.nvmes):
            bdf = f"0000:{0x01 + n:02x}:00.0"
            self._pci(bdf, nvme.node, [e.irq for e in self.irqs if e.device == nvme.name], "nvme")
            self._link(f"sys/class/nvme/{nvme.name}", f"../../devices/pci0000:00/{bdf}/nvme/{nvme.name}")
            self._link(f"sys/devices/pci0000:00/{bdf}/nvme/{nvme.name}/device", "../../../" + bdf)
            spread = self._spread(nvme.queues)
            for q, cpus in enumerate(spread):
                self._write(f"sys/block/{nvme.name}n1/mq/{q}/cpu_list", format_cpulist(cpus) + "\n")
                irq = next(e for e in self.irqs if e.device == nvme.name and e.queue == q + 1)
                self._write(f"proc/irq/{irq.irq}/smp_affinity_list", format_cpulist(cpus) + "\n")

    def _pci(self, bdf: str, node: int, irqs: list[int], driver: str) -> None:
        base = f"sys/devices/pci0000:00/{bdf}"
        for irq in irqs:
            self._write(f"{base}/msi_irqs/{irq}", "msix\n")
        self._write(f"{base}/numa_node", f"{node}\n")
        self._write(f"{base}/local_cpulist", format_cpulist(self.nodes.get(node, self.cpus)) + "\n")
        os.makedirs(os.path.join(self.root, "sys/bus/drivers", driver), exist_ok=True)
        self._link(f"{base}/driver", f"../../../bus/drivers/{driver}")
        self._link(f"sys/bus/pci/devices/{bdf}", f"../../../devices/pci0000:00/{bdf}")

    def _spread(self, queues: int) -> list[list[int]]:
        """The kernel's managed spread: CPUs split into `queues` contiguous groups."""
        groups = [[] for _ in range(max(queues, 1))]
        for i, cpu in enumerate(self.cpus):
            groups[i * len(groups) // len(self.cpus)].append(cpu)
        return groups

    def _device_node(self, device: str) -> int:
        for spec in (*self.sc.nics, *self.sc.nvmes):
            if spec.name == device:
                return spec.node
        return 0

    def coalescing(self, nic) -> tuple[int, int]:
        """rx-usecs (quantised like the device) and rx-frames in force, as the agent last set them."""
        path = os.path.join(self.root, "sys/class/net", nic.name, "irqtune-sim", "ethtool.json")
        try:
            with open(path, encoding="ascii") as f:
                coalesce = json.load(f)["coalesce"]
        except (OSError, ValueError, KeyError):
            coalesce = {"rx_usecs": nic.rx_usecs, "rx_max_frames": nic.rx_frames}
        quantum = max(nic.usecs_quantum, 1)
        return round(coalesce["rx_usecs"] / quantum) * quantum, coalesce["rx_max_frames"]

    def service_time(self, nic, entry: SimIrq) -> float:
        """Per-packet cost in seconds, higher when the queue's IRQ CPU is away from the NIC's node."""
        remote = self.effective_cpu(entry) not in self.nodes.get(nic.node, self.cpus)
        return nic.service_us * 1e-6 * (CROSS_NUMA if remote else 1.0)

    def effective_cpu(self, entry: SimIrq) -> int:
        """The kernel delivers to one CPU of the requested set: the first online one."""
        try:
            with open(os.path.join(self.root, f"proc/irq/{entry.irq}/smp_affinity_list"), encoding="ascii") as f:
                requested = parse_cpulist(f.read())
        except (OSError, CpuListError):
            requested = []
        online = [c for c in requested if c in self.cpus]
        return online[0] if online else self.cpus[0]

    def render(self) -> None:
        header = " " * 11 + "".join(f"CPU{c:<8d}" for c in self.cpus)
        rows = [header]
        for e in self.irqs:
            chip = f"PCI-MSIX-{e.bdf}"
            rows.append(
                f"{e.irq:4d}: "
                + "".join(f"{n % U32:10d} " for n in e.counts)
                + f" {chip} {e.queue}-edge      {e.action}"
            )
        rows.append("LOC: " + "".join(f"{n % U32:10d} " for n in self.loc) + "  Local timer interrupts")
        for key, text in (
            ("RES", "Rescheduling interrupts"),
            ("CAL", "Function call interrupts"),
            ("TLB", "TLB shootdowns"),
        ):
            rows.append(f"{key}: " + "".join(f"{0:10d} " for _ in self.cpus) + f"  {text}")
        rows += ["ERR:          0", "MIS:          0"]
        self._write("proc/interrupts", "\n".join(rows) + "\n")
        lines = [" " * 20 + "".join(f"CPU{c:<8d}" for c in self.cpus)]
        lines += [f"{v:>12}:" + "".join(f" {n % U32:10d}" for n in counts) for v, counts in self.softirqs.items()]
        self._write("proc/softirqs", "\n".join(lines) + "\n")
        self._write("proc/net/softnet_stat", "".join(
            f"{p % U32:08x} {d % U32:08x} {t % U32:08x} " + "00000000 " * 6 + "00000000 00000000 00000000 "
            + f"{cpu:08x} 00000000 00000000\n"
            for cpu, (p, d, t) in zip(self.cpus, self.softnet)
        ))  # fmt: skip
        stat = [f"cpu{c} 0 0 0 0 0 {irq} {sirq} 0 0 0" for c, (irq, sirq) in zip(self.cpus, self.ticks)]
        self._write("proc/stat", "\n".join(stat) + "\n")
        for e in self.irqs:
            self._write(f"proc/irq/{e.irq}/effective_affinity_list", f"{self.effective_cpu(e)}\n")

    # -- time ------------------------------------------------------------------
    def step(self, seconds: float, phase: PhaseSpec) -> list[QueueStep]:
        """Advance simulated time; returns what every NIC queue did.

        Queues are modelled one by one, then share their IRQ CPU: when the queues on one CPU
        need more than the whole CPU, each gets its share, its NAPI never completes (no
        interrupts, latency unbounded) and the rest of its packets are dropped.
        """
        out: list[QueueStep] = []
        for nic in self.sc.nics:
            rate = phase.rate_pps / nic.queues if phase.nic == nic.name else 0.0
            usecs, frames = self.coalescing(nic)
            for entry in (e for e in self.irqs if e.device == nic.name):
                cpu = self.effective_cpu(entry)
                r = nic_queue(rate, self.service_time(nic, entry), nic.irq_cost_us * 1e-6, usecs * 1e-6,
                              frames, nic.flavour)  # fmt: skip
                out.append(QueueStep(nic.name, entry.queue, cpu, rate, r.irq_rate, r.cpu, r.mean_latency,
                                     min(rate, r.delivered)))  # fmt: skip
        demand = [0.0] * len(self.cpus)
        for q in out:
            demand[self.cpus.index(q.cpu)] += q.cpu_used
        busy = [0.0] * len(self.cpus)
        entries = {(e.device, e.queue): e for e in self.irqs}
        for i, q in enumerate(out):
            index = self.cpus.index(q.cpu)
            if demand[index] > 1.0:  # the CPU is saturated: share it, no re-arm, drops
                share = q.cpu_used / demand[index]
                q = out[i] = QueueStep(q.device, q.queue, q.cpu, q.rate, 0.0, share, float("inf"),
                                       q.delivered * min(1.0, share / max(q.cpu_used, 1e-12)))  # fmt: skip
            irqs = int(q.irq_rate * seconds * (1.0 + self.rng.uniform(-0.02, 0.02)))
            entries[(q.device, q.queue)].counts[index] += irqs
            self.softirqs["NET_RX"][index] += max(irqs, int(q.delivered * seconds / 300))  # budget rounds if polling
            self.softnet[index][0] += int(q.delivered * seconds)
            self.softnet[index][1] += int((q.rate - q.delivered) * seconds)  # dropped at the backlog/ring
            busy[index] += min(q.cpu_used, 1.0)
        for i, used in enumerate(busy):
            self.loc[i] += int(self.sc.host.hz * seconds * (1.0 if used > 0.01 else 0.05))
            self.softirqs["TIMER"][i] += int(self.sc.host.hz * seconds * (1.0 if used > 0.01 else 0.05))
            self.ticks[i][1] += int(min(used, 1.0) * 100 * seconds)
        self.clock += seconds
        self.render()
        return out
