"""/proc/net/dev and /proc/net/netstat: parsing, bad lines, and per-interface rates (resets are not wraps)."""

from __future__ import annotations

from pathlib import Path

from irqtune.host import Host
from irqtune.measure.rates import compute_rates
from irqtune.measure.snapshot import take_snapshot
from irqtune.parse.netdev import FIELDS, parse_netdev, parse_netstat

HEADER = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier "
    "compressed\n"
)


def row(name: str, rx_packets: int, rx_drop: int = 0, tx_drop: int = 0) -> str:
    values = [0] * len(FIELDS)
    values[FIELDS.index("rx_packets")], values[FIELDS.index("rx_drop")] = rx_packets, rx_drop
    values[FIELDS.index("tx_drop")] = tx_drop
    return f"{name:>6}: " + " ".join(map(str, values)) + "\n"


def test_parses_every_column_and_names_a_bad_line():
    odd = row("bad", 1).replace(" 1 ", " ² ", 1)  # str.isdigit() says yes, int() says no
    table = parse_netdev(
        HEADER + row("eth0", 12, 3, 4) + "garbage line\n" + row("veth-a.1", 18446744073709551615) + odd
    )
    assert table.devices["eth0"]["rx_packets"] == 12 and table.devices["eth0"]["rx_drop"] == 3
    assert table.devices["eth0"]["tx_drop"] == 4
    assert table.devices["veth-a.1"]["rx_packets"] == (1 << 64) - 1  # 64-bit counters
    assert [(p.line, "NAME:" in p.message) for p in table.problems] == [(4, True), (6, True)]


def test_the_real_file_parses_without_problems():
    text = Path("/proc/net/dev").read_text()
    table = parse_netdev(text)
    assert not table.problems and "lo" in table.devices
    assert set(table.devices["lo"]) == set(FIELDS)


def test_netstat_busy_poll_counter_and_a_misaligned_pair():
    text = "TcpExt: A BusyPollRxPackets\nTcpExt: 1 42\nIpExt: X Y\nIpExt: 1\nMptcpExt: Z\nMptcpExt: ²\n"
    sections, problems = parse_netstat(text)
    assert sections["TcpExt"]["BusyPollRxPackets"] == 42
    assert "IpExt" not in sections and [p.line for p in problems] == [3, 5]
    real, real_problems = parse_netstat(Path("/proc/net/netstat").read_text())
    assert not real_problems and "TcpExt" in real


def test_rates_per_interface_and_a_recreated_interface_counts_from_zero(tmp_path):
    def snap(text: str, netstat: str, at: float):
        (tmp_path / "proc" / "net").mkdir(parents=True, exist_ok=True)
        (tmp_path / "proc" / "net" / "dev").write_text(HEADER + text)
        (tmp_path / "proc" / "net" / "netstat").write_text(netstat)
        s = take_snapshot(Host(str(tmp_path)))
        s.monotonic = at
        return s

    before = snap(row("a", 1000, 10) + row("b", 5000), "TcpExt: BusyPollRxPackets\nTcpExt: 100\n", 0.0)
    after = snap(row("a", 3000, 30) + row("b", 400) + row("c", 7), "TcpExt: BusyPollRxPackets\nTcpExt: 300\n", 2.0)
    rates = compute_rates(before, after)
    assert rates.netdev["a"]["rx_packets"] == 1000 and rates.netdev["a"]["rx_drop"] == 10
    assert rates.netdev["b"]["rx_packets"] == 200  # went down: recreated, so its count is all new
    assert "c" not in rates.netdev  # appeared: no rate yet
    assert rates.busy_poll_rx == 100
