"""Interrupt-context memory: advise before RX refill runs dry (docs/physics.md §11). Pure: two readings in,
findings and changes out.

A NIC refills its RX ring in NAPI (softirq) with GFP_ATOMIC pages, from its page_pool's cache and ring first
(alloc_fast) and from the page allocator when they are empty (alloc_slow, alloc_empty). GFP_ATOMIC may not
reclaim: it succeeds while a zone's free pages stay above part of the min watermark, which vm.min_free_kbytes
sets (spread over the zones by size) and vm.watermark_scale_factor widens (the min -> low -> high gaps kswapd
uses to start reclaiming early). When refill fails, the ring runs short and the NIC drops.

    rx-refill-failing      RX allocation failures (qstats rx-alloc-fail, the NIC driver's own counters from
                           `ethtool -S`, atomic warn_alloc reports) or a pool taking most pages from the
                           allocator, while packets drop: raise vm.min_free_kbytes
                           (doubled, at least the pools' in-flight memory more, at most 5 % of memory), or
                           watermark_scale_factor once min_free_kbytes is at its ceiling
    rx-reserve-at-risk     before any drop: applications stall in direct reclaim (allocstall rising: free pages
                           fell below min) while a zone's free pages sit below half-way from min to low and
                           packets are received: the same raise, ahead of the first failed refill
    free-pages-near-min    a zone's free pages below its low watermark (kswapd awake), warning below half-way
                           from min to low
    page-pool-ring-too-small  most recycled pages found the pool's ptr_ring full: the pool is smaller than the
                           RX ring it serves
    high-order-atomic      atomic allocations of order > 0 failed, or a pool allocates high-order pages slowly:
                           which task/device asks for them (jumbo frames, a driver's multi-page buffers)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..findings import Finding
from ..measure.memory import MemoryState
from ..nl.pagepool import PagePool
from ..plan.change import Change
from ..plan.knob_id import VM_SYSCTLS

MIN_FREE = "sysctl/vm.min_free_kbytes"
SCALE = "sysctl/vm.watermark_scale_factor"
PAGE_KB = 4


@dataclass(frozen=True, slots=True)
class MemoryLimits:
    drops_per_s: float = 1.0  # received packets dropped faster than this count as drops
    slow_share: float = 0.5  # a pool taking this share of its pages from the page allocator is refilling slowly
    ring_full_share: float = 0.1  # this share of recycles finding the ring full: the pool is too small
    reserve_share: float = 0.05  # min_free_kbytes never advised above this share of managed memory
    scale_factor_step: int = 2  # watermark_scale_factor multiplied by this when min_free_kbytes is at its ceiling


@dataclass(slots=True)
class MemoryAdvice:
    findings: list[Finding] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)


def _delta(before: Mapping[str, int], after: Mapping[str, int], name: str) -> int:
    return max(0, after.get(name, 0) - before.get(name, 0))


def _pool_deltas(before: MemoryState, after: MemoryState) -> list[tuple[PagePool, dict[str, int]]]:
    old = {p.id: p.stats for p in (before.pools.pools if before.pools else [])}
    return [(p, {k: max(0, v - old.get(p.id, {}).get(k, 0)) for k, v in p.stats.items()})
            for p in (after.pools.pools if after.pools else []) if p.id in old]  # fmt: skip


def _refill_failures(before: MemoryState, after: MemoryState) -> tuple[int, int]:
    """(RX queue alloc failures, atomic warn_alloc reports) between the two readings."""
    old = {(q.ifindex, q.queue): q.rx_alloc_fail or 0 for q in before.rx_queues}
    queues = sum(max(0, (q.rx_alloc_fail or 0) - old.get((q.ifindex, q.queue), 0)) for q in after.rx_queues
                 if (q.ifindex, q.queue) in old)  # fmt: skip
    was, now = before.alloc_failures, after.alloc_failures
    atomic = max(0, now.atomic - was.atomic) if was and now else 0
    return queues, atomic


def _nic_failures(before: MemoryState, after: MemoryState) -> dict[str, int]:
    """NIC -> its driver's RX allocation failures between the two readings (ethtool -S), where they rose."""
    old = before.nic_rx_alloc_failures
    grown = {dev: count - old[dev] for dev, count in after.nic_rx_alloc_failures.items() if dev in old}
    return {dev: n for dev, n in sorted(grown.items()) if n > 0}


