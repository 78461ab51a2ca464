"""NVMe: interrupts or polling, and what can be changed while the system runs.

Poll queues are a module parameter (`nvme.poll_queues`): read at controller probe,
so a change needs a controller reset or module reload, never done by irqtune on a
live system. Per disk, `queue/io_poll` is read-only in effect on current kernels
(writes are ignored), and hybrid polling (`io_poll_delay` > 0) is gone since 6.4:
polling is chosen by the application (io_uring IORING_SETUP_IOPOLL / RWF_HIPRI).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..host import Host
from ..parse.common import CpuListError, parse_count, parse_cpulist

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


@dataclass
class NvmeReport:
    poll_queues: str | None  # module parameter, None when nvme is not loaded (or built in without it)
    write_queues: str | None
    controllers: list[NvmeController] = field(default_factory=list)
    notes: tuple[str, ...] = RUNTIME_NOTES

    def to_json(self) -> dict:
        return asdict(self)


def read_nvme(host: Host) -> NvmeReport:
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
        report.controllers.append(ctrl)
    return report
