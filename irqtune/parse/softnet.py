"""Parser for /proc/net/softnet_stat (net/core/net-procfs.c).

One row per ONLINE CPU, 32-bit hex columns. Generations: 9 columns (RHEL 5), 10
(+received_rps), 11 (+flow_limit_count), 13 (+backlog_len, +CPU index, Linux 5.10),
15 (+input_qlen, +process_qlen, Linux 6.4). Extra columns are ignored. Without the
index column the row number is NOT the CPU id when CPUs are offline: rows are mapped
onto the online CPUs instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .common import Problem, is_hex, kernel_lines

MIN_COLUMNS = 9


@dataclass(slots=True)
class SoftnetRow:
    cpu: int
    processed: int
    dropped: int
    time_squeeze: int
    cpu_collision: int
    received_rps: int | None = None
    flow_limit_count: int | None = None
    backlog_len: int | None = None
    index: int | None = None
    input_qlen: int | None = None
    process_qlen: int | None = None
    width: int = 0

    COUNTERS = ("processed", "dropped", "time_squeeze", "cpu_collision", "received_rps", "flow_limit_count")


@dataclass(slots=True)
class SoftnetTable:
    rows: list[SoftnetRow] = field(default_factory=list)
    cpu_source: str = "index"  # "index" column, "online" CPU list, or "row" number (a guess)
    problems: list[Problem] = field(default_factory=list)


def _column(values: list[int], n: int) -> int | None:
    return values[n] if len(values) > n else None


def parse_softnet(text: str, online: list[int] | None = None, source: str = "/proc/net/softnet_stat") -> SoftnetTable:
    """`online` (the online CPU ids) maps rows that lack the index column onto CPUs."""
    table = SoftnetTable()
    parsed: list[list[int]] = []
    for number, line in enumerate(kernel_lines(text), 1):
        tokens = line.split()
        if not tokens:
            continue
        if not all(map(is_hex, tokens)):
            table.problems.append(Problem(source, number, f"expected hex columns, got {line.strip()[:60]!r}"))
            continue
        values = [int(t, 16) for t in tokens]
        if len(values) < MIN_COLUMNS or any(v < 0 or v >= 1 << 32 for v in values):
            table.problems.append(
                Problem(source, number, f"expected at least {MIN_COLUMNS} 32-bit hex columns, found {len(values)}")
            )
            continue
        parsed.append(values)
    all_indexed = all(len(v) >= 13 for v in parsed)
    if not all_indexed:
        if online is not None and len(online) == len(parsed):
            table.cpu_source = "online"
        else:
            table.cpu_source = "row"
            if parsed and online is not None:
                table.problems.append(
                    Problem(
                        source, 1, f"{len(parsed)} rows for {len(online)} online CPUs; CPU ids taken from row order"
                    )
                )
    for row_number, values in enumerate(parsed):
        index = _column(values, 12)
        if table.cpu_source == "index":
            cpu = index
        elif table.cpu_source == "online":
            cpu = online[row_number]  # type: ignore[index]
        else:
            cpu = row_number
        table.rows.append(
            SoftnetRow(
                cpu=cpu,  # type: ignore[arg-type]
                processed=values[0],
                dropped=values[1],
                time_squeeze=values[2],
                cpu_collision=values[8],
                received_rps=_column(values, 9),
                flow_limit_count=_column(values, 10),
                backlog_len=_column(values, 11),
                index=index,
                input_qlen=_column(values, 13),
                process_qlen=_column(values, 14),
                width=len(values),
            )
        )
    return table