def reserve_target(state: MemoryState, limits: MemoryLimits = MemoryLimits()) -> int | None:
    """The vm.min_free_kbytes to advise: doubled, or raised by the pools' in-flight memory where that is more,
    at most `reserve_share` of managed memory and the knob's range; None when unknown or already there."""
    current = state.min_free_kbytes
    if current is None:
        return None
    managed_kb = sum(z.managed for z in state.zones) * PAGE_KB
    inflight_kb = sum((p.inflight_mem or 0) for p in (state.pools.pools if state.pools else [])) // 1024
    ceiling = min(VM_SYSCTLS["min_free_kbytes"][1], int(managed_kb * limits.reserve_share) or current)
    target = min(ceiling, max(current * 2, current + inflight_kb))
    return target if target > current else None


def _scale_target(state: MemoryState, limits: MemoryLimits) -> int | None:
    current = state.watermark_scale_factor
    if current is None:
        return None
    target = min(VM_SYSCTLS["watermark_scale_factor"][1], current * limits.scale_factor_step)
    return target if target > current else None


def _slow_share(d: Mapping[str, int]) -> float:
    """The share of a pool's pages that came from the page allocator, not its cache or ring."""
    total = d.get("alloc_fast", 0) + d.get("alloc_slow", 0)
    return d.get("alloc_slow", 0) / total if total else 0.0


def _refill(before: MemoryState, after: MemoryState, seconds: float, drops: float, limits: MemoryLimits,
            advice: MemoryAdvice) -> None:  # fmt: skip
    queues, atomic = _refill_failures(before, after)
    nics = _nic_failures(before, after)
    slow = [(p, d) for p, d in _pool_deltas(before, after) if _slow_share(d) >= limits.slow_share]
    if drops < limits.drops_per_s or not (queues or atomic or nics or slow):
        return
    signs = [f"{queues / seconds:.1f} RX allocation failures/s"] if queues else []
    signs += [f"{dev}: {n / seconds:.1f} RX buffer allocation failures/s (driver counters, ethtool -S)"
              for dev, n in nics.items()]  # fmt: skip
    signs += [f"{atomic} atomic page allocation failures logged"] if atomic else []
    signs += [f"page_pool {p.id} ({after.ifnames.get(p.ifindex or -1, p.ifindex)}) took "
              f"{d.get('alloc_slow', 0) / seconds:.0f} pages/s from the allocator" for p, d in slow]  # fmt: skip
    evidence = "; ".join(signs) + f", with {drops:.0f} received packets/s dropped"
    target, scale = reserve_target(after, limits), None
    if target is not None:
        advice.changes.append(Change(MIN_FREE, str(after.min_free_kbytes), str(target),
                                     "keep free pages above the min watermark for RX refill in softirq "
                                     "(GFP_ATOMIC cannot reclaim); larger RX rings also ride out a dry spell",
                                     evidence=evidence))  # fmt: skip
    elif (scale := _scale_target(after, limits)) is not None:
        advice.changes.append(Change(SCALE, str(after.watermark_scale_factor), str(scale),
                                     "min_free_kbytes is at its ceiling: wake kswapd earlier so that free "
                                     "pages stay above min", evidence=evidence))  # fmt: skip
    advise = f"raise vm.min_free_kbytes {after.min_free_kbytes} -> {target}" if target is not None else (
        f"raise vm.watermark_scale_factor {after.watermark_scale_factor} -> {scale}" if scale is not None
        else "reserve already at its ceiling: larger RX rings or less memory pressure")  # fmt: skip
    advice.findings.append(Finding("warning", "rx-refill-failing", f"RX refill is running dry: {evidence}; {advise}"))


