"""In the guest: RSS on a real virtio_net (QEMU's rss=on) through net/DEV/rss/{indir,hkey}. Values are checked
with `ethtool -x` (the tool users trust, not irqtune's own reader): read, a new key set through irqtune and read
back, a table entry beyond the RX queues refused before any write, and `irqtune restore` putting it back. The
guest kernels (6.1, 6.12) have no ETHTOOL_MSG_RSS_SET: the write goes by the ioctl, and the result says so."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import cli
from guest import netdevs_by_driver, sh

from irqtune.nl import ethtool_ioctl

pytestmark = pytest.mark.vm

RSS_MAC = "52:54:00:12:34:03"


@dataclass(frozen=True)
class Rss:
    rings: int
    table: list[int]
    key: str


def ethtool_x(dev: str) -> Rss:
    """`ethtool -x DEV`: "RX flow hash indirection table for DEV with N RX ring(s):", rows "  8:  0 1 ...", then
    "RSS hash key:" and the key on the next line."""
    rings, table, key, lines = 0, [], "", sh("ethtool", "-x", dev).splitlines()
    for i, line in enumerate(lines):
        if "indirection table" in line and "with" in line:
            rings = int(line.split("with")[1].split()[0])
        head, _, rest = line.partition(":")
        if head.strip().isdigit() and rest.split() and all(w.isdigit() for w in rest.split()):
            table += [int(w) for w in rest.split()]
        if line.startswith("RSS hash key") and i + 1 < len(lines):
            key = lines[i + 1].strip()
    return Rss(rings, table, key)


@pytest.fixture
def rss_nic() -> str:
    nics = netdevs_by_driver("virtio_net")
    assert RSS_MAC in nics, f"the bench's virtio-net with rss=on expected, found {nics}"
    return nics[RSS_MAC]


def test_rss_read_key_set_by_ioctl_table_beyond_the_queues_refused_and_restored(rss_nic, tmp_path, record):
    dev, before = rss_nic, ethtool_x(rss_nic)
    assert before.rings >= 1 and len(before.table) >= 1 and before.key, before
    assert cli("get", f"net/{dev}/rss/indir").stdout.strip() == ",".join(map(str, before.table))
    assert cli("get", f"net/{dev}/rss/hkey").stdout.strip() == before.key
    new_key = ":".join(f"{int(b, 16) ^ 0xFF:02x}" for b in before.key.split(":"))
    code, out, err = cli("set", f"net/{dev}/rss/hkey", new_key, state=tmp_path)
    assert code == 0 and "set via ioctl: kernel has no RSS_SET" in out, out + err
    assert ethtool_x(dev).key == new_key
    spread = [before.rings - 1 - i % before.rings for i in range(len(before.table))]  # reversed, where 2+ rings
    code, out, err = cli("set", f"net/{dev}/rss/indir", ",".join(map(str, spread)), state=tmp_path)
    assert code == 0 and ("applied" in out or spread == before.table), out + err
    assert ethtool_x(dev).table == spread
    beyond = [before.rings] * len(before.table)
    code, out, err = cli("set", f"net/{dev}/rss/indir", ",".join(map(str, beyond)), state=tmp_path)
    assert code == 1 and f"queue {before.rings} does not exist" in err, out + err  # refused before any write
    assert ethtool_x(dev).table == spread
    ioctl_table_write_reaches_the_driver(dev, spread, before.rings)
    record("rss", {"rings": before.rings, "table_size": len(before.table), "key_bytes": len(before.key) // 3 + 1})
    code, out, err = cli("restore", state=tmp_path)
    assert code == 0, out + err
    assert ethtool_x(dev) == before


def ioctl_table_write_reaches_the_driver(dev: str, table: list[int], rings: int) -> None:
    """ETHTOOL_SRSSH's table as the kernel reads it: the same table written again is taken; one entry naming a
    queue that does not exist is refused by the kernel itself (ethtool_copy_validate_indir: EINVAL), which it
    could only find with the entries where the uapi puts them. Bypasses irqtune's own check on purpose."""
    ethtool_ioctl.set_rss(dev, indir=table)
    assert ethtool_x(dev).table == table
    with pytest.raises(ethtool_ioctl.EthtoolIoctlError) as refused:
        ethtool_ioctl.set_rss(dev, indir=[*table[:-1], rings])
    assert refused.value.errno == 22, refused.value  # EINVAL
    assert ethtool_x(dev).table == table
