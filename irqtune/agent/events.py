"""Events that should not wait for the next periodic pass: links going up or down, devices appearing
or leaving (rtnetlink RTMGRP_LINK), and CPUs going on- or offline (seen between passes).

A link flap resets IRQ affinity on some drivers and a new device has none yet, so either
makes the agent place again at once. Without rtnetlink (a sandbox) the watcher is inert and the
periodic pass remains the backstop. The socket is a plain one (nl/raw.py): pyroute2 would double the
agent's resident memory.
"""

from __future__ import annotations

import logging
import select

from ..nl.raw import LinkEvents

log = logging.getLogger("irqtune.agent")

RTMGRP_LINK = 1


class LinkWatcher:
    """Wakes the loop's sleep on rtnetlink link messages; `drain()` says what happened."""

    def __init__(self) -> None:
        self.sock: LinkEvents | None = None
        try:
            self.sock = LinkEvents()
        except OSError as err:  # no rtnetlink here: periodic passes only
            log.info("link events unavailable (%s): periodic passes only", err)

    def fileno(self) -> int | None:
        return self.sock.fileno() if self.sock else None

    def wait(self, timeout: float, wake: int | None = None) -> bool:
        """True when a link message arrived within `timeout` seconds; `wake` (a signal's descriptor,
        Signals.wake_fd) ends the wait early too, returning False."""
        fd = self.fileno()
        if fd is None:
            return False
        readable, _, _ = select.select([fd] if wake is None else [fd, wake], [], [], timeout)
        return fd in readable

    def drain(self) -> list[str]:
        """What changed, as 'NAME up', 'NAME down', 'NAME removed' (names are the kernel's, untrusted)."""
        out = []
        while self.sock and self.wait(0):
            try:
                events = self.sock.read()
            except OSError as err:  # the socket failed: report what was read; the periodic pass goes on
                log.info("link events: %s", err)
                break
            out += [f"{name[:15]!r} {what}" for name, what in events]
        return out

    def close(self) -> None:
        if self.sock:
            self.sock.close()
            self.sock = None
