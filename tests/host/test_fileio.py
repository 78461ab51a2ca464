"""fileio: opening beneath a directory (openat2, and the O_NOFOLLOW walk where openat2 is missing) and reading
only bounded regular files (issue 16)."""

from __future__ import annotations

import errno
import os

import pytest
from conftest import require

from irqtune import fileio
from irqtune.fileio import Escaped, NotAllowed, open_beneath, read_fd, read_regular


@pytest.fixture(params=["openat2", "walk"])
def impl(request, monkeypatch):
    """Both ways of opening beneath: the kernel's openat2, and the walk used where it is missing."""
    if request.param == "walk":
        monkeypatch.setattr(fileio, "_openat2", False)
    else:
        require(bool(fileio._syscall()), "openat2 (Linux 5.6+): the race is tested on the kernel's own resolution")
    return request.param


@pytest.fixture
def tree(tmp_path):
    """sys/ with a class link into devices/ (as sysfs has), and a secret outside it."""
    top = tmp_path / "sys"
    (top / "devices" / "pci0" / "eth0").mkdir(parents=True)
    (top / "devices" / "pci0" / "eth0" / "mtu").write_text("1500\n")
    (top / "class" / "net").mkdir(parents=True)
    os.symlink("../../devices/pci0/eth0", top / "class" / "net" / "eth0")
    (tmp_path / "secret").write_text("no\n")
    fd = os.open(top, os.O_PATH | os.O_DIRECTORY)
    yield top, fd
    os.close(fd)


def _read(fd: int, rel: str, follow: bool = True) -> str:
    opened = open_beneath(fd, rel, os.O_RDONLY, follow=follow)
    try:
        return os.read(opened, 100).decode()
    finally:
        os.close(opened)


def test_links_that_stay_beneath_are_followed(impl, tree):
    _, fd = tree
    assert _read(fd, "class/net/eth0/mtu") == "1500\n"
    assert _read(fd, "class/net/eth0/../eth0/mtu") == "1500\n"  # `..` after a link: from where the link led


@pytest.mark.parametrize("link", ["../../../secret", "../../../../secret", "/etc/hostname", "SECRET_ABS"])
def test_links_that_leave_are_refused(impl, tree, link):
    top, fd = tree
    os.symlink(str(top.parent / "secret") if link == "SECRET_ABS" else link, top / "class" / "net" / "evil")
    with pytest.raises(Escaped):
        _read(fd, "class/net/evil")


def test_dotdot_above_the_directory_is_refused(impl, tree):
    _, fd = tree
    with pytest.raises(Escaped):
        _read(fd, "class/../../secret")
    with pytest.raises(Escaped):
        _read(fd, "/etc/hostname")


def test_no_follow_refuses_any_link(impl, tree):
    _, fd = tree
    with pytest.raises(OSError) as err:
        _read(fd, "class/net/eth0/mtu", follow=False)
    assert err.value.errno in (errno.ELOOP, errno.EXDEV)
    assert _read(fd, "devices/pci0/eth0/mtu", follow=False) == "1500\n"


def test_a_link_loop_ends(impl, tree):
    top, fd = tree
    os.symlink("loop", top / "loop")
    with pytest.raises(OSError) as err:
        _read(fd, "loop")
    assert err.value.errno == errno.ELOOP


def test_missing_is_enoent_and_a_file_is_not_a_directory(impl, tree):
    _, fd = tree
    with pytest.raises(FileNotFoundError):
        _read(fd, "class/net/eth9/mtu")
    with pytest.raises(NotADirectoryError):
        _read(fd, "devices/pci0/eth0/mtu/x")


def test_creates_beneath_without_following(impl, tree):
    top, fd = tree
    opened = open_beneath(fd, "devices/new", os.O_WRONLY | os.O_CREAT, 0o600, follow=False)
    os.close(opened)
    assert (top / "devices" / "new").is_file()
    os.symlink("../secret", top / "planted")
    with pytest.raises(OSError):
        os.close(open_beneath(fd, "planted", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, follow=False))
    assert (top.parent / "secret").read_text() == "no\n"


def test_only_regular_files_are_read_and_size_is_capped(tmp_path, monkeypatch):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(NotAllowed, match="not a regular file \\(a FIFO\\)"):
        read_regular(str(fifo), "config")  # returns at once: opened non-blocking
    with pytest.raises(NotAllowed, match="not a regular file \\(a character device\\)"):
        read_regular("/dev/zero", "config")
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    monkeypatch.setitem(fileio.LIMITS, "config", 100)
    with pytest.raises(NotAllowed, match="larger than 100 bytes"):
        read_regular(str(big), "config")
    big.write_bytes(b"x" * 100)
    assert read_regular(str(big), "config") == b"x" * 100
    os.symlink(big, tmp_path / "link")
    with pytest.raises(OSError) as err:
        read_regular(str(tmp_path / "link"), "config", nofollow=True)
    assert err.value.errno == errno.ELOOP


def test_read_fd_gives_a_large_file_whole_in_few_reads(tmp_path, monkeypatch):
    """A 1152-CPU /proc/interrupts is 13 MB: each read asks for twice the last (64 KiB up to 8 MiB), so it takes a
    handful of reads, not one per 64 KiB; the bytes are the file's."""
    data = bytes(range(256)) * (13 * 4096)  # 13.6 MB
    path = tmp_path / "interrupts"
    path.write_bytes(data)
    asked: list[int] = []
    real_read = os.read

    def counting(fd: int, size: int) -> bytes:
        asked.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(os, "read", counting)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert read_fd(fd) == data
    finally:
        os.close(fd)
    assert len(asked) <= 10 and asked[0] == 1 << 16 and max(asked) == 1 << 23
