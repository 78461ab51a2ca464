"""The simulated host's /proc and /sys, written in the kernel's formats.

The static part (topology, devices, IRQ directories, knobs at their defaults) is written
once; the counters (/proc/interrupts, softirqs, softnet_stat, stat, net/dev, diskstats) after every step.
The agent reads the tree through `--root` with the same parsers as a real host.

The writer touches only what it made (issue 16.3): the directory must be new, empty or a tree the
simulator rendered before, is opened without following a symlink, and every file is reached beneath it
with no symlink on the way (fileio.open_beneath, follow=False) and written only when it is a regular file
with one link, so a symlink or hard link planted in the tree cannot carry a write outside it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import uuid
import weakref
from dataclasses import dataclass, field

from ..fileio import check_regular, open_beneath, read_fd
from ..parse.common import U32, format_cpulist, parse_cpulist
from .ethtool import default_state
from .kernel import RULES_FILE
from .netdev import napi_state

IRQ_BASE = 100
NAPI_ID_BASE = 8193  # the kernel's first NAPI id (MIN_NAPI_ID)
SYSCTLS = {  # net.core defaults (docs/physics.md §0)
    "netdev_budget": "300",
    "netdev_budget_usecs": "2000",
    "dev_weight": "64",
    "netdev_max_backlog": "1000",
    "busy_read": "0",
    "busy_poll": "0",
}


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
class KernelCounters:
    """Everything the kernel counts per CPU, as the tree shows it."""

    ncpu: int
    loc: list[int] = field(default_factory=list)
    res: list[int] = field(default_factory=list)
    cal: list[int] = field(default_factory=list)
    tlb: list[int] = field(default_factory=list)
    softirqs: dict[str, list[int]] = field(default_factory=dict)
    softnet: list[list[int]] = field(default_factory=list)  # processed, dropped, time_squeeze
    ticks: list[list[int]] = field(default_factory=list)  # irq, softirq, idle (USER_HZ)
    netdev: dict[str, list[int]] = field(default_factory=dict)  # NIC -> rx packets, rx bytes, rx drop (ring)
    busy_poll_rx: int = 0  # packets taken by busy-polling applications (TcpExt BusyPollRxPackets)
    disks: dict[str, int] = field(default_factory=dict)  # NVMe namespace -> reads completed (/proc/diskstats)

    def __post_init__(self) -> None:
        from ..parse.softirqs import VECTORS

        self.loc, self.res, self.cal, self.tlb = ([0] * self.ncpu for _ in range(4))
        self.softirqs = {v: [0] * self.ncpu for v in VECTORS}
        self.softnet = [[0, 0, 0] for _ in range(self.ncpu)]
        self.ticks = [[0, 0, 0] for _ in range(self.ncpu)]


class TreeError(OSError):
    """The tree cannot be rendered safely there: not the simulator's own, or a file in it was swapped."""


def open_tree(root: str) -> int:
    """An fd of `root`, made here or found empty or holding a tree the simulator rendered (its rules file);
    a symlink or a directory of other files is refused."""
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o755)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        why = "is a symlink: give the directory itself" if os.path.islink(root) else err.strerror
        raise TreeError(err.errno, f"{root}: {why}") from None
    names = os.listdir(fd)
    if names and RULES_FILE not in names:
        os.close(fd)
        raise TreeError(errno.ENOTEMPTY, f"{root}: not empty and not a simulated tree: give a new or empty directory")
    return fd


