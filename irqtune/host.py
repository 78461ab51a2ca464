"""The rooted host layer: every read (and write) of /proc and /sys goes through `Host`.

`Host(root)` stands for one machine. `root` is `/` for the real host, or a
directory that holds a fake `proc/` and `sys/` (a fixture, the simulator, a
container's view of the host). Paths are built from parts; parts that come from
the kernel (device names, IRQ numbers) are untrusted, so a part may never be empty,
`.`, `..` or contain `/` or NUL, and the resolved path (symlinks followed) must stay
inside `<root>/proc` or `<root>/sys`. Only regular files are read, so a FIFO planted
under a fake root cannot hang a command.

Netlink (ethtool coalescing and channels, netdev napi-set) goes through `host.ethtool()` and
`host.netdev()`: the running kernel's clients for `/`, none for another root, and the simulated
driver's for a simulated kernel (which overrides them), so the knob layer never asks which it has.

Readers that tolerate absence (`text`, `entries`, `has`) return None/empty for a
missing file and for a refused path; refusals are logged once and kept in
`refused`, so commands can report them as problems instead of failing.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field

TREES = ("proc", "sys")
log = logging.getLogger(__name__)


class PathEscape(ValueError):
    """A path would leave the rooted trees: refused, never read or written."""


def _check_part(part: str) -> str:
    if not isinstance(part, str) or part in ("", ".", "..") or "/" in part or "\0" in part:
        raise PathEscape(f"refused path component {part!r}")
    return part


class NoNetlink(RuntimeError):
    """This host has no netlink to talk to (a fixture tree under --root): netlink knobs do not exist here."""


@dataclass
class Host:
    """One machine's /proc and /sys, seen through `root`."""

    root: str = "/"
    refused: list[str] = field(default_factory=list)  # paths refused by the tolerant readers
    _trees: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        for tree in TREES:
            self._trees[tree] = os.path.realpath(os.path.join(self.root, tree))

    # -- building paths ----------------------------------------------------
    def path(self, tree: str, *parts: str | int) -> str:
        """Resolved path of `<root>/<tree>/<parts...>`; PathEscape if it leaves the tree."""
        if tree not in self._trees:
            raise PathEscape(f"refused tree {tree!r}: only {', '.join(TREES)}")
        return self._contained(os.path.join(self._trees[tree], *(_check_part(str(p)) for p in parts)))

    def proc(self, *parts: str | int) -> str:
        return self.path("proc", *parts)

    def sys(self, *parts: str | int) -> str:
        return self.path("sys", *parts)

    def under(self, base: str, *parts: str | int) -> str:
        """Resolved path of `parts` below a directory this host already resolved (a device dir)."""
        self._contained(base)
        return self._contained(os.path.join(base, *(_check_part(str(p)) for p in parts)))

    def parent(self, path: str) -> str:
        """The real parent directory of `path` (e.g. a virtio device's PCI function)."""
        return self._contained(os.path.dirname(os.path.realpath(path)))

    def display(self, path: str) -> str:
        """The path as a user thinks of it (`/proc/interrupts`), whatever the root."""
        for tree, real in self._trees.items():
            if path == real or path.startswith(real + os.sep):
                return "/" + tree + path[len(real) :]
        return path

    def _contained(self, path: str) -> str:
        resolved = os.path.realpath(path)
        for tree in self._trees.values():
            if resolved == tree or resolved.startswith(tree + os.sep):
                return resolved
        where = " and ".join(os.path.join(self.root, tree) for tree in TREES)
        raise PathEscape(f"refused {path}: resolves to {resolved}, outside {where}")

    # -- strict reads: raise OSError or PathEscape --------------------------
    def read_bytes(self, path: str) -> bytes:
        """Whole regular file below the root as bytes (the big /proc/interrupts parses fastest so)."""
        return self._read_resolved(self._contained(path))

    def _read_resolved(self, path: str) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{self.display(path)} is not a regular file")
            return f.read()

    def read(self, path: str) -> str:
        """Whole regular file below the root as text; undecodable bytes become U+FFFD."""
        return self.read_bytes(path).decode("utf-8", "replace")

    # -- tolerant reads: None / empty for missing, unreadable or refused ----
    def text(self, tree: str, *parts: str | int) -> str | None:
        """Stripped text of `<tree>/<parts>`, or None (a vanished IRQ, a container, a refused link)."""
        return self._tolerant(lambda: self._decode(self._read_resolved(self.path(tree, *parts))), None)

    def text_under(self, base: str, *parts: str | int) -> str | None:
        return self._tolerant(lambda: self._decode(self._read_resolved(self.under(base, *parts))), None)

    @staticmethod
    def _decode(raw: bytes) -> str:
        return raw.decode("utf-8", "replace").strip()

    def entries(self, base: str, *parts: str | int) -> list[str]:
        """Sorted names in a directory below an already-resolved `base`; [] if missing or refused."""
        return self._tolerant(lambda: sorted(os.listdir(self.under(base, *parts))), [])

    def has(self, base: str, *parts: str | int) -> bool:
        return self._tolerant(lambda: os.path.exists(self.under(base, *parts)), False)

    def link_name(self, base: str, *parts: str | int) -> str | None:
        """Last component of a symlink's target (a device's driver name), without following it."""
        link = os.path.join(self._contained(base), *(_check_part(str(p)) for p in parts))
        return self._tolerant(lambda: os.path.basename(os.readlink(link)), None)

    def _tolerant(self, read, default):
        try:
            return read()
        except PathEscape as err:
            if str(err) not in self.refused:
                self.refused.append(str(err))
                log.warning("%s", err)
            return default
        except (OSError, ValueError):
            return default

    # -- writes ------------------------------------------------------------
    def write(self, path: str, text: str) -> None:
        """Write one value to an existing file below the root (never creates one).

        Callers go through the knob layer, which journals first.
        """
        fd = os.open(self._contained(path), os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)

    # -- netlink backends ----------------------------------------------------
    def ethtool(self):
        """An ethtool netlink client (a context manager with get/set_coalesce and get/set_channels)."""
        self._netlink_here()
        from .nl.ethtool import Ethtool  # imports pyroute2 (~0.1 s) only when a netlink knob is used

        return Ethtool()

    def netdev(self):
        """A netdev netlink client (a context manager with napis, napi and set_napi)."""
        self._netlink_here()
        from .nl.netdev import Netdev

        return Netdev()

    def _netlink_here(self) -> None:
        if self.root != "/":
            raise NoNetlink(f"netlink knobs act on the running kernel, not on --root {self.root}")
