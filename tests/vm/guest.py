"""Fixtures and helpers for the guest tests (tests/vm/guest_*.py), loaded with `pytest -p guest` inside a
guest that tests/vm/bench.py booted. Nothing here runs on the host.

The guest has two e1000e NICs on one QEMU hub. The one with MAC ...:01 sends: it is moved into a network
namespace, so that packets cross the emulated wire; the one with MAC ...:02 receives and stays in the root
namespace, where irqtune (in this pytest process) sees it, its IRQs and its coalescing. Load comes from a
forked child that joins the sender's namespace (setns) and sends UDP datagrams until stopped; no new Python
has to start (an interpreter start costs tens of seconds under TCG).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

SENDER_MAC, RECEIVER_MAC = "52:54:00:12:34:01", "52:54:00:12:34:02"
NAMESPACE = "irqtvm"
SENDER_IP, RECEIVER_IP = "10.214.0.1", "10.214.0.2"
PORT = 9999
CLONE_NEWNET = 0x40000000


def pytest_configure(config) -> None:
    """Guest tests carry `vm` (pytestmark); the ones that need the isolated boot also carry `isolated`."""
    config.addinivalue_line("markers", "isolated: needs the boot with isolcpus/nohz_full (CPU 3)")
    config.addinivalue_line("markers", "probe: compiles eBPF probes in the guest (minutes under TCG)")


def out_dir() -> Path:
    return Path(os.environ.get("IRQTUNE_VM_OUT", "/tmp/irqtune-vm"))


@pytest.fixture(scope="session")
def record():
    """record(key, value): a measurement for the host's report (measurements.json in the shared directory)."""
    path = out_dir() / "measurements.json"

    def put(key: str, value) -> None:
        data = json.loads(path.read_text()) if path.exists() else {}
        data[key] = value
        path.write_text(json.dumps(data, indent=1, sort_keys=True))

    return put


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, check=check, capture_output=True, text=True).stdout


def netdevs_by_driver(driver: str) -> dict[str, str]:
    """MAC -> interface name of every interface in this namespace bound to `driver`."""
    out = {}
    for dev in Path("/sys/class/net").iterdir():
        bound = dev / "device" / "driver"
        if bound.exists() and bound.resolve().name == driver:
            out[(dev / "address").read_text().strip()] = dev.name
    return out


@dataclass(frozen=True)
class Wire:
    sender: str  # interface name, inside NAMESPACE
    receiver: str  # interface name, root namespace

    def irq(self, role: str = "rx") -> int:
        """The receiver's IRQ whose action is DEV-rx-0 (or DEV-tx-0)."""
        return irq_named(f"{self.receiver}-{role}-0")


def irq_named(action: str) -> int:
    for line in Path("/proc/interrupts").read_text().splitlines():
        head, _, rest = line.partition(":")
        if head.strip().isdigit() and rest.split() and rest.split()[-1] == action:
            return int(head)
    raise LookupError(f"no IRQ named {action}")


def irq_count(irq: int) -> int:
    for line in Path("/proc/interrupts").read_text().splitlines():
        head, _, rest = line.partition(":")
        if head.strip() == str(irq):
            return sum(int(f) for f in rest.split() if f.isdigit())
    raise LookupError(f"IRQ {irq} is gone")


def rx_packets(dev: str) -> int:
    return int(Path(f"/sys/class/net/{dev}/statistics/rx_packets").read_text())


@pytest.fixture(scope="session")
def wire() -> Iterator[Wire]:
    """The two e1000e, wired: the sender in NAMESPACE, the receiver up in the root namespace with an address
    and a UDP socket that is never read (datagrams end there as receive-buffer drops, no ICMP replies)."""
    nics = netdevs_by_driver("e1000e")
    assert SENDER_MAC in nics and RECEIVER_MAC in nics, f"two e1000e expected, found {nics}"
    sender, receiver = nics[SENDER_MAC], nics[RECEIVER_MAC]
    sh("ip", "netns", "add", NAMESPACE)
    sh("ip", "link", "set", sender, "netns", NAMESPACE)
    sh("ip", "-n", NAMESPACE, "addr", "add", f"{SENDER_IP}/24", "dev", sender)
    sh("ip", "-n", NAMESPACE, "link", "set", sender, "up")
    sh("ip", "addr", "add", f"{RECEIVER_IP}/24", "dev", receiver)
    sh("ip", "link", "set", receiver, "up")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind((RECEIVER_IP, PORT))
    _wait_for_link(receiver)
    try:
        yield Wire(sender, receiver)
    finally:
        sink.close()
        sh("ip", "netns", "del", NAMESPACE, check=False)


