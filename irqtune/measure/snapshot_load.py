"""`irqtune snapshot --json` read back (for `irqtune diff`): strict, so a rate is never made from a guess.

What makes the whole file unusable (not JSON, not schema 1, no time, a section of the wrong type) raises
SnapshotFileError naming the FILE; one bad row (an interrupt row, a softirq vector, a softnet row, an affinity
entry, ...) is skipped and becomes a Problem at its FILE:LINE (the file is one key a line, as the command writes
it), as a malformed /proc row is.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import jsonfile
from ..parse.common import Problem, brief
from ..parse.diskstats import DiskstatsTable
from ..parse.interrupts import InterruptRow, InterruptTable
from ..parse.netdev import NetdevTable
from ..parse.softirqs import SoftirqTable
from ..parse.softnet import SoftnetRow, SoftnetTable
from ..parse.stat import ProcStat
from .snapshot import SCHEMA, IrqAffinity, Snapshot

MAX_COUNT = 1 << 64  # every counter the kernel prints fits in 64 bits
MAX_CPU = 8192  # CONFIG_NR_CPUS at most (README: what the kernel writes)
MAX_TIME = 1e11  # seconds since the epoch: year 5138; past it a date cannot even be printed


class SnapshotFileError(ValueError):
    """The file as a whole cannot be a snapshot: `FILE: what` (or `FILE:LINE:COL: what` for bad JSON)."""


class _Bad(ValueError):
    """One row is malformed: the message; the loader adds FILE:LINE."""


def load_snapshot(path: str, text: str) -> Snapshot:
    """The snapshot in `text` (read from `path`); its `problems` are the rows skipped, and only those."""
    try:
        data = jsonfile.loads(path, text)
    except jsonfile.JsonError as err:
        raise SnapshotFileError(f"{err.where}: not a snapshot: {err.what}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise SnapshotFileError(f"{path}: not a schema {SCHEMA} `irqtune snapshot --json` document")
    return _Loader(path, text, data).snapshot()


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_COUNT:
        raise _Bad(f"expected a counter (an integer from 0 to 2^64), got {brief(value)}")
    return value


def _optional_count(value: object) -> int | None:
    return None if value is None else _count(value)


def _cpu(value: object) -> int:
    cpu = int(value) if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 6 else value
    if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu < MAX_CPU:
        raise _Bad(f"expected a CPU id below {MAX_CPU}, got {brief(value)}")
    return cpu


def _cpus(value: object) -> list[int]:
    if not isinstance(value, list):
        raise _Bad(f"expected a list of CPU ids, got {brief(value)}")
    return [_cpu(v) for v in value]


def _seconds(value: object) -> float:
    if not jsonfile.is_number(value) or value < 0:
        raise _Bad(f"expected seconds (a number, 0 or more), got {brief(value)}")
    return float(value)


def _string(value: object, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise _Bad(f"expected a string, got {brief(value)}")
    return value


def _sparse(value: object, cpus: list[int]) -> tuple[int, ...]:
    """{cpu id: count} with zeros omitted, as a tuple aligned with `cpus`."""
    if not isinstance(value, dict):
        raise _Bad(f"expected {{cpu id: count}}, got {brief(value)}")
    counts = {_cpu(k): _count(v) for k, v in value.items()}
    stray = sorted(set(counts) - set(cpus))
    if stray:
        raise _Bad(f"counts for CPU {stray[0]}, which the header does not list")
    return tuple(counts.get(cpu, 0) for cpu in cpus)


class _Loader:
    def __init__(self, path: str, text: str, data: dict) -> None:
        self.path, self.text, self.data = path, text, data
        self.problems: list[Problem] = []

    def whole(self, key: str, kind: type) -> object:
        """A top-level section: None when absent or null; of the wrong type, the file is unusable."""
        value = self.data.get(key)
        if value is not None and not isinstance(value, kind):
            raise SnapshotFileError(f"{self.path}: '{key}' must be {'an object' if kind is dict else 'a list'}")
        return value

    def rows(self, items, keys: tuple[str, ...], make: Callable[[str, object], object],
             line: Callable[[str], int] | None = None) -> dict:  # fmt: skip
        """make(key, value) for each item; a bad one is a problem at its line and left out."""
        out = {}
        for key, value in items:
            try:
                out[key] = make(key, value)
            except _Bad as err:
                where = line(key) if line else jsonfile.key_line(self.text, *keys, key)
                self.problems.append(Problem(self.path, where, str(err)))
        return out

    def list_line(self, keys: tuple[str, ...], first: str) -> Callable[[str], int]:
        """The line of the i-th element of the list at `keys`: its i-th `"first":` key after the list's own."""
        start = jsonfile.key_line(self.text, *keys)
        lines = self.text.splitlines()
        starts = [n for n, text in enumerate(lines[start:], start + 1) if text.lstrip().startswith(f'"{first}":')]
        return lambda i: starts[int(i)] if int(i) < len(starts) else start

    def field(self, keys: tuple[str, ...], convert: Callable[[object], object], value: object) -> object:
        """A section's own field (a header): bad, the file is unusable (every row depends on it)."""
        try:
            return convert(value)
        except _Bad as err:
            line = jsonfile.key_line(self.text, *keys)
            raise SnapshotFileError(f"{self.path}:{line}: '{'.'.join(keys)}': {err}") from None

    def snapshot(self) -> Snapshot:
        d = self.data
        taken_at = d.get("taken_at")
        if not jsonfile.is_number(taken_at) or not 0 <= taken_at < MAX_TIME:
            raise SnapshotFileError(f"{self.path}: 'taken_at' must be a time (seconds since the epoch)")
        monotonic = d.get("monotonic")
        snap = Snapshot(
            taken_at=float(taken_at),
            monotonic=float(monotonic) if jsonfile.is_number(monotonic) else float("nan"),
            root=d["root"] if isinstance(d.get("root"), str) else "",
            hostname=d.get("hostname") if isinstance(d.get("hostname"), str) else None,
            boot_id=d.get("boot_id") if isinstance(d.get("boot_id"), str) else None,
        )
        online = d.get("online_cpus")
        snap.online = self.field(("online_cpus",), _cpus, online) if online is not None else None
        snap.interrupts = self.interrupts()
        snap.softirqs = self.softirqs()
        snap.softnet = self.softnet()
        snap.stat = self.stat()
        snap.netdev = self.counters("netdev", NetdevTable)
        snap.diskstats = self.counters("diskstats", DiskstatsTable)
        busy = d.get("busy_poll_rx_packets")
        snap.busy_poll_rx_packets = busy if isinstance(busy, int) and not isinstance(busy, bool) else None
        affinity = self.whole("affinity", dict) or {}
        snap.affinity = {int(k): a for k, a in self.rows(affinity.items(), ("affinity",), self.affinity).items()}
        unavailable = self.whole("unavailable", dict) or {}
        snap.unavailable = {str(k): str(v) for k, v in unavailable.items()}
        snap.problems = self.problems
        return snap

    def interrupts(self) -> InterruptTable | None:
        section = self.whole("interrupts", dict)
        if section is None:
            return None
        cpus = self.field(("interrupts", "cpus"), _cpus, section.get("cpus"))
        rows = section.get("rows")
        if not isinstance(rows, dict):
            raise SnapshotFileError(f"{self.path}: 'interrupts.rows' must be an object")
        table = InterruptTable(cpus=cpus)
        table.rows = self.rows(rows.items(), ("interrupts", "rows"), lambda k, v: _interrupt_row(k, v, cpus))
        return table

    def softirqs(self) -> SoftirqTable | None:
        section = self.whole("softirqs", dict)
        if section is None:
            return None
        cpus = self.field(("softirqs", "cpus"), _cpus, section.get("cpus"))
        vectors = section.get("vectors")
        if not isinstance(vectors, dict):
            raise SnapshotFileError(f"{self.path}: 'softirqs.vectors' must be an object")
        made = self.rows(vectors.items(), ("softirqs", "vectors"), lambda _, v: list(_sparse(v, cpus)))
        return SoftirqTable(cpus=cpus, vectors=made)

    def softnet(self) -> SoftnetTable | None:
        section = self.whole("softnet", dict)
        if section is None:
            return None
        rows = section.get("rows")
        if not isinstance(rows, list):
            raise SnapshotFileError(f"{self.path}: 'softnet.rows' must be a list")
        line = self.list_line(("softnet", "rows"), "cpu")
        made = self.rows(((str(i), r) for i, r in enumerate(rows)), (), lambda _, r: _softnet_row(r), line)
        source = section.get("cpu_source")
        return SoftnetTable(rows=list(made.values()), cpu_source=source if isinstance(source, str) else "index")

    def stat(self) -> ProcStat | None:
        section = self.whole("stat", dict)
        if section is None:
            return None
        stat = ProcStat()
        for name in ("irq_seconds", "softirq_seconds", "idle_seconds"):
            per_cpu = section.get(name) or {}
            if not isinstance(per_cpu, dict):
                raise SnapshotFileError(f"{self.path}: 'stat.{name}' must be an object")
            made = self.rows(per_cpu.items(), ("stat", name), lambda k, v: (_cpu(k), _seconds(v)))
            setattr(stat, name, dict(made.values()))
        for name in ("intr_total", "softirq_total"):
            value = section.get(name)
            setattr(stat, name, value if isinstance(value, int) and not isinstance(value, bool) else None)
        return stat

    def counters(self, key: str, kind: type) -> object:
        """netdev and diskstats: {name: {field: count}}."""
        section = self.whole(key, dict)
        if section is None:
            return None
        made = self.rows(section.items(), (key,), lambda _, v: _fields(v))
        return kind(made)

    def affinity(self, key: str, value: object) -> IrqAffinity:
        if not (key.isascii() and key.isdigit() and len(key) < 10) or not isinstance(value, dict):
            raise _Bad(f"expected IRQ number: {{requested, effective, hint, node}}, got {brief(key)}")
        lists = {k: None if value.get(k) is None else _cpus(value[k]) for k in ("requested", "effective", "hint")}
        node = value.get("node")
        if node is not None and (isinstance(node, bool) or not isinstance(node, int)):
            raise _Bad(f"expected a NUMA node number, got {brief(node)}")
        return IrqAffinity(**lists, node=node)


