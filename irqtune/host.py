"""The rooted host layer: every read (and write) of /proc and /sys goes through `Host`.

`Host(root)` stands for one machine. `root` is `/` for the real host, or a
directory that holds a fake `proc/` and `sys/` (a fixture, the simulator).
Paths are built from parts; parts that come from the kernel (device names,
IRQ numbers) are untrusted, so a part may never be empty, `.`, `..` or contain
`/` or NUL, and the resolved path (symlinks followed) must stay inside
`<root>/proc`, `<root>/sys` or the state directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

TREES = ("proc", "sys")


class PathEscape(ValueError):
    """A path would leave the rooted trees: refused, never read or written."""


def _check_part(part: str) -> str:
    if not isinstance(part, str) or part in ("", ".", "..") or "/" in part or "\0" in part:
        raise PathEscape(f"refused path component {part!r}")
    return part


@dataclass
class Host:
    """One machine's /proc and /sys, seen through `root`."""

    root: str = "/"
    _trees: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        for tree in TREES:
            self._trees[tree] = os.path.realpath(os.path.join(self.root, tree))

    @classmethod
    def from_env(cls, root: str | None = None) -> Host:
        """`--root` wins, then `IRQTUNE_ROOT`, then `/`."""
        return cls(root or os.environ.get("IRQTUNE_ROOT") or "/")

    @property
    def is_real(self) -> bool:
        return self.root == "/"

    def path(self, tree: str, *parts: str | int) -> str:
        """Absolute path of `<root>/<tree>/<parts...>`, checked to stay inside the tree."""
        if tree not in self._trees:
            raise PathEscape(f"refused tree {tree!r}: only {', '.join(TREES)}")
        path = os.path.join(self._trees[tree], *(_check_part(str(p)) for p in parts))
        return self._contained(path, self._trees[tree])

    def proc(self, *parts: str | int) -> str:
        return self.path("proc", *parts)

    def sys(self, *parts: str | int) -> str:
        return self.path("sys", *parts)

    def display(self, path: str) -> str:
        """The path as a user thinks of it (`/proc/interrupts`), whatever the root."""
        for tree, real in self._trees.items():
            if path == real or path.startswith(real + os.sep):
                return "/" + tree + path[len(real) :]
        return path

    @staticmethod
    def _contained(path: str, tree: str) -> str:
        resolved = os.path.realpath(path)
        if resolved != tree and not resolved.startswith(tree + os.sep):
            raise PathEscape(f"refused {path}: resolves to {resolved}, outside {tree}")
        return resolved

    def resolve_parent(self, path: str) -> str:
        """The real parent directory of `path` (e.g. a virtio device's PCI function)."""
        parent = os.path.dirname(os.path.realpath(path))
        for tree in self._trees.values():
            if parent == tree or parent.startswith(tree + os.sep):
                return parent
        raise PathEscape(f"refused parent of {path}: outside the rooted trees")

    # -- reads -------------------------------------------------------------
    @staticmethod
    def read(path: str) -> str:
        """Whole file as text. Raises OSError (FileNotFoundError, PermissionError...)."""
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()

    @staticmethod
    def read_bytes(path: str) -> bytes:
        """Whole file as bytes (the big /proc/interrupts of large hosts parses fastest as bytes)."""
        with open(path, "rb") as f:
            return f.read()

    def read_or_none(self, path: str) -> str | None:
        """Text, or None when the file is missing or unreadable (a vanished IRQ, a container)."""
        try:
            return self.read(path).strip()
        except OSError:
            return None

    @staticmethod
    def listdir(path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    @staticmethod
    def exists(path: str) -> bool:
        return os.path.exists(path)

    @staticmethod
    def basename_of_link(path: str) -> str | None:
        """Last component of a symlink target (e.g. a device's driver name)."""
        try:
            return os.path.basename(os.readlink(path))
        except OSError:
            return None

    # -- writes ------------------------------------------------------------
    @staticmethod
    def write(path: str, text: str) -> None:
        """Write one value. Callers go through the knob layer, which journals first."""
        with open(path, "w", encoding="ascii") as f:
            f.write(text)
