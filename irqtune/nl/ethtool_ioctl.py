"""The ethtool ioctl (SIOCETHTOOL), for what netlink does not carry: a driver's private statistics (`ethtool -S`)
and the RSS write on kernels without ETHTOOL_MSG_RSS_SET (before 6.17).

One request is a struct ifreq naming the device, whose ifr_data points at a command buffer the kernel reads and
fills in place; it goes to a plain UDP socket (what ethtool(8) uses), never through a shell. Commands and layouts
are the kernel's uapi, include/uapi/linux/ethtool.h:

    ETHTOOL_GSSET_INFO 0x37   struct ethtool_sset_info {u32 cmd, reserved; u64 sset_mask; u32 data[]}
    ETHTOOL_GSTRINGS   0x1b   struct ethtool_gstrings {u32 cmd, string_set, len; u8 data[len * 32]}
    ETHTOOL_GSTATS     0x1d   struct ethtool_stats {u32 cmd, n_stats; u64 data[n_stats]}
    ETHTOOL_GRSSH      0x46   struct ethtool_rxfh {u32 cmd, rss_context, indir_size, key_size;
    ETHTOOL_SRSSH      0x47       u8 hfunc, input_xfrm, rsvd8[2]; u32 rsvd32; u32 rss_config[]}
                              (rss_config: indir_size u32 entries, then key_size bytes of hash key)
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import mmap
import os
import re
import socket
import struct

from .errors import NetlinkRequestError

SIOCETHTOOL = 0x8946  # include/uapi/linux/sockios.h
ETHTOOL_GSTRINGS, ETHTOOL_GSTATS, ETHTOOL_GSSET_INFO = 0x1B, 0x1D, 0x37
ETHTOOL_GRSSH, ETHTOOL_SRSSH = 0x46, 0x47
ETH_SS_STATS = 1
PROT_NONE = 0  # mprotect(2): no access (the mmap module names only READ, WRITE and EXEC)
ETH_GSTRING_LEN = 32
ETH_RXFH_INDIR_NO_CHANGE = 0xFFFFFFFF
ETH_RSS_HASH_NO_CHANGE = 0
IFNAMSIZ = 16
MAX_STATS = 1 << 16  # a driver reporting more strings than this is not believed (mlx5 reports a few thousand)
SLACK = 64  # room for strings a driver adds between the count and the read (the kernel writes its own count)
IFREQ = struct.Struct(f"@{IFNAMSIZ}sP{40 - IFNAMSIZ - struct.calcsize('P')}x")  # struct ifreq, 40 bytes on LP64
SSET_INFO = struct.Struct("=IIQI")
GSTRINGS = struct.Struct("=III")
GSTATS = struct.Struct("=II")
RXFH = struct.Struct("=IIIIBB2xI")
_NAME = re.compile(r"[^/\s\0:]{1,15}\Z")  # dev_valid_name: below IFNAMSIZ, no '/', no whitespace, no ':'


class EthtoolIoctlError(NetlinkRequestError):
    """A refused ethtool ioctl: one line naming the device and what it lacks; `errno` is the kernel's."""


def check_name(ifname: str) -> str:
    """A device name as the kernel accepts one (dev_valid_name); anything else is refused before any ioctl."""
    if not isinstance(ifname, str) or not _NAME.match(ifname) or ifname in (".", ".."):
        raise EthtoolIoctlError(f"{ifname!r:.40} is not a network device name", errno.EINVAL)
    return ifname


def _why(ifname: str, what: str, err: OSError) -> EthtoolIoctlError:
    code = err.errno or errno.EIO
    if code == errno.EOPNOTSUPP:
        return EthtoolIoctlError(f"{ifname}: driver has no {what}", code)
    if code == errno.ENODEV:
        return EthtoolIoctlError(f"{ifname}: no such network device", code)
    if code == errno.EPERM:
        return EthtoolIoctlError(f"{ifname}: {what}: needs CAP_NET_ADMIN", code)
    return EthtoolIoctlError(f"{ifname}: {what} refused: {os.strerror(code)}", code)


