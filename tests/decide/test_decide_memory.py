"""Interrupt-context memory advice (decide/memory.py): numbers in the findings, bounded vm.* targets."""

from __future__ import annotations

from collections import Counter

from irqtune.decide.memory import MIN_FREE, SCALE, advise_memory, reserve_target
from irqtune.measure.memory import AllocFailures, MemoryState
from irqtune.nl.pagepool import PagePool, PagePools, RxQueueStats
from irqtune.parse.zoneinfo import Zone

GIB_PAGES = 262144


def state(free: int = 200_000, fails: int = 0, slow: int = 0, fast: int = 1000, ring_full: int = 0,
          atomic: int = 0, orders: Counter | None = None, min_free: int = 67584) -> MemoryState:  # fmt: skip
    stats = {"alloc_fast": fast, "alloc_slow": slow, "recycle_ring": 1000, "recycle_ring_full": ring_full}
    pool = PagePool(id=5, ifindex=2, inflight_mem=64 << 20, stats=stats)
    failures = AllocFailures(
        total=atomic, atomic=atomic, by_order=orders or Counter(), by_task=Counter({"swapper/3": atomic})
    )
    return MemoryState(
        zones=[Zone(0, "Normal", free=free, min=16_000, low=20_000, high=24_000, managed=4 * GIB_PAGES)],
        min_free_kbytes=min_free, watermark_scale_factor=10, pools=PagePools([pool]),
        rx_queues=[RxQueueStats(2, 0, rx_alloc_fail=fails)], alloc_failures=failures, ifnames={2: "eth1"},
    )  # fmt: skip


def test_refill_failures_with_drops_raise_min_free_kbytes_with_numbers():
    advice = advise_memory(state(), state(fails=50), seconds=10, rx_drops_per_s=120)
    assert [c.knob for c in advice.changes] == [MIN_FREE]
    change = advice.changes[0]
    assert (change.current, change.target) == ("67584", "135168")  # doubled: more than the pool's 64 MiB in flight
    finding = next(f for f in advice.findings if f.code == "rx-refill-failing")
    assert "5.0 RX allocation failures/s" in finding.message and "120 received packets/s dropped" in finding.message


def test_reserve_grows_by_the_pools_inflight_memory_where_that_is_more():
    assert reserve_target(state(min_free=16384)) == 16384 + 65536


def test_no_advice_without_drops_or_without_failures():
    assert not advise_memory(state(), state(fails=50), seconds=10, rx_drops_per_s=0).changes
    assert not advise_memory(state(), state(), seconds=10, rx_drops_per_s=500).changes


def test_slow_pool_and_atomic_reports_count_as_refill_trouble():
    advice = advise_memory(state(), state(slow=5000, fast=2000, atomic=3), seconds=10, rx_drops_per_s=50)
    message = next(f.message for f in advice.findings if f.code == "rx-refill-failing")
    assert "3 atomic page allocation failures logged" in message and "page_pool 5 (eth1) took 500 pages/s" in message


def test_reserve_target_is_bounded_by_memory_share_then_scale_factor_takes_over():
    small = state(min_free=50_000)
    small.zones[0].managed = 256_000  # 1000 MB: 5 % is 51,200 kB
    assert reserve_target(small) == 51_200
    small.min_free_kbytes = 51_200
    advice = advise_memory(state(), _with_fails(small), seconds=1, rx_drops_per_s=10)
    assert [(c.knob, c.target) for c in advice.changes] == [(SCALE, "20")]


def _with_fails(s: MemoryState) -> MemoryState:
    s.rx_queues = [RxQueueStats(2, 0, rx_alloc_fail=7)]
    return s


def test_free_pages_near_min_is_reported_with_headroom():
    findings = advise_memory(state(), state(free=17_000), seconds=1, rx_drops_per_s=0).findings
    (near,) = [f for f in findings if f.code == "free-pages-near-min"]
    assert near.severity == "warning" and "17000 free pages" in near.message and "1000 pages left" in near.message
    assert not [f for f in advise_memory(state(), state(free=19_500), 1, 0).findings if f.severity == "warning"]


def test_recycle_ring_always_full_means_pool_too_small():
    findings = advise_memory(state(), state(ring_full=400), seconds=1, rx_drops_per_s=0).findings
    (ring,) = [f for f in findings if f.code == "page-pool-ring-too-small"]
    assert ring.device == "eth1" and "100% of recycled pages" in ring.message


def test_high_order_atomic_failures_name_the_task():
    after = state(atomic=2, orders=Counter({3: 2}))
    (found,) = [f for f in advise_memory(state(), after, 1, 0).findings if f.code == "high-order-atomic"]
    assert "order 3 (2x)" in found.message and "swapper/3" in found.message


def test_direct_reclaim_near_min_raises_the_reserve_before_any_drop():
    before, after = state(free=17_500), state(free=17_500)
    before.vmstat, after.vmstat = {"allocstall_normal": 10}, {"allocstall_normal": 60}
    advice = advise_memory(before, after, seconds=1, rx_drops_per_s=0, rx_packets_per_s=400_000)
    assert [(c.knob, c.target) for c in advice.changes] == [(MIN_FREE, "135168")]
    (risk,) = [f for f in advice.findings if f.code == "rx-reserve-at-risk"]
    assert "50 direct-reclaim stalls" in risk.message and "17500 free pages" in risk.message
    assert not advise_memory(before, after, 1, 0, rx_packets_per_s=0).changes  # nothing received: no RX refill
    assert not advise_memory(before, state(free=19_000), 1, 0, rx_packets_per_s=400_000).changes  # upper half


def test_driver_rx_alloc_failures_with_drops_are_evidence_of_refill_failing():
    """The NIC driver's own counter (ethtool -S) rising with drops is the direct sign, in the same finding."""
    before, after = state(), state()
    before.nic_rx_alloc_failures, after.nic_rx_alloc_failures = {"eth1": 100, "eth2": 5}, {"eth1": 140, "eth2": 5}
    advice = advise_memory(before, after, seconds=10, rx_drops_per_s=80)
    assert [c.knob for c in advice.changes] == [MIN_FREE]
    assert "eth1: 4.0 RX buffer allocation failures/s (driver counters" in advice.changes[0].evidence
    finding = next(f for f in advice.findings if f.code == "rx-refill-failing")
    assert "eth1: 4.0 RX buffer allocation failures/s" in finding.message and "eth2" not in finding.message
    assert not advise_memory(before, after, seconds=10, rx_drops_per_s=0).changes  # no drops: no advice
