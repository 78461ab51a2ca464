"""The rooted host layer: every read (and write) of /proc and /sys goes through `Host`.

`Host(root)` stands for one machine. `root` is `/` for the real host, or a
directory that holds a fake `proc/` and `sys/` (a fixture, the simulator, a
container's view of the host). Paths are built from parts; parts that come from
the kernel (device names, IRQ numbers) are untrusted, so a part may never be empty,
`.`, `..` or contain `/` or NUL, and the resolved path (symlinks followed) must stay
inside `<root>/proc` or `<root>/sys`. Files are opened relative to a cached fd of each tree
and resolved by the kernel in the same step (fileio.open_beneath: openat2 RESOLVE_BENEATH), so
a symlink swapped in after a check cannot steer a write outside (issue 16). Only regular files
are read, so a FIFO planted under a fake root cannot hang a command.

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
import weakref
from dataclasses import dataclass, field

from .fileio import LIMITS, Escaped, check_regular, open_beneath, read_fd

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
    _fds: dict[str, int] = field(default_factory=dict, init=False, repr=False)  # each tree's directory, opened once
    _foreign_netns: bool | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        for tree in TREES:
            self._trees[tree] = os.path.realpath(os.path.join(self.root, tree))
        weakref.finalize(self, _close_all, self._fds)

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

    # -- opening beneath a tree ----------------------------------------------
    def _tree_fd(self, tree: str) -> int:
        """The tree's directory fd, opened on first use and kept (one open per file read, not two)."""
        fd = self._fds.get(tree)
        if fd is None:
            fd = os.open(self._trees[tree], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            kept = self._fds.setdefault(tree, fd)  # two threads may race here: one fd is kept
            if kept != fd:
                os.close(fd)
            fd = kept
        return fd

    def _split(self, path: str) -> tuple[str, str]:
        """(tree, path relative to it) for a path below a tree; realpath only for one spelled another way."""
        for candidate in (path, os.path.realpath(path)):
            for tree, real in self._trees.items():
                if candidate == real:
                    return tree, "."
                if candidate.startswith(real + os.sep):
                    return tree, candidate[len(real) + 1 :]
        raise self._escape(path)

    def _escape(self, path: str, detail: str = "") -> PathEscape:
        where = " and ".join(os.path.join(self.root, tree) for tree in TREES)
        return PathEscape(f"refused {path}: resolves outside {where}" + (f" ({detail})" if detail else ""))

    def _open_in(self, tree: str, rel: str, flags: int) -> int:
        try:
            return open_beneath(self._tree_fd(tree), rel, flags)
        except Escaped as err:
            detail = "" if err.strerror == Escaped.OUTSIDE else err.strerror
            raise self._escape(os.path.join(self._trees[tree], rel), detail) from None

    def _open(self, path: str, flags: int) -> int:
        return self._open_in(*self._split(path), flags)

    def _read_in(self, tree: str, rel: str) -> bytes:
        fd = self._open_in(tree, rel, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # the path is built for the message only then
                check_regular(fd, self.display(os.path.join(self._trees[tree], rel)))
            return read_fd(fd)
        finally:
            os.close(fd)

    # -- strict reads: raise OSError or PathEscape --------------------------
    def read_bytes(self, path: str) -> bytes:
        """Whole regular file below the root as bytes (the big /proc/interrupts parses fastest so)."""
        return self._read_in(*self._split(path))

    def read(self, path: str) -> str:
        """Whole regular file below the root as text; undecodable bytes become U+FFFD."""
        return self.read_bytes(path).decode("utf-8", "replace")

    def read_at(self, tree: str, *parts: str | int) -> bytes:
        """Strict read of `<tree>/<parts>` resolved by the kernel beneath the tree (no realpath per call: a knob
        read every pass costs one open). OSError or PathEscape."""
        return self._read_in(*self._relative(tree, parts))

    def exists_at(self, tree: str, *parts: str | int) -> bool:
        """`<tree>/<parts>` exists beneath the tree; False if missing, unreadable or refused."""
        return self._tolerant(lambda: self._exists(*self._relative(tree, parts)), False)

    def open_beneath_root(self, path: str, flags: int) -> int:
        """A file descriptor of `path` (absolute, as on the host) opened beneath the root in one step, as the trees'
        files are: a symlink cannot lead out. OSError or PathEscape; the caller closes it."""
        rel = "/".join(_check_part(p) for p in path.split("/") if p)
        root = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return open_beneath(root, rel or ".", flags)
        except Escaped as err:
            raise PathEscape(f"refused {path}: resolves outside {self.root} ({err.strerror})") from None
        finally:
            os.close(root)

    def read_beneath_root(self, path: str, kind: str) -> bytes:
        """A regular file elsewhere below the root (the kubelet's checkpoint under /var/lib), at most LIMITS[kind]
        bytes: opened beneath the root in one step as the trees are, so a DaemonSet's `--root /host` reads the
        node's file and a symlink cannot lead out. OSError or PathEscape."""
        fd = self.open_beneath_root(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            check_regular(fd, path, LIMITS[kind])
            return read_fd(fd, LIMITS[kind], path)
        finally:
            os.close(fd)

    # -- tolerant reads: None / empty for missing, unreadable or refused ----
    def text(self, tree: str, *parts: str | int) -> str | None:
        """Stripped text of `<tree>/<parts>`, or None (a vanished IRQ, a container, a refused link)."""
        return self._tolerant(lambda: self._decode(self._read_in(*self._relative(tree, parts))), None)

    def text_under(self, base: str, *parts: str | int) -> str | None:
        return self._tolerant(lambda: self._decode(self._read_in(*self._below(base, parts))), None)

    def _relative(self, tree: str, parts: tuple[str | int, ...]) -> tuple[str, str]:
        """(tree, rel) of checked parts, unresolved: the kernel resolves them beneath the tree (no realpath)."""
        if tree not in self._trees:
            raise PathEscape(f"refused tree {tree!r}: only {', '.join(TREES)}")
        return tree, "/".join(_check_part(str(p)) for p in parts) or "."

    def _below(self, base: str, parts: tuple[str | int, ...]) -> tuple[str, str]:
        tree, rel = self._split(base)
        return tree, "/".join((rel, *(_check_part(str(p)) for p in parts)))

    @staticmethod
    def _decode(raw: bytes) -> str:
        return raw.decode("utf-8", "replace").strip()

    def entries(self, base: str, *parts: str | int) -> list[str]:
        """Sorted names in a directory below an already-resolved `base`; [] if missing or refused."""
        return self._tolerant(lambda: self._listdir(*self._below(base, parts)), [])

    def _listdir(self, tree: str, rel: str) -> list[str]:
        fd = self._open_in(tree, rel, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def has(self, base: str, *parts: str | int) -> bool:
        return self._tolerant(lambda: self._exists(*self._below(base, parts)), False)

    def _exists(self, tree: str, rel: str) -> bool:
        os.close(self._open_in(tree, rel, os.O_PATH))
        return True

    def link_name(self, base: str, *parts: str | int) -> str | None:
        """Last component of a symlink's target (a device's driver name), without following it."""
        return self._tolerant(lambda: os.path.basename(self._readlink(*self._below(base, parts))), None)

    def _readlink(self, tree: str, rel: str) -> str:
        directory, _, name = rel.rpartition("/")
        fd = self._open_in(tree, directory or ".", os.O_PATH | os.O_DIRECTORY)
        try:
            return os.readlink(name, dir_fd=fd)
        finally:
            os.close(fd)

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
        """Write one value to an existing regular file below the root (never creates one).

        Resolved and opened in one step beneath the tree, so a symlink swapped in after `path` was
        checked cannot send the write elsewhere. Callers go through the knob layer, which journals first.
        """
        fd = self._open(path, os.O_WRONLY | os.O_TRUNC | os.O_NONBLOCK)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            check_regular(fd, self.display(path))
            f.write(text)

    # -- namespaces ----------------------------------------------------------
    def foreign_netns(self) -> bool:
        """True when this process's network namespace is not PID 1's (`ip netns exec`): IRQ affinity is
        host-wide whatever the namespace. False when either link cannot be read (not root, a fake tree)."""
        if self._foreign_netns is None:
            mine, init = (self._tolerant(lambda pid=pid: self._readlink("proc", f"{pid}/ns/net"), None)
                          for pid in ("self", "1"))  # fmt: skip
            self._foreign_netns = bool(mine and init and mine != init)
        return self._foreign_netns

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


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()