def _interrupt_row(key: str, value: object, cpus: list[int]) -> InterruptRow:
    if not isinstance(value, dict):
        raise _Bad(f"expected an interrupt row (an object), got {brief(value)}")
    counts = _sparse(value["counts"], cpus) if "counts" in value else None
    actions = value.get("actions") or []
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise _Bad(f"expected a list of action names, got {brief(actions)}")
    extra = value.get("extra_counts") or []
    if not isinstance(extra, list):
        raise _Bad(f"expected a list of counts, got {brief(extra)}")
    line = value.get("line")
    return InterruptRow(
        key=key,
        line=line if isinstance(line, int) and not isinstance(line, bool) else 0,
        counts=counts,
        total=sum(counts) if counts is not None else _optional_count(value.get("total")),
        description=_string(value.get("description")),
        chip=_string(value.get("chip")),
        hwirq=_string(value.get("hwirq")),
        trigger=_string(value.get("trigger")),
        flow=_string(value.get("flow")),
        actions=tuple(actions),
        extra_counts=tuple(_count(v) for v in extra),
    )


def _softnet_row(value: object) -> SoftnetRow:
    if not isinstance(value, dict):
        raise _Bad(f"expected a softnet row (an object), got {brief(value)}")
    required = {name: _count(value.get(name)) for name in SoftnetRow.COUNTERS[:4]}
    optional = {
        name: _optional_count(value.get(name))
        for name in ("received_rps", "flow_limit_count", "backlog_len", "index", "input_qlen", "process_qlen")
    }
    width = value.get("width", 0)
    return SoftnetRow(cpu=_cpu(value.get("cpu")), **required, **optional, width=width if isinstance(width, int) else 0)


def _fields(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _Bad(f"expected {{field: count}}, got {brief(value)}")
    return {str(k): _count(v) for k, v in value.items()}
