"""Where a process's threads run: the input of IRQ co-location.

A process is found by its name as the kernel keeps it (`/proc/PID/comm`, at most 15
bytes: a longer configured name matches its first 15 bytes). For each of its threads
(`/proc/PID/task/TID`) we read the CPU it last ran on (`stat` field 39, "processor")
and the CPUs it may run on: `sched_getaffinity(TID)` on the live host, the
`Cpus_allowed_list` line of `status` under another root (a fake tree, a container's
view), so `--root` works the same.

Everything is read through `Host`, so the paths stay inside `<root>/proc`. Names are
untrusted kernel strings (a process chooses its own comm): they are compared as bytes
and only ever displayed through `shown()`, never used as paths or commands. PIDs and
TIDs come from directory names that must be ASCII digits.

Not psutil: its `PROCFS_PATH` is one setting for the whole process, where each `Host` here has its own root
(the agent, the simulator and the tests read several trees in one process), and its opens follow symlinks that
the host layer refuses; the few fields needed are read here beneath the root, as the rest of /proc is.

Not measured here: which process consumes a given queue's packets. Attributing packets
to a process needs probes (socket lookups or RFS flow tables traced with BPF); from
/proc alone it cannot be told, so the process to co-locate with is named in the config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..host import Host, PathEscape
from ..parse.common import CpuListError, is_count, kernel_lines, parse_cpulist, printable

COMM_LEN = 15  # TASK_COMM_LEN - 1: the kernel truncates names to this many bytes
_PROCESSOR = 39 - 3  # stat field 39, counted after the ")" that ends field 2 (comm)
_SHOWN_MAX = 64


@dataclass(frozen=True, slots=True)
class ThreadPlacement:
    """One thread of a process, and where it runs."""

    pid: int
    tid: int
    process: str  # the process's comm (untrusted: display with shown())
    comm: str  # the thread's own comm (threads may rename themselves)
    last_cpu: int | None  # the CPU it last ran on (stat "processor")
    allowed: tuple[int, ...]  # CPUs it may run on; () when unreadable


def shown(name: str) -> str:
    """An untrusted name made safe to print: non-printable characters escaped, length capped."""
    text = printable(name[:_SHOWN_MAX])
    return text + ("..." if len(name) > _SHOWN_MAX else "")


def _raw(host: Host, *parts: str | int) -> bytes | None:
    """A /proc file's bytes, or None when the task is gone or the path is refused."""
    try:
        return host.read_bytes(host.proc(*parts))
    except (OSError, PathEscape):
        return None


def _comm(host: Host, *parts: str | int) -> bytes | None:
    raw = _raw(host, *parts, "comm")
    return raw.removesuffix(b"\n") if raw is not None else None


def comm_matches(comm: bytes, name: str) -> bool:
    """Exact match on bytes; a configured name longer than the kernel keeps matches its prefix."""
    wanted = name.encode("utf-8", "surrogateescape")
    return comm == wanted or (len(wanted) > COMM_LEN and comm == wanted[:COMM_LEN])


def _last_cpu(host: Host, pid: int, tid: int) -> tuple[bool, int | None]:
    """(thread still there, its last CPU). The comm inside stat may hold spaces and ")"."""
    raw = _raw(host, pid, "task", tid, "stat")
    if raw is None:
        return False, None
    fields = raw.rpartition(b")")[2].split()
    value = fields[_PROCESSOR].decode("ascii", "replace") if len(fields) > _PROCESSOR else ""
    return True, int(value) if is_count(value) else None


def _allowed(host: Host, pid: int, tid: int) -> tuple[int, ...]:
    """sched_getaffinity on the live host; the status file's Cpus_allowed_list under another root."""
    if host.root == "/":
        try:
            return tuple(sorted(os.sched_getaffinity(tid)))
        except OSError:
            pass  # gone, or not ours to see: the status file may still say
    raw = _raw(host, pid, "task", tid, "status") or b""
    for line in kernel_lines(raw.decode("ascii", "replace")):  # a comm with \f or \x1c must not start a line
        key, _, value = line.partition(":")
        if key == "Cpus_allowed_list":
            try:
                return tuple(parse_cpulist(value))
            except CpuListError:
                return ()
    return ()


def _numbers(host: Host, *parts: str | int) -> list[int]:
    try:
        names = host.entries(host.proc(*parts))
    except PathEscape:
        return []
    return sorted(int(n) for n in names if is_count(n))


def process_threads(host: Host, pid: int) -> list[ThreadPlacement]:
    """Every thread of one process; threads that exit while being read are left out."""
    comm = _comm(host, pid)
    if comm is None:
        return []
    process = comm.decode("utf-8", "replace")
    threads = []
    for tid in _numbers(host, pid, "task"):
        alive, last = _last_cpu(host, pid, tid)
        if not alive:
            continue
        own = _comm(host, pid, "task", tid)
        name = own.decode("utf-8", "replace") if own is not None else process
        threads.append(ThreadPlacement(pid, tid, process, name, last, _allowed(host, pid, tid)))
    return threads


def find_process_threads(host: Host, name: str) -> list[ThreadPlacement]:
    """The threads of every process whose comm is `name`, ordered by PID then TID."""
    found: list[ThreadPlacement] = []
    for pid in _numbers(host):
        comm = _comm(host, pid)
        if comm is not None and comm_matches(comm, name):
            found.extend(process_threads(host, pid))
    return found