def _socket() -> socket.socket:
    try:
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    except OSError:  # a kernel without IPv4: any socket reaches dev_ioctl
        return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)


def ioctl(ifname: str, buffer: ctypes.Array, what: str) -> None:
    """SIOCETHTOOL on `ifname` with `buffer` (its first u32 the command), filled in place by the kernel."""
    request = IFREQ.pack(check_name(ifname).encode(), ctypes.addressof(buffer))
    with _socket() as sock:
        try:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)
        except OSError as err:
            raise _why(ifname, what, err) from None


def stats_count(ifname: str) -> int:
    """How many private statistics the driver reports (ETHTOOL_GSSET_INFO for ETH_SS_STATS)."""
    buf = ctypes.create_string_buffer(SSET_INFO.pack(ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_STATS, 0))
    ioctl(ifname, buf, "statistics (ethtool -S)")
    _, _, mask, count = SSET_INFO.unpack(buf.raw[: SSET_INFO.size])
    if not mask & (1 << ETH_SS_STATS):
        raise EthtoolIoctlError(f"{ifname}: driver has no statistics (ethtool -S)", errno.EOPNOTSUPP)
    if count > MAX_STATS:
        raise EthtoolIoctlError(f"{ifname}: driver reports {count} statistics, more than {MAX_STATS}", errno.E2BIG)
    return count


def decode_strings(raw: bytes, count: int) -> list[str]:
    """ETH_GSTRING_LEN-byte, NUL-padded names."""
    out = []
    for i in range(count):
        name = raw[i * ETH_GSTRING_LEN : (i + 1) * ETH_GSTRING_LEN].split(b"\0", 1)[0]
        out.append(name.decode("ascii", "replace"))
    return out


