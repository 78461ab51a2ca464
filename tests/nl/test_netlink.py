"""ethtool netlink: the exact messages irqtune sends, and the real kernel's answers (eth0 read only)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest
from conftest import real_linux, require
from netns import can_make_namespaces, irqtune_in, veth_pair

from irqtune.nl import ethtool as nl
from irqtune.nl.raw import GenericGet

NLA_F_NESTED = 1 << 15


def attributes(msg) -> list[tuple[int, bool, bytes]]:
    """(type, nested, payload) of every top-level attribute, parsed from the encoded bytes."""
    msg.encode()
    data = bytes(msg.data)
    length = struct.unpack_from("I", data, 0)[0]
    assert length == len(data)
    out, offset = [], 16 + 4  # nlmsghdr + genlmsghdr
    while offset < length:
        nla_len, nla_type = struct.unpack_from("HH", data, offset)
        out.append((nla_type & ~NLA_F_NESTED, bool(nla_type & NLA_F_NESTED), data[offset + 4 : offset + nla_len]))
        offset += (nla_len + 3) & ~3
    return out


def test_coalesce_set_message_has_exact_attributes_and_types():
    msg = nl.build("coalesce", "set", "eth9", {"rx_usecs": 50, "rx_max_frames": 64, "use_adaptive_rx": 1})
    assert (msg["cmd"], msg["version"]) == (nl.COALESCE_SET, 1)
    attrs = attributes(msg)
    header_type, nested, header = attrs[0]
    assert (header_type, nested) == (1, True)  # ETHTOOL_A_COALESCE_HEADER, nested
    name_len, name_type = struct.unpack_from("HH", header, 0)
    assert name_type == 2 and header[4:name_len].rstrip(b"\0") == b"eth9"  # ETHTOOL_A_HEADER_DEV_NAME
    assert attrs[1:] == [
        (2, False, struct.pack("I", 50)),  # ETHTOOL_A_COALESCE_RX_USECS, u32
        (3, False, struct.pack("I", 64)),  # RX_MAX_FRAMES, u32
        (11, False, struct.pack("B", 1)),  # USE_ADAPTIVE_RX (after STATS_BLOCK_USECS = 10), u8
    ]


def test_channels_set_and_get_messages():
    msg = nl.build("channels", "set", "eth9", {"combined_count": 8})
    assert msg["cmd"] == nl.CHANNELS_SET
    assert attributes(msg)[1:] == [(9, False, struct.pack("I", 8))]  # ETHTOOL_A_CHANNELS_COMBINED_COUNT
    get = nl.build("channels", "get", "eth9")
    assert get["cmd"] == nl.CHANNELS_GET and len(attributes(get)) == 1


def test_rings_set_and_get_messages():
    msg = nl.build("rings", "set", "eth9", {"rx": 2048, "tx": 1024})
    assert (msg["cmd"], nl.RINGS_GET) == (nl.RINGS_SET, 15)
    assert attributes(msg)[1:] == [
        (6, False, struct.pack("I", 2048)),  # ETHTOOL_A_RINGS_RX (after the four *_MAX), u32
        (9, False, struct.pack("I", 1024)),  # ETHTOOL_A_RINGS_TX
    ]
    with pytest.raises(ValueError):
        nl.build("rings", "set", "eth9", {"rx_max": 4096})  # a driver's maximum is read, never set


def test_rss_reply_decodes_table_key_and_function():
    found = {
        nl.RSS_HFUNC: struct.pack("I", 1),  # ETH_RSS_HASH_TOP
        nl.RSS_INDIR: struct.pack("8I", 0, 1, 2, 3, 0, 1, 2, 3),
        nl.RSS_HKEY: bytes(range(4)),
    }
    assert nl.decode_rss(found) == {"hfunc": "toeplitz", "indir": [0, 1, 2, 3, 0, 1, 2, 3], "hkey": "00010203"}
    assert nl.decode_rss({}) == {}


def test_unknown_or_nested_attributes_are_refused():
    with pytest.raises(ValueError):
        nl.build("coalesce", "set", "eth9", {"rx_profile": 1})
    with pytest.raises(ValueError):
        nl.build("channels", "set", "eth9", {"bogus": 1})


def test_coalesce_get_on_eth0_reads_only_what_the_driver_supports():
    require(real_linux() and os.path.exists("/sys/class/net/eth0"), "needs this host's eth0")
    with nl.Ethtool() as client:  # read only: eth0 is never written
        coalesce = client.get_coalesce("eth0")
        channels = client.get_channels("eth0")
    assert coalesce and set(coalesce) <= nl.COALESCE_SETTABLE
    assert all(isinstance(v, int) for v in coalesce.values())
    assert channels.get("combined_count", channels.get("rx_count", 0)) >= 1


def test_rings_and_rss_get_on_eth0_are_read_only_and_bounded():
    require(real_linux() and os.path.exists("/sys/class/net/eth0"), "needs this host's eth0")
    with nl.Ethtool() as client:  # read only: eth0 is never written
        try:
            rings = client.get_rings("eth0")
        except nl.EthtoolError as err:
            pytest.skip(f"eth0's driver has no rings: {err}")
        rss = client.get_rss("eth0") if rings else {}
    for name in ("rx", "tx"):
        if name in rings:
            assert 0 < rings[name] <= rings[f"{name}_max"]
    assert set(rss) <= {"hfunc", "indir", "hkey"}


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.netns
def test_channels_set_and_restore_and_coalescing_unsupported_on_veth(tmp_path):
    require(can_make_namespaces() is None, f"{can_make_namespaces()}")
    with veth_pair(queues=2) as pair:
        ns, dev = pair.receiver_ns, pair.receiver
        irqtune = irqtune_in(ns, tmp_path)

        original = irqtune("get", f"net/{dev}/channels/rx").stdout.strip()
        assert original == "2"
        result = irqtune("set", f"net/{dev}/channels/rx", "1")
        assert result.returncode == 0, result.stdout + result.stderr
        assert irqtune("get", f"net/{dev}/channels/rx").stdout.strip() == "1"
        too_many = irqtune("set", f"net/{dev}/channels/rx", "64")
        assert too_many.returncode == 1 and "above the driver's maximum of 2" in too_many.stderr
        unsupported = irqtune("set", f"net/{dev}/coalesce/rx-usecs", "50")
        assert unsupported.returncode == 3 and "unsupported" in unsupported.stdout, unsupported.stdout
        assert "Traceback" not in unsupported.stderr
        restored = irqtune("restore")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert irqtune("get", f"net/{dev}/channels/rx").stdout.strip() == original


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.netns
def test_rings_are_unsupported_on_veth_and_said_so(tmp_path):
    """veth has no ring parameters (no get_ringparam up to 6.18): RINGS_GET answers EOPNOTSUPP, which irqtune
    reports as unsupported, no traceback and nothing journaled; the sizes themselves are tested on the simulator."""
    require(can_make_namespaces() is None, f"{can_make_namespaces()}")
    with veth_pair(queues=2) as pair:
        irqtune = irqtune_in(pair.receiver_ns, tmp_path)
        result = irqtune("set", f"net/{pair.receiver}/rings/rx", "128")
        assert result.returncode == 3 and "unsupported" in result.stdout, result.stdout + result.stderr
        assert "Operation not supported" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.netns
def test_napi_settings_set_and_restore_per_instance_on_veth(tmp_path):
    require(can_make_namespaces() is None, f"{can_make_namespaces()}")
    with veth_pair(queues=2) as pair:
        ns, dev = pair.receiver_ns, pair.receiver
        listing = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c",
             "import json; from irqtune.nl.netdev import Netdev; print(json.dumps(Netdev().napis()))"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        ifindex = int(subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{dev}/ifindex"],
                                     capture_output=True, text=True, check=True).stdout)  # fmt: skip
        napis = [n for n in json.loads(listing.stdout) if n["ifindex"] == ifindex]
        require(bool(napis), "veth created no NAPI instance with GRO on (kernel without veth NAPI)")
        napi = napis[0]["id"]
        irqtune = irqtune_in(ns, tmp_path)

        wanted = {"defer-hard-irqs": "2", "gro-flush-timeout": "200000", "irq-suspend-timeout": "20000000000",
                  "threaded": "1"}  # fmt: skip
        originals = {k: irqtune("get", f"napi/{dev}/{napi}/{k}").stdout.strip() for k in wanted}
        for setting, value in wanted.items():
            result = irqtune("set", f"napi/{dev}/{napi}/{setting}", value)
            assert result.returncode == 0, result.stdout + result.stderr
            assert irqtune("get", f"napi/{dev}/{napi}/{setting}").stdout.strip() == value  # 8-byte NLA_UINT too
        assert irqtune("restore").returncode == 0
        assert {k: irqtune("get", f"napi/{dev}/{napi}/{k}").stdout.strip() for k in wanted} == originals


def test_napi_set_message():
    from irqtune.nl.netdev import NAPI_SET, build_napi_set

    msg = build_napi_set(257, {"defer_hard_irqs": 2, "gro_flush_timeout": 200000})
    assert msg["cmd"] == NAPI_SET
    assert attributes(msg) == [
        (2, False, struct.pack("I", 257)),  # NETDEV_A_NAPI_ID
        (5, False, struct.pack("I", 2)),  # DEFER_HARD_IRQS, u32
        (6, False, struct.pack("Q", 200000)),  # GRO_FLUSH_TIMEOUT, NLA_UINT sent as 8 bytes
    ]
    with pytest.raises(ValueError):
        build_napi_set(257, {"irq": 5})


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.netns
def test_device_wide_napi_write_keeps_each_napis_own_value_for_restore(tmp_path):
    require(can_make_namespaces() is None, f"{can_make_namespaces()}")
    with veth_pair(queues=2) as pair:
        ns, dev = pair.receiver_ns, pair.receiver

        def run(*argv: str) -> subprocess.CompletedProcess:
            return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=False)

        code = "import json; from irqtune.nl.netdev import Netdev; print(json.dumps(Netdev().napis()))"
        ifindex = int(run("cat", f"/sys/class/net/{dev}/ifindex").stdout)
        napis = [n["id"] for n in json.loads(run(sys.executable, "-c", code).stdout) if n["ifindex"] == ifindex]
        require(bool(napis), "veth created no NAPI instance with GRO on")
        someone_else = f"from irqtune.nl.netdev import Netdev; Netdev().set_napi({napis[0]}, {{'defer_hard_irqs': 3}})"
        assert run(sys.executable, "-c", someone_else).returncode == 0  # set outside irqtune: not journaled
        irqtune = irqtune_in(ns, tmp_path)
        result = irqtune("set", f"net/{dev}/napi-defer-hard-irqs", "5")
        assert result.returncode == 0, result.stdout + result.stderr
        assert irqtune("get", f"napi/{dev}/{napis[0]}/defer-hard-irqs").stdout.strip() == "5"
        assert irqtune("restore").returncode == 0
        assert irqtune("get", f"napi/{dev}/{napis[0]}/defer-hard-irqs").stdout.strip() == "3"
        assert irqtune("get", f"net/{dev}/napi-defer-hard-irqs").stdout.strip() == "0"


def test_rss_set_message_carries_the_device_table_and_key():
    payload = nl.rss_set_payload("eth9", [0, 1, 1, 0], b"\x6d\x5a")
    found = attributes_of(payload)
    assert found[nl.RSS_INDIR] == struct.pack("=4I", 0, 1, 1, 0) and found[nl.RSS_HKEY] == b"\x6d\x5a"
    assert b"eth9\0" in found[nl.A_HEADER]
    assert nl.RSS_INDIR not in attributes_of(nl.rss_set_payload("eth9", None, b"\x01"))


def attributes_of(payload: bytes) -> dict[int, bytes]:
    from irqtune.nl.raw import attributes as parse

    return parse(payload)


class FakeGet:
    def __init__(self, has_rss_set: bool) -> None:
        self.has, self.sent = has_rss_set, []

    def has_command(self, family: str, command: int) -> bool:
        return self.has and (family, command) == ("ethtool", nl.RSS_SET)

    def do(self, family: str, command: int, version: int, payload: bytes) -> None:
        self.sent.append((family, command, payload))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("has_rss_set", [True, False])
def test_rss_set_goes_over_netlink_where_the_kernel_has_it_else_the_ioctl_and_says_which(has_rss_set, monkeypatch):
    ioctl_calls = []
    monkeypatch.setattr(nl.ethtool_ioctl, "set_rss", lambda *a: ioctl_calls.append(a))
    client = nl.Ethtool()
    client._get = FakeGet(has_rss_set)
    how = client.set_rss("eth9", [0, 1], None)
    if has_rss_set:
        assert how == "set via netlink RSS_SET" and client._get.sent[0][:2] == ("ethtool", 48) and not ioctl_calls
    else:
        assert how == "set via ioctl: kernel has no RSS_SET" and ioctl_calls == [("eth9", [0, 1], None)]


def test_this_kernel_lists_ethtool_commands():
    require(real_linux(), "needs a real Linux kernel")
    get = GenericGet()
    try:
        assert get.has_command("ethtool", nl.COALESCE_GET) and not get.has_command("ethtool", 4096)
        release = tuple(int(n) for n in os.uname().release.split("-")[0].split(".")[:2])
        assert get.has_command("ethtool", nl.RSS_SET) == (release >= (6, 17))  # RSS_SET came in 6.17
    finally:
        get.close()


RSS_SET_ON = "import sys; from irqtune.nl.ethtool import Ethtool; print(Ethtool().set_rss(sys.argv[1], [0] * 4))"


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.netns
def test_rss_on_a_driver_without_it_is_one_clear_line(tmp_path):
    """veth has no RSS (no get_rxfh/set_rxfh): the knob reads as unsupported ("driver has no RSS"), a set is refused
    by the kernel (RSS_SET here, the ioctl before 6.17) without a traceback, and nothing is journaled."""
    require(can_make_namespaces() is None, f"{can_make_namespaces()}")
    with veth_pair(queues=2) as pair:
        irqtune = irqtune_in(pair.receiver_ns, tmp_path)
        got = irqtune("get", f"net/{pair.receiver}/rss/indir")
        assert got.returncode != 0 and "driver has no RSS (ethtool -x)" in got.stdout + got.stderr, got
        result = irqtune("set", f"net/{pair.receiver}/rss/indir", "equal 2")
        assert result.returncode != 0 and "driver has no RSS" in result.stdout + result.stderr, result
        assert "Traceback" not in result.stderr + got.stderr
        assert not (tmp_path / "journal.json").exists() or "rss" not in (tmp_path / "journal.json").read_text()
        direct = subprocess.run(["ip", "netns", "exec", pair.receiver_ns, sys.executable, "-c", RSS_SET_ON,
                                 pair.receiver], capture_output=True, text=True, check=False)  # fmt: skip
        assert direct.returncode != 0 and "EthtoolError" in direct.stderr  # refused by the kernel itself
        assert "Operation not supported" in direct.stderr, direct.stderr
