"""Parser for the interrupt-related lines of /proc/stat.

`cpuN` lines give time spent idle (4th and 5th fields: idle, iowait), in hard-IRQ (6th) and
softirq (7th) context, in USER_HZ ticks; `intr` starts with the total of all interrupts since boot; `softirq`
starts with the total softirqs, then one count per vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .common import Problem, describe, is_count, kernel_lines, parse_count

USER_HZ = 100  # sysconf(_SC_CLK_TCK): 100 on every architecture Linux still ships but alpha (1024)


@dataclass(slots=True)
class ProcStat:
    irq_seconds: dict[int, float] = field(default_factory=dict)  # per CPU
    softirq_seconds: dict[int, float] = field(default_factory=dict)
    idle_seconds: dict[int, float] = field(default_factory=dict)  # idle + iowait
    intr_total: int | None = None
    softirq_total: int | None = None
    problems: list[Problem] = field(default_factory=list)


def parse_stat(text: str, source: str = "/proc/stat") -> ProcStat:
    stat = ProcStat()
    for number, line in enumerate(kernel_lines(text), 1):
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:4].isdigit():
            fields = rest.split()
            cpu = parse_count(name[3:])
            if cpu is None or len(fields) < 7 or not all(map(is_count, fields[:7])):
                stat.problems.append(Problem(source, number, f"{describe(name)}: expected at least 7 tick counts"))
                continue
            stat.irq_seconds[cpu] = int(fields[5]) / USER_HZ
            stat.softirq_seconds[cpu] = int(fields[6]) / USER_HZ
            stat.idle_seconds[cpu] = (int(fields[3]) + int(fields[4])) / USER_HZ
        elif name in ("intr", "softirq"):
            first = rest.split(None, 1)[:1]
            if not first or not is_count(first[0]):
                stat.problems.append(Problem(source, number, f"{name}: expected a total count"))
                continue
            if name == "intr":
                stat.intr_total = int(first[0])
            else:
                stat.softirq_total = int(first[0])
    return stat