class Guarded:
    """A request buffer followed by an inaccessible page. ETHTOOL_GSTRINGS and ETHTOOL_GSTATS write as many entries
    as the driver has *now*, not as many as the buffer holds (net/ethtool/ioctl.c ethtool_get_strings and
    ethtool_get_stats). If a driver's list outgrows the buffer between the count and the read (queues added by
    `ethtool -L`), the kernel's copy stops at the guard with EFAULT instead of writing over this process's memory,
    and the read is tried again. Use as a context manager."""

    def __init__(self, head: bytes, size: int) -> None:
        page = mmap.PAGESIZE
        self.size = -(-size // page) * page
        self._map = mmap.mmap(-1, self.size + page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self._map[: len(head)] = head
        self.buffer = (ctypes.c_char * self.size).from_buffer(self._map)
        if _libc().mprotect(ctypes.c_void_p(ctypes.addressof(self.buffer) + self.size), page, PROT_NONE):
            self.close()
            raise OSError(ctypes.get_errno(), "mprotect of the guard page failed")

    @property
    def raw(self) -> bytes:
        return self.buffer.raw

    def close(self) -> None:
        if self._map is not None:
            del self.buffer
            self._map.close()
            self._map = None

    def __enter__(self) -> Guarded:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@functools.cache
def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def stat_names(ifname: str, count: int) -> list[str]:
    room = count + SLACK
    with Guarded(GSTRINGS.pack(ETHTOOL_GSTRINGS, ETH_SS_STATS, 0), GSTRINGS.size + room * ETH_GSTRING_LEN) as buf:
        ioctl(ifname, buf.buffer, "statistics (ethtool -S)")
        raw = buf.raw
    got = min(GSTRINGS.unpack(raw[: GSTRINGS.size])[2], (len(raw) - GSTRINGS.size) // ETH_GSTRING_LEN)
    return decode_strings(raw[GSTRINGS.size :], got)


def stat_values(ifname: str, count: int) -> list[int]:
    room = count + SLACK
    with Guarded(GSTATS.pack(ETHTOOL_GSTATS, 0), GSTATS.size + room * 8) as buf:
        ioctl(ifname, buf.buffer, "statistics (ethtool -S)")
        raw = buf.raw
    got = min(GSTATS.unpack(raw[: GSTATS.size])[1], (len(raw) - GSTATS.size) // 8)
    return list(struct.unpack_from(f"={got}Q", raw, GSTATS.size))


def get_stats(ifname: str) -> dict[str, int]:
    """The driver's private statistics, `ethtool -S DEV`, as {name: value}; a second read when the driver's
    list changed between the names and the values (queues added)."""
    for _ in range(2):
        count = stats_count(ifname)
        try:
            names, values = stat_names(ifname, count), stat_values(ifname, count)
        except EthtoolIoctlError as err:
            if err.errno != errno.EFAULT:  # EFAULT: the list outgrew the buffer (Guarded): read it again
                raise
            continue
        if len(names) == len(values):
            return dict(zip(names, values, strict=True))
    raise EthtoolIoctlError(f"{ifname}: statistics changed while read", errno.EAGAIN)


def _rxfh(ifname: str, indir_size: int, key_size: int, what: str, command: int = ETHTOOL_GRSSH,
          hfunc: int = 0, payload: bytes = b"") -> tuple[tuple, bytes]:  # fmt: skip
    room = max(len(payload), (0 if indir_size == ETH_RXFH_INDIR_NO_CHANGE else indir_size * 4) + key_size)
    buf = ctypes.create_string_buffer(RXFH.pack(command, 0, indir_size, key_size, hfunc, 0, 0) + payload,
                                      RXFH.size + room)  # fmt: skip
    ioctl(ifname, buf, what)
    return RXFH.unpack(buf.raw[: RXFH.size]), buf.raw[RXFH.size : RXFH.size + room]


def rss_sizes(ifname: str) -> tuple[int, int]:
    """(indirection table entries, hash key bytes): ETHTOOL_GRSSH with both sizes 0 asks only for them."""
    header, _ = _rxfh(ifname, 0, 0, "RSS (ethtool -x)")
    return header[2], header[3]


def get_rss(ifname: str) -> dict:
    """The RSS indirection table and hash key, as nl/ethtool.py's decode_rss gives them: {"indir", "hkey"}."""
    indir_size, key_size = rss_sizes(ifname)
    if not indir_size and not key_size:
        raise EthtoolIoctlError(f"{ifname}: driver has no RSS (ethtool -x)", errno.EOPNOTSUPP)
    _, data = _rxfh(ifname, indir_size, key_size, "RSS (ethtool -x)")
    out: dict = {"indir": list(struct.unpack_from(f"={indir_size}I", data))}
    if key_size:
        out["hkey"] = data[indir_size * 4 : indir_size * 4 + key_size].hex()
    return out


def set_rss(ifname: str, indir: list[int] | None = None, hkey: bytes | None = None) -> None:
    """ETHTOOL_SRSSH: the whole table and/or the key, each at the size the driver reports (the kernel refuses
    other sizes; a table of size 0 would reset it to the default, so it is never sent empty)."""
    indir_size, key_size = rss_sizes(ifname)
    if indir is not None and len(indir) != indir_size:
        raise EthtoolIoctlError(f"{ifname}: RSS table has {indir_size} entries, not {len(indir)}", errno.EINVAL)
    if hkey is not None and len(hkey) != key_size:
        raise EthtoolIoctlError(f"{ifname}: RSS hash key is {key_size} bytes, not {len(hkey)}", errno.EINVAL)
    payload = (struct.pack(f"={len(indir)}I", *indir) if indir is not None else b"") + (hkey or b"")
    sizes = (ETH_RXFH_INDIR_NO_CHANGE if indir is None else indir_size, len(hkey) if hkey is not None else 0)
    _rxfh(ifname, *sizes, "RSS set (ethtool -X)", command=ETHTOOL_SRSSH, payload=payload)
