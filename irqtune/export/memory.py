"""Prometheus families of interrupt-context memory (measure/memory.py; docs/physics.md §11).

    irqtune_page_pool_alloc_total{device,queue,pool,kind}      page_pool allocations by path: fast, slow,
                                                               slow_high_order, empty, refill, waive
    irqtune_page_pool_recycle_total{device,queue,pool,kind}    recycles: cached, cache_full, ring, ring_full,
                                                               released_refcnt
    irqtune_page_pool_inflight_pages{device,queue,pool}        pages handed out and not returned
    irqtune_page_pool_inflight_bytes{device,queue,pool}
    irqtune_rx_alloc_failures_total{device,queue}              netdev qstats rx-alloc-fail, where reported
    irqtune_nic_rx_alloc_failures_total{device}                the NIC driver's own RX buffer/page allocation
                                                               failure counters (ethtool -S; measure/nic_stats.py)
    irqtune_kernel_alloc_failures_total{context}               warn_alloc reports in the kernel log since the
                                                               agent or exporter started: atomic, other
    irqtune_zone_free_pages{node,zone} / irqtune_zone_watermark_pages{node,zone,mark}   min, low, high
    irqtune_vm_sysctl{name}                                    min_free_kbytes, watermark_scale_factor
    irqtune_vm_events_total{name}                              allocstall_*, compact_* (/proc/vmstat)

`queue` is the pool's NAPI id ("napi-N") where the kernel names one, else "" (the netlink pool has no queue
index; each RX queue has its own pool and NAPI). Families with nothing to show are left out.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..measure.memory import MemoryState
from .labels import label
from .select import Filters

ALLOC = ("fast", "slow", "slow_high_order", "empty", "refill", "waive")
RECYCLE = ("cached", "cache_full", "ring", "ring_full", "released_refcnt")


def _pools(state: MemoryState, filters: Filters) -> Iterator[Metric]:
    pools = state.pools.pools if state.pools else []
    if not pools:
        return
    keys = ["device", "queue", "pool"]
    alloc = CounterMetricFamily("irqtune_page_pool_alloc", "page_pool allocations by path (netdev "
                                "page-pool-stats-get).", labels=[*keys, "kind"])  # fmt: skip
    recycle = CounterMetricFamily("irqtune_page_pool_recycle", "page_pool recycles by destination (netdev "
                                  "page-pool-stats-get).", labels=[*keys, "kind"])  # fmt: skip
    pages = GaugeMetricFamily("irqtune_page_pool_inflight_pages", "Pages a page_pool handed out and has not had "
                              "back.", labels=keys)  # fmt: skip
    size = GaugeMetricFamily("irqtune_page_pool_inflight_bytes", "Memory a page_pool handed out and has not had "
                             "back.", labels=keys)  # fmt: skip
    for pool in pools:
        device = state.ifnames.get(pool.ifindex or -1, "")
        if device and not filters.interface(device):
            continue
        base = [label(device), f"napi-{pool.napi_id}" if pool.napi_id else "", str(pool.id)]
        for kind in ALLOC:
            if f"alloc_{kind}" in pool.stats:
                alloc.add_metric([*base, kind], pool.stats[f"alloc_{kind}"])
        for kind in RECYCLE:
            if f"recycle_{kind}" in pool.stats:
                recycle.add_metric([*base, kind], pool.stats[f"recycle_{kind}"])
        if pool.inflight is not None:
            pages.add_metric(base, pool.inflight)
        if pool.inflight_mem is not None:
            size.add_metric(base, pool.inflight_mem)
    yield from (f for f in (alloc, recycle, pages, size) if f.samples)


def _failures(state: MemoryState, filters: Filters) -> Iterator[Metric]:
    queues = [q for q in state.rx_queues if q.rx_alloc_fail is not None]
    if queues:
        rx = CounterMetricFamily("irqtune_rx_alloc_failures", "RX buffer allocation failures per queue (netdev "
                                 "qstats rx-alloc-fail).", labels=["device", "queue"])  # fmt: skip
        for q in queues:
            device = state.ifnames.get(q.ifindex, str(q.ifindex))
            if filters.interface(device):
                rx.add_metric([label(device), str(q.queue)], q.rx_alloc_fail)
        yield rx
    nics = {dev: n for dev, n in state.nic_rx_alloc_failures.items() if filters.interface(dev)}
    if nics:
        nic = CounterMetricFamily("irqtune_nic_rx_alloc_failures", "RX buffer allocation failures the NIC driver "
                                  "counts (ethtool -S: alloc_rx_buff_failed, rx_alloc_fail, ...).",
                                  labels=["device"])  # fmt: skip
        for dev, count in sorted(nics.items()):
            nic.add_metric([label(dev)], count)
        yield nic
    if state.alloc_failures is not None:
        logged = CounterMetricFamily("irqtune_kernel_alloc_failures", "Page allocation failures the kernel logged "
                                     "(warn_alloc) since irqtune started.", labels=["context"])  # fmt: skip
        logged.add_metric(["atomic"], state.alloc_failures.atomic)
        logged.add_metric(["other"], state.alloc_failures.total - state.alloc_failures.atomic)
        yield logged


def _reserve(state: MemoryState) -> Iterator[Metric]:
    zones = [z for z in state.zones if z.managed]
    if zones:
        free = GaugeMetricFamily("irqtune_zone_free_pages", "Free pages per zone (/proc/zoneinfo).",
                                 labels=["node", "zone"])  # fmt: skip
        marks = GaugeMetricFamily("irqtune_zone_watermark_pages", "Zone watermarks (/proc/zoneinfo): atomic "
                                  "allocations fail below part of min.", labels=["node", "zone", "mark"])  # fmt: skip
        for z in zones:
            free.add_metric([str(z.node), label(z.name)], z.free)
            for mark in ("min", "low", "high"):
                marks.add_metric([str(z.node), label(z.name), mark], getattr(z, mark))
        yield free
        yield marks
    sysctls = {"min_free_kbytes": state.min_free_kbytes, "watermark_scale_factor": state.watermark_scale_factor}
    if any(v is not None for v in sysctls.values()):
        gauge = GaugeMetricFamily("irqtune_vm_sysctl", "The free-page reserve's sysctls.", labels=["name"])
        for name, value in sysctls.items():
            if value is not None:
                gauge.add_metric([name], value)
        yield gauge
    events = {k: v for k, v in state.vmstat.items() if k.startswith(("allocstall_", "compact_"))}
    if events:
        counter = CounterMetricFamily("irqtune_vm_events", "Direct reclaim and compaction (/proc/vmstat).",
                                      labels=["name"])  # fmt: skip
        for name, value in sorted(events.items()):
            counter.add_metric([name], value)
        yield counter


def memory_families(state: MemoryState | None, filters: Filters) -> Iterator[Metric]:
    """Every memory family with something to show."""
    if state is None:
        return
    yield from _pools(state, filters)
    yield from _failures(state, filters)
    yield from _reserve(state)
