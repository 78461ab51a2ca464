"""systemd's notify protocol without libsystemd: one datagram per message to $NOTIFY_SOCKET.

READY=1 once the first pass is done, STATUS= after every pass, WATCHDOG=1 from the loop
itself (so a hung loop trips WatchdogSec), STOPPING=1 and RELOADING=1 around SIGTERM/SIGHUP.
Without $NOTIFY_SOCKET (not under systemd) every call is a no-op.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path  # "@name": the abstract namespace
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or (pid.isdigit() and int(pid) == os.getpid())
        self.watchdog = int(usec) / 1e6 if usec.isdigit() and mine and self.address else None

    @property
    def active(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> bool:
        """Send `KEY=value` lines; False if not under systemd or the socket is gone (never raises)."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError:
            return False

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def ping(self) -> bool:
        return self.send("WATCHDOG=1")
