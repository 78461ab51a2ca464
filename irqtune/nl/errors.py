"""The error every netlink client raises, the kernel's and the simulator's alike (importing pyroute2 not needed)."""

from __future__ import annotations


class NetlinkRequestError(RuntimeError):
    """A refused request; `errno` is the kernel's (or the simulated driver's), the message has its extended ACK."""

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno
