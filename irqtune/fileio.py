"""Opening files that someone else may control: beneath a directory, regular files only, bounded sizes.

Checking a path and then opening it by name loses a race to anyone who can swap in a symlink between
the two (issue 16: a `set` overwrote a file outside --root). `open_beneath` resolves and opens in one
step relative to a directory fd: openat2 with RESOLVE_BENEATH (Linux 5.6+; Python has no os.openat2,
so ctypes calls syscall 437), or where that is missing (older kernels, seccomp filters, other
architectures) a walk one component at a time with O_NOFOLLOW that resolves each symlink itself and
refuses one that leads above the directory. `read_regular` opens without blocking and reads only a
regular file up to a size cap, so a FIFO or /dev/zero planted as a config or journal cannot hang or
exhaust a command.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import sys

RESOLVE_NO_MAGICLINKS = 0x02  # no /proc/PID/fd/N-style jumps
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}  # the unified syscall table: the same number on both
MAX_LINKS = 40  # as the kernel's MAXSYMLINKS
RETRIES = 8  # openat2 answers EAGAIN when a rename raced a `..`: try again

MIB = 1024 * 1024
LIMITS = {  # bytes: the largest file of each kind irqtune reads (README, "Files irqtune reads")
    "config": 1 * MIB,
    "scenario": 1 * MIB,
    "basic-auth": 1 * MIB,
    "plan": 16 * MIB,
    "journal": 16 * MIB,
    "managed-irqs": 4 * MIB,
    "simulator rules": 4 * MIB,
    "model": 4 * MIB,  # the agent's device models (statedir MODEL_FILE)
    "snapshot": 64 * MIB,  # `irqtune snapshot --json` read back by `irqtune diff` (1,152 CPUs: a few MiB)
    "kubelet": 4 * MIB,  # the kubelet's CPU manager checkpoint (measure/kubelet.py)
    "pods": 64 * MIB,  # a node's pod list (a file, or the API server's answer)
    "serviceaccount": 1 * MIB,  # the pod's service account token and CA
}


class Escaped(OSError):
    """The path leads above the directory it must stay beneath (EXDEV, as openat2 says it)."""

    OUTSIDE = "leads outside"

    def __init__(self, path: str, why: str = OUTSIDE) -> None:
        super().__init__(errno.EXDEV, why, path)


class NotAllowed(OSError):
    """A file irqtune will not read: not a regular file, or larger than its kind's limit."""

    def __init__(self, code: int, why: str, path: str) -> None:
        super().__init__(code, why, path)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_openat2 = None  # the bound syscall once known to work; False where it does not


def _syscall():
    """libc's syscall(2) bound to openat2, or False where this kernel, filter or architecture lacks it."""
    global _openat2
    if _openat2 is None:
        _openat2 = False
        number = SYS_OPENAT2.get(platform.machine())
        if sys.platform == "linux" and number is not None:
            fn = ctypes.CDLL(None, use_errno=True).syscall
            fn.restype = ctypes.c_long
            fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_OpenHow), ctypes.c_size_t]
            probe = _OpenHow(os.O_PATH | os.O_CLOEXEC, 0, RESOLVE_BENEATH)
            fd = fn(number, -100, b".", ctypes.byref(probe), ctypes.sizeof(probe))  # AT_FDCWD
            if fd >= 0:
                os.close(fd)
                _openat2 = (fn, number)
    return _openat2


def open_beneath(dir_fd: int, rel: str, flags: int, mode: int = 0, follow: bool = True) -> int:
    """An fd for `rel` opened relative to `dir_fd`, never resolving above it (Escaped if it would).

    follow: symlinks are followed while they stay beneath (sysfs's class links); False refuses any
    symlink on the way (ELOOP), for trees irqtune writes itself."""
    if rel.startswith("/"):
        raise Escaped(rel, "absolute path")
    resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | (0 if follow else RESOLVE_NO_SYMLINKS)
    bound = _syscall()
    if not bound:
        return _walk(dir_fd, rel, flags, mode, follow)
    fn, number = bound
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, resolve)
    encoded = os.fsencode(rel or ".")
    for _ in range(RETRIES):
        fd = fn(number, dir_fd, encoded, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return fd
        code = ctypes.get_errno()
        if code != errno.EAGAIN:
            break
    if code == errno.EXDEV:
        raise Escaped(rel)
    raise OSError(code, os.strerror(code), rel)


def _walk(dir_fd: int, rel: str, flags: int, mode: int, follow: bool) -> int:
    """open_beneath by hand: O_NOFOLLOW one component at a time from `dir_fd`, each symlink read and resolved
    here, `..` popping back to the directory it came from (never above `dir_fd`)."""
    todo = [part for part in reversed(rel.split("/")) if part and part != "."]
    stack, links = [dir_fd], 0
    try:
        while todo:
            name = todo.pop()
            if name == "..":
                if len(stack) == 1:
                    raise Escaped(rel)
                os.close(stack.pop())
                continue
            target = _step(stack, name, flags, mode, last=not todo)
            if isinstance(target, int):
                return target
            if target is None:  # a directory, entered
                continue
            if not follow:
                raise OSError(errno.ELOOP, "a symlink on the way (refused)", rel)
            links += 1
            if links > MAX_LINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), rel)
            if target.startswith("/"):
                raise Escaped(rel, "absolute symlink")
            todo.extend(part for part in reversed(target.split("/")) if part and part != ".")
        return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=stack[-1])  # rel was the directory itself
    finally:
        for fd in stack[1:]:
            os.close(fd)


def _step(stack: list[int], name: str, flags: int, mode: int, last: bool) -> int | str | None:
    """One component: the opened fd (last), None for a directory entered (pushed on `stack`), or a symlink's
    target to resolve instead."""
    parent = stack[-1]
    if last:
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise
            return _readlink(name, parent)
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    kind = os.fstat(fd).st_mode
    if stat.S_ISDIR(kind):
        stack.append(fd)
        return None
    os.close(fd)
    if not stat.S_ISLNK(kind):
        raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), name)
    return _readlink(name, parent)


def _readlink(name: str, parent: int) -> str:
    """The symlink's target; `name` itself when it stopped being a symlink (look at it again)."""
    try:
        return os.readlink(name, dir_fd=parent)
    except OSError as err:
        if err.errno == errno.EINVAL:
            return name
        raise


def read_fd(fd: int, limit: int | None = None, path: str = "") -> bytes:
    """Everything an open fd gives (None: no limit); NotAllowed past `limit` bytes. Each read asks for twice
    the last, up to 8 MiB: a small file costs one read, a 1152-CPU /proc/interrupts (13 MB) eight, not 200."""
    chunks, size, ask = [], 0, 1 << 16
    while True:
        chunk = os.read(fd, ask)
        if not chunk:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        ask = min(ask * 2, 1 << 23)
        if limit is not None and size > limit:
            raise NotAllowed(errno.EFBIG, f"larger than {_size(limit)}, the limit", path)


def check_regular(fd: int, path: str, limit: int | None = None) -> os.stat_result:
    """The fd's stat when it is a regular file (within `limit` bytes), else NotAllowed."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise NotAllowed(errno.EINVAL, f"not a regular file ({kind_of(st.st_mode)})", path)
    if limit is not None and st.st_size > limit:
        raise NotAllowed(errno.EFBIG, f"larger than {_size(limit)}, the limit", path)
    return st


def read_regular(path: str, kind: str, dir_fd: int | None = None, nofollow: bool = False) -> bytes:
    """A regular file of at most LIMITS[kind] bytes, opened without blocking (a FIFO is refused, not waited on).
    nofollow: a symlink as the last component is refused (ELOOP), for files in irqtune's own directories."""
    limit = LIMITS[kind]
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_NOFOLLOW if nofollow else 0)
    fd = os.open(path, flags, dir_fd=dir_fd)
    try:
        check_regular(fd, path, limit)
        return read_fd(fd, limit, path)
    finally:
        os.close(fd)


def read_text(path: str, kind: str) -> str:
    """read_regular as UTF-8 text (UnicodeDecodeError for other bytes)."""
    return read_regular(path, kind).decode("utf-8")


def open_regular(path: str, kind: str, encoding: str = "utf-8"):
    """A text file object for a regular file of at most LIMITS[kind] bytes (its size when opened), opened
    without blocking: a drop-in for open(path) where a FIFO must not hang and a huge file not be read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        check_regular(fd, path, LIMITS[kind])
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, encoding=encoding)


KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink"))  # fmt: skip


def kind_of(mode: int) -> str:
    """What a file that is not a regular one is, for the refusal."""
    return next((name for test, name in KINDS if test(mode)), "not a plain file")


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit % MIB == 0 else f"{limit} bytes"
