"""NVMe: interrupts or polling, and what can be changed while the system runs.

Poll queues are a module parameter (`nvme.poll_queues`): read at controller probe,
so a change needs a controller reset or module reload, never done by irqtune on a
live system. Per disk, `queue/io_poll` is read-only in effect on current kernels
(writes are ignored), and hybrid polling (`io_poll_delay` > 0) is gone since 6.4:
polling is chosen by the application (io_uring IORING_SETUP_IOPOLL / RWF_HIPRI).

Which hardware queue is polled: nvme-pci serves blk-mq hardware context N with its queue N+1
(drivers/nvme/host/pci.c, nvme_init_hctx: `&dev->queues[hctx_idx + 1]`), whose interrupt is named
`nvme<C>q<N+1>` (queue 0, the admin queue, is `nvme<C>q0`). A poll queue has no interrupt: a context
with no such row in /proc/interrupts is polled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..host import Host
from ..parse.common import CpuListError, parse_count, parse_cpulist
from ..parse.interrupts import InterruptTable, parse_interrupts

RUNTIME_NOTES = (
    "nvme.poll_queues and nvme.write_queues are read when a controller is probed: changing them needs a "
    "controller reset or a module reload (not done at run time by irqtune)",
    "queue/io_poll writes are ignored on current kernels; polled I/O is requested per I/O by the application "
    "(io_uring IORING_SETUP_IOPOLL, preadv2 RWF_HIPRI) and served by the poll queues",
    "hybrid polling (queue/io_poll_delay > 0) was removed in Linux 6.4",
)


@dataclass
class NvmeController:
    name: str
    namespaces: list[str] = field(default_factory=list)
    hw_queues: int = 0  # blk-mq hardware contexts of its first namespace
    queue_cpus: dict[int, list[int]] = field(default_factory=dict)
    io_poll: str | None = None
    io_poll_delay: str | None = None
    admin_irq: int | None = None  # queue 0
    queue_irqs: dict[int, int | None] = field(default_factory=dict)  # hardware context -> its IRQ; None: polled

    @property
    def poll_queues(self) -> list[int]:
        """Hardware contexts served by polling (no interrupt of their own)."""
        return [hctx for hctx, irq in sorted(self.queue_irqs.items()) if irq is None]


@dataclass
class NvmeReport:
    poll_queues: str | None  # module parameter, None when nvme is not loaded (or built in without it)
    write_queues: str | None
    controllers: list[NvmeController] = field(default_factory=list)
    notes: tuple[str, ...] = RUNTIME_NOTES

    def to_json(self) -> dict:
        out = asdict(self)
        for ctrl, data in zip(self.controllers, out["controllers"]):
            data["poll_queues"] = ctrl.poll_queues
        return out


def read_nvme(host: Host, interrupts: InterruptTable | None = None) -> NvmeReport:
    """The module parameters and every controller's queues; with `interrupts`, which IRQ serves each
    hardware queue and which queues are polled."""
    report = NvmeReport(
        poll_queues=host.text("sys", "module", "nvme", "parameters", "poll_queues"),
        write_queues=host.text("sys", "module", "nvme", "parameters", "write_queues"),
    )
    disks = host.entries(host.sys(), "block")
    for name in host.entries(host.sys(), "class", "nvme"):
        ctrl = NvmeController(name)
        ctrl.namespaces = [
            d for d in disks if d.startswith(name + "n") or d.startswith(name.replace("nvme", "nvme") + "c")
        ]
        if ctrl.namespaces:
            disk = ctrl.namespaces[0]
            for hctx in host.entries(host.sys(), "block", disk, "mq"):
                number = parse_count(hctx)
                try:
                    if number is not None:
                        ctrl.queue_cpus[number] = parse_cpulist(
                            host.text("sys", "block", disk, "mq", hctx, "cpu_list") or ""
                        )
                except CpuListError:
                    continue
            ctrl.hw_queues = len(ctrl.queue_cpus)
            ctrl.io_poll = host.text("sys", "block", disk, "queue", "io_poll")
            ctrl.io_poll_delay = host.text("sys", "block", disk, "queue", "io_poll_delay")
        if interrupts is not None:
            _queue_irqs(ctrl, interrupts)
        report.controllers.append(ctrl)
    return report


def read_nvme_queues(host: Host) -> NvmeReport:
    """read_nvme with the queue map from /proc/interrupts (left out when that is unreadable)."""
    try:
        interrupts = parse_interrupts(host.read(host.proc("interrupts")))
    except OSError:
        interrupts = None
    return read_nvme(host, interrupts)


def _queue_irqs(ctrl: NvmeController, interrupts: InterruptTable) -> None:
    by_action = {action: row.irq for row in interrupts.rows.values() if row.irq is not None for action in row.actions}
    ctrl.admin_irq = by_action.get(f"{ctrl.name}q0")
    if ctrl.admin_irq is None:  # not this driver's naming (nvme over fabrics, another bus): nothing to map
        return
    ctrl.queue_irqs = {hctx: by_action.get(f"{ctrl.name}q{hctx + 1}") for hctx in ctrl.queue_cpus}
