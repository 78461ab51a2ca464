"""Throwaway network namespaces joined by a veth pair, deleted afterwards even on failure.

Test scaffolding only: it drives iproute2 and ethtool with argument lists. The
host's own interfaces are never touched; everything lives in the two namespaces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VethPair:
    sender_ns: str
    receiver_ns: str
    sender: str
    receiver: str
    sender_ip: str = "10.213.0.1"
    receiver_ip: str = "10.213.0.2"

    def run(self, ns: str, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, text=True)

    def spawn(self, ns: str, code: str) -> subprocess.Popen:
        """A Python process inside a namespace."""
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code])


def can_make_namespaces() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "ethtool"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (iproute2, ethtool)"
    return None


def irqtune_in(ns: str, state_dir: Path | str) -> Callable[..., subprocess.CompletedProcess]:
    """`irqtune --state-dir STATE_DIR ARGS...` in namespace `ns` (the entry point installed beside sys.executable),
    output captured, never raising on a non-zero exit."""
    exe = os.path.join(os.path.dirname(sys.executable), "irqtune")

    def irqtune(*args: str) -> subprocess.CompletedProcess:
        argv = ["ip", "netns", "exec", ns, exe, "--state-dir", str(state_dir), *args]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    return irqtune


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)


@contextmanager
def veth_pair(gro: bool = True, queues: int = 1) -> Iterator[VethPair]:
    tag = f"irqt{os.getpid() % 100000}"
    pair = VethPair(f"{tag}s", f"{tag}r", f"{tag}a", f"{tag}b")
    made: list[str] = []
    try:
        for ns in (pair.sender_ns, pair.receiver_ns):
            _ip("netns", "add", ns)
            made.append(ns)
        q = ("numrxqueues", str(queues), "numtxqueues", str(queues))
        _ip("link", "add", pair.sender, "netns", pair.sender_ns, *q, "type", "veth",
            "peer", "name", pair.receiver, "netns", pair.receiver_ns, *q)  # fmt: skip
        for ns, dev, addr in ((pair.sender_ns, pair.sender, pair.sender_ip),
                              (pair.receiver_ns, pair.receiver, pair.receiver_ip)):  # fmt: skip
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            if gro:
                pair.run(ns, "ethtool", "-K", dev, "gro", "on")
        yield pair
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


TCP_SINK = """
import socket
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(({ip!r}, 5201))
listener.listen(1)
conn, _ = listener.accept()
while conn.recv(1 << 16):
    pass
"""

TCP_SOURCE = """
import socket, time
for _ in range(50):
    try:
        sock = socket.create_connection(({ip!r}, 5201))
        break
    except OSError:
        time.sleep(0.1)
end = time.monotonic() + {seconds}
block = b"x" * 65536
while time.monotonic() < end:
    sock.sendall(block)
"""