def _at_risk(before: MemoryState, after: MemoryState, received: float, advice: MemoryAdvice) -> None:
    """Ahead of the first failed refill: direct reclaim while free pages sit in the lower half of min..low."""
    if advice.changes or received <= 0:
        return
    stalls = sum(_delta(before.vmstat, after.vmstat, k) for k in after.vmstat if k.startswith("allocstall_"))
    low = [z for z in after.zones if z.managed and z.low and z.free < z.min + (z.low - z.min) // 2]
    target = reserve_target(after)
    if not stalls or not low or target is None:
        return
    zone = low[0]
    evidence = (f"{stalls} direct-reclaim stalls; node {zone.node} zone {zone.name} at {zone.free} free pages "
                f"(min {zone.min}, low {zone.low}) while {received:.0f} packets/s are received")  # fmt: skip
    advice.changes.append(Change(MIN_FREE, str(after.min_free_kbytes), str(target),
                                 "RX refill (GFP_ATOMIC) fails below the min watermark: widen the reserve before "
                                 "it does", evidence=evidence))  # fmt: skip
    advice.findings.append(Finding("warning", "rx-reserve-at-risk",
                                   f"free pages near min under direct reclaim: {evidence}; raise "
                                   f"vm.min_free_kbytes {after.min_free_kbytes} -> {target}"))  # fmt: skip


def _near_min(after: MemoryState, advice: MemoryAdvice) -> None:
    for zone in after.zones:
        if not zone.managed or not zone.low or zone.free >= zone.low:
            continue
        halfway = zone.min + (zone.low - zone.min) // 2
        severity = "warning" if zone.free < halfway else "info"
        advice.findings.append(Finding(severity, "free-pages-near-min",
            f"node {zone.node} zone {zone.name}: {zone.free} free pages, below low {zone.low} (min {zone.min}): "
            f"{zone.headroom} pages left before atomic allocations fail"))  # fmt: skip


def _rings(before: MemoryState, after: MemoryState, limits: MemoryLimits, advice: MemoryAdvice) -> None:
    for pool, d in _pool_deltas(before, after):
        ring, full = d.get("recycle_ring", 0), d.get("recycle_ring_full", 0)
        if full and full / (ring + full) >= limits.ring_full_share:
            device = after.ifnames.get(pool.ifindex or -1)
            message = (f"page_pool {pool.id}: {full / (ring + full):.0%} of recycled pages found its ring full "
                       f"({full} of {ring + full}): the pool is smaller than the RX ring it serves")  # fmt: skip
            advice.findings.append(Finding("warning", "page-pool-ring-too-small", message, device=device))


def _high_order(before: MemoryState, after: MemoryState, advice: MemoryAdvice) -> None:
    was, now = before.alloc_failures, after.alloc_failures
    if was is not None and now is not None:
        grown = {o: n - was.by_order.get(o, 0) for o, n in now.by_order.items()}
        orders = {o: n for o, n in grown.items() if o > 0 and n > 0}
        if orders:
            tasks = sorted(t for t, n in now.by_task.items() if n > was.by_task.get(t, 0))
            advice.findings.append(Finding("warning", "high-order-atomic",
                f"page allocations of order {', '.join(f'{o} ({n}x)' for o, n in sorted(orders.items()))} failed "
                f"in {', '.join(tasks[:5])}: a contiguous multi-page buffer (jumbo MTU, a driver's large RX "
                "pages) under fragmentation; order-0 buffers or a smaller MTU avoid it"))  # fmt: skip
    for pool, d in _pool_deltas(before, after):
        if d.get("alloc_slow_high_order", 0):
            device = after.ifnames.get(pool.ifindex or -1)
            advice.findings.append(Finding("info", "high-order-atomic",
                f"page_pool {pool.id} allocated {d['alloc_slow_high_order']} high-order pages from the allocator",
                device=device))  # fmt: skip


def advise_memory(before: MemoryState, after: MemoryState, seconds: float, rx_drops_per_s: float,
                  limits: MemoryLimits = MemoryLimits(), rx_packets_per_s: float = 0.0) -> MemoryAdvice:  # fmt: skip
    """Findings and vm.* changes from two readings `seconds` apart, the received packets dropped per second
    (softnet and interface drops together) and the packets received per second."""
    advice = MemoryAdvice()
    _refill(before, after, max(seconds, 1e-9), rx_drops_per_s, limits, advice)
    _at_risk(before, after, rx_packets_per_s, advice)
    _near_min(after, advice)
    _rings(before, after, limits, advice)
    _high_order(before, after, advice)
    return advice