def _wait_for_link(dev: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(f"/sys/class/net/{dev}/operstate").read_text().strip() == "up":
            return
        time.sleep(0.2)
    raise AssertionError(f"{dev}: no link after {timeout:g} s")


@contextmanager
def udp_load(wire: Wire, size: int = 64) -> Iterator[None]:
    """UDP datagrams from the sender's namespace to the receiver, as fast as one forked child sends them."""
    pid = os.fork()
    if pid == 0:  # the child: join the namespace, send until killed
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{NAMESPACE}", os.O_RDONLY)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                os._exit(3)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            payload = b"x" * size
            while True:
                try:
                    s.sendto(payload, (RECEIVER_IP, PORT))
                except OSError:
                    time.sleep(0.001)  # the qdisc is full: wait for the wire
        finally:
            os._exit(0)
    try:
        time.sleep(1.0)  # ARP and the first packets
        yield
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def interrupts_per_packet(wire: Wire, seconds: float) -> tuple[float, float, float]:
    """(interrupts/s, packets/s, interrupts per packet) on the receiver's rx IRQ over `seconds` of load."""
    irq = wire.irq("rx")
    i0, p0, t0 = irq_count(irq), rx_packets(wire.receiver), time.monotonic()
    time.sleep(seconds)
    i1, p1, t1 = irq_count(irq), rx_packets(wire.receiver), time.monotonic()
    elapsed, packets = t1 - t0, p1 - p0
    return (i1 - i0) / elapsed, packets / elapsed, (i1 - i0) / packets if packets else float("inf")


def ethtool_rx_usecs(dev: str) -> int:
    """rx-usecs as ethtool (the independent tool, not irqtune) reports it."""
    for line in sh("ethtool", "-c", dev).splitlines():
        if line.startswith("rx-usecs:"):
            return int(line.split(":")[1])
    raise LookupError(f"ethtool -c {dev} shows no rx-usecs")


def affinities() -> dict[int, str]:
    """IRQ -> smp_affinity_list, for every IRQ that has one."""
    out = {}
    for d in Path("/proc/irq").iterdir():
        if d.name.isdigit():
            with suppress(OSError):
                out[int(d.name)] = (d / "smp_affinity_list").read_text().strip()
    return out


def agent_in_child(state: Path, config: str, output: Path, passes: int = 100) -> int:
    """`irqtune run --json` in a forked child (the parent's imports are already done: a new interpreter costs
    tens of seconds under TCG), one JSON pass report per line into `output`. Returns the child's pid."""
    from irqtune.cli import main  # the guest's irqtune, imported once by the parent

    output.touch()
    pid = os.fork()
    if pid == 0:
        try:
            sys.stdout = open(output, "w", buffering=1)  # noqa: SIM115  (pytest's capture replaced sys.stdout)
            main(["--state-dir", str(state), "run", "--config", config, "--passes", str(passes), "--json"],
                 standalone_mode=False)  # fmt: skip
        finally:
            sys.stdout.flush()
            os._exit(0)
    return pid


def follow(output: Path, timeout: float) -> Iterator[dict]:
    """The pass reports the agent writes to `output`, as they come, until `timeout` seconds have passed."""
    deadline, offset, pending = time.monotonic() + timeout, 0, ""
    while time.monotonic() < deadline:
        with open(output) as f:
            f.seek(offset)
            chunk = f.read()
            offset = f.tell()
        pending += chunk
        *lines, pending = pending.split("\n")
        for line in lines:
            if line.startswith("{"):
                yield json.loads(line)
        if not chunk:
            time.sleep(0.2)


def stop(pid: int, sig: int = signal.SIGTERM) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, sig)
    os.waitpid(pid, 0)
