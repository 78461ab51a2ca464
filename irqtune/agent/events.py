"""Events that should not wait for the next periodic pass: links going up or down, devices appearing
or leaving (rtnetlink RTMGRP_LINK), and CPUs going on- or offline (seen between passes).

A link flap resets IRQ affinity on some drivers and a new device has none yet, so either
makes the agent place again at once. Without rtnetlink (no pyroute2, a sandbox) the watcher
is inert and the periodic pass remains the backstop.
"""

from __future__ import annotations

import logging
import select

log = logging.getLogger("irqtune.agent")

RTMGRP_LINK = 1


class LinkWatcher:
    """Wakes the loop's sleep on rtnetlink link messages; `drain()` says what happened."""

    def __init__(self) -> None:
        self.sock = None
        try:
            from pyroute2 import IPRoute

            sock = IPRoute()
            sock.bind(groups=RTMGRP_LINK)
            self.sock = sock
        except (ImportError, OSError) as err:  # no pyroute2, or no rtnetlink here: periodic passes only
            log.info("link events unavailable (%s): periodic passes only", err)

    def fileno(self) -> int | None:
        return self.sock.fileno() if self.sock else None

    def wait(self, timeout: float) -> bool:
        """True when a link message arrived within `timeout` seconds."""
        fd = self.fileno()
        if fd is None:
            return False
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)

    def drain(self) -> list[str]:
        """What changed, as 'NAME up', 'NAME down', 'NAME removed' (names are the kernel's, untrusted)."""
        out = []
        while self.sock and self.wait(0):
            try:
                messages = self.sock.get()
            except OSError as err:  # the socket failed: report what was read; the periodic pass goes on
                log.info("link events: %s", err)
                break
            for msg in messages:
                name = str(msg.get_attr("IFLA_IFNAME") or "?")[:15]
                if msg["event"] == "RTM_DELLINK":
                    out.append(f"{name!r} removed")
                else:
                    out.append(f"{name!r} {'up' if msg['flags'] & 1 else 'down'}")
        return out

    def close(self) -> None:
        if self.sock:
            self.sock.close()
            self.sock = None
