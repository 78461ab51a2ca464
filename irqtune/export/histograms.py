"""eBPF log2 histograms as Prometheus histograms with one fixed bucket layout.

The probes count durations in log2 slots of nanoseconds: slot s holds the integer
values 2^(s-1) .. 2^s - 1 (bcc's `bpf_log2l` + 1 convention, see probe/base.py), so
"at most 2^s - 1 ns" is exact for the cumulative count up to slot s. Every histogram
is exported with the same buckets, `le` = (2^s - 1) ns in seconds for s = 9 .. 30
(511 ns .. 1.07 s), plus `+Inf`: 23 buckets, `_sum` and `_count`. Lower slots are
inside the first bucket (cumulative buckets lose nothing), higher ones only in +Inf.
A fixed layout keeps the series set stable from scrape to scrape.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.utils import floatToGoString

from ..probe.base import Histogram

FIRST_SLOT = 9  # le = 511 ns
LAST_SLOT = 30  # le = 1.07 s
BUCKET_BOUNDS = tuple(Histogram.upper_ns(s) / 1e9 for s in range(FIRST_SLOT, LAST_SLOT + 1))
SERIES_PER_HISTOGRAM = len(BUCKET_BOUNDS) + 1 + 2  # buckets, +Inf, _sum, _count
_LE = tuple(floatToGoString(b) for b in BUCKET_BOUNDS)


def cumulative_buckets(slots: Sequence[int]) -> list[tuple[str, float]]:
    """(le, cumulative count) pairs for `slots` (index = slot), ending with ("+Inf", total)."""
    out: list[tuple[str, float]] = []
    running = sum(slots[: FIRST_SLOT + 1])
    out.append((_LE[0], running))
    for slot, le in zip(range(FIRST_SLOT + 1, LAST_SLOT + 1), _LE[1:]):
        running += slots[slot] if slot < len(slots) else 0
        out.append((le, running))
    out.append(("+Inf", sum(slots)))
    return out


def prometheus_histogram(hist: Histogram) -> tuple[list[tuple[str, float]], float]:
    """Buckets and the sum in seconds; the count is the +Inf bucket (the sum of the slots)."""
    return cumulative_buckets(hist.slots), hist.sum_ns / 1e9
