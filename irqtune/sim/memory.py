"""The simulated host's free-page reserve and its NICs' RX refill (docs/physics.md §11).

One zone of `memory_mb` managed memory. Its watermarks follow what the agent may write, as the kernel's
__setup_per_zone_wmarks does: min = vm.min_free_kbytes, low = min + max(min/4, managed × watermark_scale_factor
/ 10,000). kswapd keeps free pages at low; an application's allocation burst (the phase's alloc_burst_mb) drives
them below it before kswapd catches up, from low down to low - burst, evenly over the burst. RX refill is
GFP_ATOMIC: it fails while free pages are below its floor (3/8 of min) plus what the rings' refill batch needs
(a quarter ring per queue). The share of the burst spent there is the share of received packets that find the
ring empty and are dropped; each such spell is logged, as warn_alloc does, at most 10 reports per 5 s. While a
burst's bottom is below min, applications stall in direct reclaim (/proc/vmstat allocstall_normal).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..parse.common import parse_count

PAGE_KB = 4
ATOMIC_FLOOR = 3 / 8  # of min: __GFP_HIGH halves it, a non-blocking request takes a further quarter (6.3+)
REPORTS_PER_S = 10 / 5  # warn_alloc's ratelimit: DEFAULT_RATELIMIT_BURST per DEFAULT_RATELIMIT_INTERVAL
DEFAULT_SCALE = 10
ROOMY_MB = 16384  # a scenario without [host] memory_mb: a 16 GB zone, no bursts, never short
STALLS_PER_S = 50  # direct-reclaim stalls per second while a burst takes free pages below min (allocstall_normal)


def default_min_free_kbytes(memory_mb: int) -> int:
    """The kernel's init_per_zone_wmark_min: sqrt(16 × lowmem kB), 128 kB to 256 MiB."""
    return max(128, min(262144, int((memory_mb * 1024 * 16) ** 0.5)))


@dataclass
class Reserve:
    """What the zone looks like for one step."""

    managed: int  # pages
    min: int
    low: int
    high: int
    free: int  # the step's mean
    refill_fail: float  # share of the step RX refill fails


def reserve(memory_mb: int, min_free_kbytes: int, scale: int, burst_mb: float, refill_pages: int) -> Reserve:
    """The zone under an allocation burst of `burst_mb`, and the share of time RX refill fails in it."""
    managed = memory_mb * 1024 // PAGE_KB
    low_min = min_free_kbytes // PAGE_KB
    gap = max(low_min // 4, managed * scale // 10_000)
    low, high = low_min + gap, low_min + 2 * gap
    burst = int(burst_mb * 1024 // PAGE_KB)
    floor = int(low_min * ATOMIC_FLOOR) + refill_pages
    bottom = low - burst
    fail = 0.0 if burst <= 0 or bottom >= floor else min(1.0, (floor - bottom) / burst)
    return Reserve(managed, low_min, low, high, max(0, low - burst // 2), fail)


def read_int(text: str | None, default: int) -> int:
    value = parse_count((text or "").strip())
    return default if value is None else value


def zoneinfo_text(r: Reserve) -> str:
    return (f"Node 0, zone   Normal\n  pages free     {r.free}\n        boost    0\n        min      {r.min}\n"
            f"        low      {r.low}\n        high     {r.high}\n        spanned  {r.managed}\n"
            f"        present  {r.managed}\n        managed  {r.managed}\n")  # fmt: skip


def failure_records(first_seq: int, count: int, clock_us: int, cpus: list[int]) -> str:
    """warn_alloc's report as /dev/kmsg gives it, the softirq's CPU in the dump_stack record that follows."""
    out = []
    for i in range(count):
        cpu, seq = cpus[i % len(cpus)], first_seq + 2 * i
        out.append(f"4,{seq},{clock_us + i},-;swapper/{cpu}: page allocation failure: order:0, "
                   f"mode:0x820(GFP_ATOMIC), nodemask=(null),cpuset=/,mems_allowed=0\n"
                   f"4,{seq + 1},{clock_us + i},c;CPU: {cpu} UID: 0 PID: 0 Comm: swapper/{cpu} Not tainted "
                   "6.18.0-irqtune-sim #1\n")  # fmt: skip
    return "".join(out)
