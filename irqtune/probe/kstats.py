"""BPF programs as the kernel sees them: ids, names, run counts and run time (bpf syscall).

What `bpftool prog show` prints, without bpftool: used to prove programs detached and
to measure a probe's cost (run time needs BPF_ENABLE_STATS, held by an fd while
measuring, so no sysctl is written). x86_64 syscall number; other arches return [].
"""

from __future__ import annotations

import ctypes
import os
import platform

NR_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), -1)
BPF_PROG_GET_NEXT_ID, BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD, BPF_ENABLE_STATS = 11, 13, 15, 32
u32, u64 = ctypes.c_uint32, ctypes.c_uint64


class ProgInfo(ctypes.Structure):
    _fields_ = [
        ("type", u32), ("id", u32), ("tag", ctypes.c_uint8 * 8), ("jited_prog_len", u32), ("xlated_prog_len", u32),
        ("jited_prog_insns", u64), ("xlated_prog_insns", u64), ("load_time", u64), ("created_by_uid", u32),
        ("nr_map_ids", u32), ("map_ids", u64), ("name", ctypes.c_char * 16), ("ifindex", u32), ("gpl", u32),
        ("netns_dev", u64), ("netns_ino", u64), ("nr_jited_ksyms", u32), ("nr_jited_func_lens", u32),
        ("jited_ksyms", u64), ("jited_func_lens", u64), ("btf_id", u32), ("func_info_rec_size", u32),
        ("func_info", u64), ("nr_func_info", u32), ("nr_line_info", u32), ("line_info", u64),
        ("jited_line_info", u64), ("nr_jited_line_info", u32), ("line_info_rec_size", u32),
        ("jited_line_info_rec_size", u32), ("nr_prog_tags", u32), ("prog_tags", u64), ("run_time_ns", u64),
        ("run_cnt", u64),
    ]  # fmt: skip


_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    if NR_BPF < 0:
        raise OSError(38, "bpf syscall number unknown on this architecture")
    result = _libc.syscall(NR_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if result < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


def enable_stats() -> int:
    """An fd that keeps run-time accounting on while open (no sysctl written)."""
    attr = (u32 * 16)(0)  # type = BPF_STATS_RUN_TIME
    return _bpf(BPF_ENABLE_STATS, attr)


def prog_ids() -> list[int]:
    ids, current = [], 0
    while True:
        attr = (u32 * 16)(current)
        try:
            _bpf(BPF_PROG_GET_NEXT_ID, attr)
        except OSError:  # ENOENT after the last program (EPERM without root: no programs visible)
            return ids
        current = attr[1]
        ids.append(current)


def info_by_fd(fd: int) -> ProgInfo:
    info = ProgInfo()
    attr = (u64 * 4)()
    ctypes.cast(attr, ctypes.POINTER(u32))[0] = fd
    ctypes.cast(attr, ctypes.POINTER(u32))[1] = ctypes.sizeof(info)
    attr[1] = ctypes.addressof(info)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return info


def info_by_id(prog_id: int) -> ProgInfo:
    attr = (u32 * 16)(prog_id)
    fd = _bpf(BPF_PROG_GET_FD_BY_ID, attr)
    try:
        return info_by_fd(fd)
    finally:
        os.close(fd)