class Tree:
    """Writes one simulated host's files under `root`, never through a link it did not make."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._fd = open_tree(root)
        self._made: set[str] = set()  # directories known to be real ones made (or found) by this writer
        weakref.finalize(self, os.close, self._fd)

    def write(self, rel: str, text: str) -> None:
        try:
            fd = self._create(rel)
        except FileNotFoundError:
            self.mkdir(os.path.dirname(rel))
            fd = self._create(rel)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            os.ftruncate(fd, 0)
            f.write(text)

    def _create(self, rel: str) -> int:
        """The file opened for writing, refused unless it is a regular file with one link reached through no link."""
        try:
            fd = open_beneath(self._fd, rel, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o644, follow=False)
        except FileNotFoundError:
            raise
        except OSError as err:
            raise TreeError(err.errno, f"{os.path.join(self.root, rel)}: refused: {err.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            what = "not a regular file" if not stat.S_ISREG(st.st_mode) else f"{st.st_nlink} hard links"
            raise TreeError(errno.EPERM, f"{os.path.join(self.root, rel)}: refused: {what} (not the simulator's)")
        return fd

    def mkdir(self, rel: str) -> None:
        """`rel` and its parents as real directories beneath the root (an existing one may not be a link)."""
        done = ""
        for part in (p for p in rel.split("/") if p):
            parent, done = done, f"{done}/{part}" if done else part
            if done in self._made:
                continue
            fd = self._dir(parent) if parent else self._fd
            try:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            finally:
                if fd != self._fd:
                    os.close(fd)
            os.close(self._dir(done))  # refused if a link or a file was there
            self._made.add(done)

    def _dir(self, rel: str) -> int:
        try:
            return open_beneath(self._fd, rel, os.O_PATH | os.O_DIRECTORY, follow=False)
        except OSError as err:
            raise TreeError(err.errno, f"{os.path.join(self.root, rel)}: refused: {err.strerror}") from None

    def read(self, rel: str) -> str | None:
        """The text of a file in the tree (links followed while they stay in it), or None."""
        try:
            fd = open_beneath(self._fd, rel, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:  # absent, or a link out of the tree: the caller falls back to its default
            return None
        try:
            check_regular(fd, rel)
            return read_fd(fd).decode("ascii")
        except (OSError, UnicodeDecodeError):  # not a file, or not text
            return None
        finally:
            os.close(fd)

    def link(self, rel: str, target: str) -> None:
        """A symlink the simulator makes (sysfs's class and device links); an existing one is kept."""
        directory, name = os.path.split(rel)
        self.mkdir(directory)
        fd = self._dir(directory)
        try:
            os.symlink(target, name, dir_fd=fd)
        except FileExistsError:
            if not stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                raise TreeError(errno.EEXIST, f"{os.path.join(self.root, rel)}: refused: not a symlink") from None
        finally:
            os.close(fd)

    # -- once ------------------------------------------------------------------
    def static(self, sim) -> None:
        """Topology, devices and knobs at their defaults; `sim` is the SimMachine."""
        sc, every = sim.sc, format_cpulist(sim.cpus)
        self.write("proc/sys/kernel/random/boot_id", str(uuid.UUID(int=sim.rng.getrandbits(128))) + "\n")
        self.write("proc/sys/kernel/hostname", "simulated\n")
        self.write("proc/sys/kernel/osrelease", f"{sc.host.kernel}-irqtune-sim\n")
        self.write("proc/cmdline", "ro" + (f" isolcpus={sc.host.isolated}" if sc.host.isolated else "") + "\n")
        for name, value in SYSCTLS.items():
            self.write(f"proc/sys/net/core/{name}", value + "\n")
        for name, value in (("online", every), ("possible", every), ("present", every),
                            ("isolated", sc.host.isolated)):  # fmt: skip
            self.write(f"sys/devices/system/cpu/{name}", value + "\n")
        for cpu in sim.cpus:  # a core's threads: the agent's topology reads its SMT groups here
            core = format_cpulist(sorted([cpu, *sc.host.siblings(cpu)]))
            for name in ("thread_siblings_list", "core_cpus_list"):
                self.write(f"sys/devices/system/cpu/cpu{cpu}/topology/{name}", core + "\n")
        for node, cpus in sim.nodes.items():
            self.write(f"sys/devices/system/node/node{node}/cpulist", format_cpulist(cpus) + "\n")
            for cpu in cpus:
                self.write(f"sys/devices/system/cpu/cpu{cpu}/cache/index3/level", "3\n")
                self.write(f"sys/devices/system/cpu/cpu{cpu}/cache/index3/shared_cpu_list", format_cpulist(cpus) + "\n")
        for entry in sim.irqs:
            base = f"proc/irq/{entry.irq}"
            self.write(f"{base}/smp_affinity_list", every + "\n")
            self.write(f"{base}/node", f"{sim.device_node(entry.device)}\n")
            self.write(f"{base}/affinity_hint", "0\n")
        if sim.irqs:
            self.write("proc/irq/default_smp_affinity", f"{(1 << len(sim.cpus)) - 1:x}\n")
        for n, nic in enumerate(sc.nics):
            self._nic(sim, n, nic)
            cpus = parse_cpulist(nic.cpus)
            for e in (e for e in sim.irqs if e.device == nic.name and cpus):
                self.write(f"proc/irq/{e.irq}/smp_affinity_list", f"{cpus[e.queue % len(cpus)]}\n")
        for n, nvme in enumerate(sc.nvmes):
            self._nvme(sim, n, nvme)

    def _nic(self, sim, n: int, nic) -> None:
        bdf = f"0000:{0x81 + n:02x}:00.0"
        irqs = [e for e in sim.irqs if e.device == nic.name]
        self._pci(sim, bdf, nic.node, [e.irq for e in irqs], nic.driver_name)
        self.link(f"sys/class/net/{nic.name}", f"../../devices/pci0000:00/{bdf}/net/{nic.name}")
        netdir = f"sys/devices/pci0000:00/{bdf}/net/{nic.name}"
        self.link(f"{netdir}/device", "../../../" + bdf)
        for name, value in (("gro_flush_timeout", "0"), ("napi_defer_hard_irqs", "0"), ("threaded", "0"),
                            ("ifindex", str(10 + n))):  # fmt: skip
            self.write(f"{netdir}/{name}", value + "\n")
        for q in range(nic.queues):
            self.write(f"{netdir}/queues/rx-{q}/rps_cpus", "0\n")
            self.write(f"{netdir}/queues/tx-{q}/xps_cpus", "0\n")
        state = default_state(nic.queues, nic.rx_usecs, nic.rx_frames, nic.usecs_quantum, nic.max_channels, nic.ring,
                              nic.ring_max)  # fmt: skip
        state["coalesce"]["use_adaptive_rx"] = int(nic.adaptive_rx)
        self.write(f"{netdir}/irqtune-sim/ethtool.json", json.dumps(state, indent=1, sort_keys=True))
        napis = {str(NAPI_ID_BASE + e.irq - IRQ_BASE): napi_state(10 + n, e.irq) for e in irqs}
        self.write(f"{netdir}/irqtune-sim/napi.json", json.dumps(napis, indent=1, sort_keys=True))

    def _nvme(self, sim, n: int, nvme) -> None:
        bdf = f"0000:{0x01 + n:02x}:00.0"
        self._pci(sim, bdf, nvme.node, [e.irq for e in sim.irqs if e.device == nvme.name], "nvme")
        self.link(f"sys/class/nvme/{nvme.name}", f"../../devices/pci0000:00/{bdf}/nvme/{nvme.name}")
        self.link(f"sys/devices/pci0000:00/{bdf}/nvme/{nvme.name}/device", "../../../" + bdf)
        self.write(f"sys/block/{nvme.name}n1/queue/io_poll", "0\n")
        self.write(f"sys/block/{nvme.name}n1/irqtune-sim/completion", "irq\n")
        for q, cpus in enumerate(sim.nvme_spread(nvme)):
            self.write(f"sys/block/{nvme.name}n1/mq/{q}/cpu_list", format_cpulist(cpus) + "\n")
            irq = next(e for e in sim.irqs if e.device == nvme.name and e.queue == q + 1)
            self.write(f"proc/irq/{irq.irq}/smp_affinity_list", format_cpulist(cpus) + "\n")

    def _pci(self, sim, bdf: str, node: int, irqs: list[int], driver: str) -> None:
        base = f"sys/devices/pci0000:00/{bdf}"
        for irq in irqs:
            self.write(f"{base}/msi_irqs/{irq}", "msix\n")
        self.write(f"{base}/numa_node", f"{node}\n")
        self.write(f"{base}/local_cpulist", format_cpulist(sim.nodes.get(node, sim.cpus)) + "\n")
        self.mkdir(f"sys/bus/drivers/{driver}")
        self.link(f"{base}/driver", f"../../../bus/drivers/{driver}")
        self.link(f"sys/bus/pci/devices/{bdf}", f"../../../devices/pci0000:00/{bdf}")

    # -- every step --------------------------------------------------------------
    def counters(self, cpus: list[int], irqs: list[SimIrq], c: KernelCounters, effective: dict[int, int]) -> None:
        header = " " * 11 + "".join(f"CPU{cpu:<8d}" for cpu in cpus)
        rows = [header]
        for e in irqs:
            counts = "".join(f"{n % U32:10d} " for n in e.counts)
            rows.append(f"{e.irq:4d}: {counts} PCI-MSIX-{e.bdf} {e.queue}-edge      {e.action}")
        for key, values, text in (
            ("LOC", c.loc, "Local timer interrupts"),
            ("RES", c.res, "Rescheduling interrupts"),
            ("CAL", c.cal, "Function call interrupts"),  # TLB IPIs count here too on current kernels
            ("TLB", c.tlb, "TLB shootdowns"),
        ):
            rows.append(f"{key}: " + "".join(f"{n % U32:10d} " for n in values) + f"  {text}")
        rows += ["ERR:          0", "MIS:          0"]
        self.write("proc/interrupts", "\n".join(rows) + "\n")
        lines = [" " * 20 + "".join(f"CPU{cpu:<8d}" for cpu in cpus)]
        lines += [f"{v:>12}:" + "".join(f" {n % U32:10d}" for n in counts) for v, counts in c.softirqs.items()]
        self.write("proc/softirqs", "\n".join(lines) + "\n")
        self.write("proc/net/softnet_stat", "".join(
            f"{p % U32:08x} {d % U32:08x} {t % U32:08x} " + "00000000 " * 6 + "00000000 00000000 00000000 "
            + f"{cpu:08x} 00000000 00000000\n"
            for cpu, (p, d, t) in zip(cpus, c.softnet)
        ))  # fmt: skip
        lines = ["Inter-|   Receive                                                |  Transmit",
                 " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo "
                 "colls carrier compressed"]  # fmt: skip
        lines += [f"{name:>6}: {b:8d} {p:7d}    0 {d:4d}    0     0          0         0        0       0    0    0"
                  "    0     0       0          0" for name, (p, b, d) in c.netdev.items()]  # fmt: skip
        self.write("proc/net/dev", "\n".join(lines) + "\n")
        self.write("proc/net/netstat", f"TcpExt: BusyPollRxPackets\nTcpExt: {c.busy_poll_rx}\n")
        self.write("proc/diskstats", "".join(
            f" 259 {minor:7d} {name} {reads} 0 {reads * 8} 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
            for minor, (name, reads) in enumerate(c.disks.items())
        ))  # fmt: skip
        stat = [f"cpu{cpu} 0 0 0 {idle} 0 {irq} {sirq} 0 0 0" for cpu, (irq, sirq, idle) in zip(cpus, c.ticks)]
        self.write("proc/stat", "\n".join(stat) + "\n")
        for e in irqs:
            self.write(f"proc/irq/{e.irq}/effective_affinity_list", f"{effective[e.irq]}\n")
