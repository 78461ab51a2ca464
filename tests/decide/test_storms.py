"""Interrupt storms by what they cost: a high rate is a storm only when its interrupts bring little work."""

from __future__ import annotations

from irqtune.findings import Finding, Measurements, Thresholds, check_storms
from irqtune.host import Host
from irqtune.measure.inventory import Device, Inventory, IrqInfo
from irqtune.measure.rates import Rates, RowRate
from irqtune.measure.topology import read_topology
from irqtune.probe.base import Histogram
from irqtune.probe.runner import ProbeResult
from irqtune.status import irq_none_counts

CPUS = [0, 1, 2, 3]


def irq(number: int, device: str | None, kind: str | None, role: str | None = "rxtx", actions=None) -> IrqInfo:
    queue = number % 4 if device else None
    return IrqInfo(number, tuple(actions or [f"{device}-q{number}"]), "PCI-MSIX", device, kind, role, queue)


def storms(irqs: list[tuple[IrqInfo, dict[int, float]]], irq_none=None, devices=(), **rates) -> list[Finding]:
    """check_storms over one window: each IRQ's interrupts/s per CPU, and the other rates as given."""
    window = Rates(interval=1.0, cpus=CPUS, **rates)
    for info, per_cpu in irqs:
        window.interrupts[str(info.irq)] = RowRate(str(info.irq), per_cpu, sum(per_cpu.values()))
    inventory = Inventory(devices=list(devices), irqs={info.irq: info for info, _ in irqs})
    topology = read_topology(Host("/nonexistent"), fallback_online=CPUS)
    probed = {"irq_none": irq_none} if irq_none is not None else {}
    return list(check_storms(Measurements(topology, inventory, window, **probed), Thresholds()))


def test_healthy_nvme_at_a_million_iops_is_no_storm():
    """Four queues at 250k interrupts/s, one per completed I/O: the rate is the work, not a storm."""
    queues = [(irq(40 + q, "nvme0", "nvme", "io"), {q: 250_000.0}) for q in range(4)]
    assert storms(queues, block={"nvme0n1": 1_000_000.0, "nvme0n1p1": 1_000_000.0, "sda": 0.0}) == []


def test_nvme_interrupts_far_above_its_completions_are_a_storm():
    found = storms([(irq(41, "nvme0", "nvme", "io"), {1: 200_000.0})], block={"nvme0n1": 50_000.0, "nvme1n1": 9e6})
    assert [f.message for f in found] == [
        "interrupt storm on IRQ 41 (nvme0 io 1): 200,000/s bringing 0.25 I/Os each (nvme0 diskstats: 50,000 I/Os/s)"
    ]
    multipath = storms([(irq(41, "nvme0", "nvme", "io"), {1: 200_000.0})], block={"nvme2c0n1": 400_000.0})
    assert multipath == []  # a multipath path device of controller 0 counts for it


def test_the_work_of_every_device_on_the_irqs_function_counts():
    """Disks behind one HBA (the inventory gives its IRQ to the first) and the ports of one NIC share its IRQs."""
    hba = [Device("sda", "block", bus_id="0000:03:00.0"), Device("sdb", "block", bus_id="0000:03:00.0")]
    busy = storms([(irq(60, "sda", "block", "io"), {1: 250_000.0})], devices=hba, block={"sda": 0.0, "sdb": 3e5})
    assert busy == []
    ports = [Device("eth0", "nic", bus_id="0000:81:00.0"), Device("eth1", "nic", bus_id="0000:81:00.0")]
    netdev = {"eth0": {"rx_packets": 0.0, "tx_packets": 0.0}, "eth1": {"rx_packets": 9e6, "tx_packets": 0.0}}
    assert storms([(irq(50, "eth0", "nic"), {2: 150_000.0})], devices=ports, netdev=netdev) == []
    alone = storms([(irq(50, "eth0", "nic"), {2: 150_000.0})], devices=ports[:1], netdev=netdev)
    assert [f.irq for f in alone] == [50]


def test_nic_at_500k_interrupts_with_64_packets_each_is_no_storm():
    nic = [(irq(50, "eth0", "nic"), {2: 500_000.0})]
    assert storms(nic, netdev={"eth0": {"rx_packets": 32e6, "tx_packets": 0.0}}, irq_time={2: 0.3}) == []
    assert storms(nic, softnet={2: {"processed": 32e6}}) == []  # another namespace's NIC: its CPU's packets


