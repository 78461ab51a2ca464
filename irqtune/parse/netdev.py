"""Parsers for /proc/net/dev (per-interface counters) and /proc/net/netstat (MIB counters).

/proc/net/dev (net/core/net-procfs.c `dev_seq_printf_stats`): two header lines, then
`NAME: rx bytes packets errs drop fifo frame compressed multicast tx bytes packets errs
drop fifo colls carrier compressed`, 64-bit decimal. `drop` is rx_dropped + rx_missed_errors
(ring overflows on real NICs), `fifo` rx_fifo_errors. Interface names cannot hold ':' or
whitespace (`dev_valid_name`), so the first ':' ends the name; they are still kernel
strings and are only used as dictionary keys. Both files are per network namespace.

/proc/net/netstat (net/ipv4/proc.c): pairs of lines, `Section: Name Name ...` then
`Section: value value ...`; irqtune wants TcpExt BusyPollRxPackets (packets received by
busy polling, the sign of an application that polls its socket).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .common import Problem, is_count, kernel_lines

RX_FIELDS = ("rx_bytes", "rx_packets", "rx_errs", "rx_drop", "rx_fifo", "rx_frame", "rx_compressed", "rx_multicast")
TX_FIELDS = ("tx_bytes", "tx_packets", "tx_errs", "tx_drop", "tx_fifo", "tx_colls", "tx_carrier", "tx_compressed")
FIELDS = RX_FIELDS + TX_FIELDS


@dataclass(slots=True)
class NetdevTable:
    devices: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> field -> count
    problems: list[Problem] = field(default_factory=list)


def parse_netdev(text: str, source: str = "/proc/net/dev") -> NetdevTable:
    table = NetdevTable()
    for number, line in enumerate(kernel_lines(text), 1):
        if number <= 2 or not line.strip():
            continue  # the two header lines
        name, colon, rest = line.partition(":")
        name = name.strip()
        values = rest.split()
        if not colon or not name or len(values) != len(FIELDS) or not all(map(is_count, values)):
            table.problems.append(
                Problem(source, number, f"expected 'NAME: {len(FIELDS)} counters', got {line.strip()[:60]!r}")
            )
            continue
        table.devices[name] = dict(zip(FIELDS, map(int, values)))
    return table


def parse_netstat(text: str, source: str = "/proc/net/netstat") -> tuple[dict[str, dict[str, int]], list[Problem]]:
    """Section -> counter -> value; a header/value pair that does not line up is one problem."""
    sections: dict[str, dict[str, int]] = {}
    problems: list[Problem] = []
    lines = kernel_lines(text)
    for i in range(0, len(lines) - 1, 2):
        head, _, names = lines[i].partition(":")
        head2, _, values = lines[i + 1].partition(":")
        keys, numbers = names.split(), values.split()
        if head != head2 or len(keys) != len(numbers) or not all(is_count(n.removeprefix("-")) for n in numbers):
            problems.append(Problem(source, i + 1, f"expected a header line and a value line for {head[:20]!r}"))
            continue
        sections[head] = dict(zip(keys, map(int, numbers)))
    return sections, problems
