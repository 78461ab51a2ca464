"""measure/memory.py: the reserve read through the rooted host layer; the kernel log read from its last place."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from conftest import real_linux, require

from irqtune.host import Host
from irqtune.measure.memory import KernelLog, read_memory

KMSG = Path(__file__).parent.parent / "fixtures" / "kmsg" / "real-failures.kmsg"


def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    (root / "proc" / "sys" / "vm").mkdir(parents=True)
    (root / "sys").mkdir()
    (root / "dev").mkdir()
    zone = "Node 0, zone   Normal\n  pages free 900\n    min 500\n    low 600\n    high 700\n    managed 9000\n"
    (root / "proc" / "zoneinfo").write_text(zone)
    (root / "proc" / "vmstat").write_text("allocstall_normal 4\npgalloc_normal 77\n")
    (root / "proc" / "sys" / "vm" / "min_free_kbytes").write_text("2000\n")
    (root / "proc" / "sys" / "vm" / "watermark_scale_factor").write_text("bad\n")
    shutil.copy(KMSG, root / "dev" / "kmsg")
    return root


def test_reserve_read_from_a_fake_root_with_problems_named(tmp_path):
    state = read_memory(Host(str(fake_root(tmp_path))))
    assert [(z.name, z.free, z.min) for z in state.zones] == [("Normal", 900, 500)]
    assert state.vmstat == {"allocstall_normal": 4, "pgalloc_normal": 77} and state.min_free_kbytes == 2000
    assert state.watermark_scale_factor is None
    assert [str(p) for p in state.problems] == ["/proc/sys/vm/watermark_scale_factor:1: expected a count, got 'bad'"]
    assert state.pools is None  # no netlink for a fake root


def test_kernel_log_counts_each_failure_once_and_keeps_no_text(tmp_path):
    root = fake_root(tmp_path)
    log = KernelLog(Host(str(root)))
    state = read_memory(Host(str(root)), log)
    assert state.alloc_failures is not None
    assert (state.alloc_failures.total, state.alloc_failures.atomic) == (5, 2)
    assert state.alloc_failures.by_order == {0: 3, 3: 1, 5: 1} and state.alloc_failures.by_cpu[21] == 1
    again = log.read()
    assert again.total == 5 and log.last_seq == 1010
    with open(root / "dev" / "kmsg", "a") as f:
        f.write(
            "4,1011,6000000,-;swapper/2: page allocation failure: order:2, mode:0xa20(GFP_ATOMIC), nodemask=(null)\n"
        )
    grown = log.read()
    assert (grown.total, grown.atomic, grown.by_order[2]) == (6, 3, 1)
    assert state.alloc_failures.total == 5  # an earlier reading keeps its counts
    assert not any("page allocation" in str(v) for v in vars(log).values())
    log.close()


def test_a_kernel_log_that_links_out_of_the_root_is_refused_not_followed(tmp_path):
    """A fake root's dev/kmsg (or its dev/) pointing outside the root: opened beneath the root as every other file,
    so the agent reads no other host's log; the reading says it is unavailable and goes on."""
    for link in ("dev/kmsg", "dev"):
        root = fake_root(tmp_path / link.replace("/", "-"))
        outside = tmp_path / f"outside-{link.replace('/', '-')}"
        outside.mkdir()
        shutil.copy(KMSG, outside / "kmsg")
        target = root / link
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        target.symlink_to(outside / "kmsg" if link == "dev/kmsg" else outside)
        state = read_memory(Host(str(root)), KernelLog(Host(str(root))))
        assert state.alloc_failures is None or state.alloc_failures.total == 0, (link, state.alloc_failures)
        assert "/dev/kmsg" in state.unavailable, (link, state.unavailable)


def test_real_kmsg_is_read_without_blocking():
    require(real_linux() and os.geteuid() == 0, "/dev/kmsg needs root")
    log = KernelLog(Host("/"))
    started = time.monotonic()
    log.read()
    log.read()
    assert time.monotonic() - started < 2.0 and log.last_seq is not None
    log.close()