def test_a_device_doing_nothing_useful_at_200k_is_a_storm():
    nic, disk = irq(50, "eth0", "nic"), irq(36, "vda", "block", "io")
    found = storms(
        [(nic, {2: 200_000.0}), (disk, {1: 200_000.0})],
        netdev={"eth0": {"rx_packets": 0.0, "tx_packets": 0.0}},
        softnet={2: {"processed": 0.0}},
        block={"vda": 0.0},
    )
    assert sorted(f.message for f in found) == [
        "interrupt storm on IRQ 36 (vda io 0): 200,000/s bringing 0.00 I/Os each (vda diskstats: 0 I/Os/s)",
        "interrupt storm on IRQ 50 (eth0 rxtx 2): 200,000/s bringing 0.00 packets each (eth0: 0 packets/s)",
    ]
    assert {f.irq for f in found} == {36, 50} and {f.severity for f in found} == {"critical"}


def test_a_nic_at_one_packet_per_interrupt_storms_only_when_it_costs_its_cpu():
    nic = [(irq(50, "eth0", "nic"), {1: 300_000.0})]
    netdev = {"eth0": {"rx_packets": 300_000.0, "tx_packets": 0.0}}
    assert storms(nic, netdev=netdev, irq_time={1: 0.03}, softirq_time={1: 0.05}) == []  # cheap interrupts
    found = storms(nic, netdev=netdev, irq_time={1: 0.2}, softirq_time={1: 0.7})
    assert [f.message for f in found] == [
        "interrupt storm on IRQ 50 (eth0 rxtx 2): 300,000/s bringing 1.00 packets each "
        "(eth0: 300,000 packets/s; CPU 1 90% in hard+soft IRQ)"
    ]


def test_unclaimed_interrupts_are_a_storm_whatever_the_device_does():
    """IRQ_NONE from the hardirq probe: a line whose interrupts no handler claims; on a shared line the other
    actions' IRQ_NONE for an interrupt one of them claimed is normal."""
    nic = irq(50, "eth0", "nic")
    netdev = {"eth0": {"rx_packets": 32e6, "tx_packets": 0.0}}
    found = storms([(nic, {2: 150_000.0})], irq_none={50: (30_000, 120_000)}, netdev=netdev)
    assert [f.message for f in found] == [
        "interrupt storm on IRQ 50 (eth0 rxtx 2): 150,000/s, 80% of them claimed by no handler (IRQ_NONE)"
    ]
    shared = irq(16, None, None, None, actions=["ehci_hcd:usb1", "i801_smbus"])
    assert storms([(shared, {0: 150_000.0})], irq_none={16: (150_000, 150_000)}) == []


def test_an_irq_nothing_measures_keeps_a_higher_rate_threshold():
    """No device class (or no counters for it): 150k/s is not enough; 250k/s is, with its CPU's share shown."""
    other = irq(9, None, None, None, actions=["acpi"])
    assert storms([(other, {0: 150_000.0})], irq_time={0: 0.4}) == []
    found = storms([(other, {0: 250_000.0})], irq_time={0: 0.4})
    assert [f.message for f in found] == [
        "interrupt storm on IRQ 9 (acpi): 250,000/s (no measure of the work it brings; CPU 0 40% in hard+soft IRQ)"
    ]
    nvme_without_diskstats = [(irq(41, "nvme0", "nvme", "io"), {1: 180_000.0})]
    assert storms(nvme_without_diskstats) == []


def test_status_takes_irq_none_from_the_hardirq_probe():
    """`status` runs the hardirq probe over its window: its handled and IRQ_NONE returns reach check_storms."""
    data = {"irqs": {50: Histogram(count=30_000)}, "unhandled": {50: 120_000, 51: 5}}
    assert irq_none_counts({"hardirq": ProbeResult("hardirq", "ok", data=data)}) == {50: (30_000, 120_000), 51: (0, 5)}
    assert irq_none_counts({"hardirq": ProbeResult("hardirq", "failed", "no BTF")}) is None
    assert irq_none_counts({}) is None
