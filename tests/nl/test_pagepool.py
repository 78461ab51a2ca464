"""page_pool and RX queue allocation counters from the netdev family (nl/pagepool.py): replies decoded byte for
byte as netdev.yaml lays them out, and the running kernel's answers (pools, or why none)."""

from __future__ import annotations

import sys
import time

import pytest
from conftest import real_linux, require
from netns import TCP_SINK, TCP_SOURCE, can_make_namespaces, veth_pair

from irqtune.nl import pagepool as pp
from irqtune.nl.raw import GenericGet, attribute


def u(value: int, size: int = 8) -> bytes:
    return value.to_bytes(size, sys.byteorder)


def test_pool_reply_decoded_with_4_and_8_byte_uints():
    attrs = {1: u(7), 2: u(3, 4), 3: u(8195, 4), 4: u(512), 5: u(2097152)}
    assert pp.decode_pool(attrs) == pp.PagePool(id=7, ifindex=3, napi_id=8195, inflight=512, inflight_mem=2097152)
    assert pp.decode_pool({2: u(3, 4)}) is None


def test_stats_reply_names_its_pool_in_the_nested_info():
    info = attribute(1, u(7)) + attribute(2, u(3, 4))
    attrs = {1: info, 8: u(1000), 9: u(40, 4), 11: u(5), 17: u(9)}
    assert pp.decode_stats(attrs) == (7, 3, {"alloc_fast": 1000, "alloc_slow": 40, "alloc_empty": 5,
                                             "recycle_ring_full": 9})  # fmt: skip
    assert pp.decode_stats({8: u(1)}) is None


def test_qstats_reply_keeps_rx_queues_only():
    rx = {1: u(3, 4), 2: u(0, 4), 3: u(2, 4), 12: u(17)}
    assert pp.decode_qstats(rx) == pp.RxQueueStats(3, 2, rx_alloc_fail=17)
    assert pp.decode_qstats({**rx, 2: u(1, 4)}) is None


@pytest.fixture
def kernel():
    require(real_linux(), "needs a real Linux kernel")
    get = GenericGet()
    yield get
    get.close()


def test_this_kernel_answers_page_pool_get_or_says_what_it_needs(kernel):
    found = pp.read_page_pools(kernel)
    if found.unavailable:  # e.g. 6.18 built without CONFIG_PAGE_POOL_STATS: pools listed, stats refused
        assert "Linux 6.8+" in found.unavailable or "netlink" in found.unavailable
    for pool in found.pools:
        assert pool.id > 0 and set(pool.stats) <= set(pp.COUNTERS)


def test_this_kernel_answers_qstats(kernel):
    queues, why = pp.read_rx_queue_stats(kernel)
    assert why is None or "6.9" in why
    assert all(q.queue >= 0 and q.ifindex > 0 for q in queues)


READ = """
import json
from irqtune.nl.pagepool import read_page_pools
r = read_page_pools()
print(json.dumps({"why": r.unavailable, "pools": [[p.id, p.inflight, p.stats] for p in r.pools]}))
"""


@pytest.mark.slow
def test_veth_pools_move_under_traffic_where_the_kernel_lists_them():
    """A veth with GRO has a page_pool per RX queue; the netlink dump lists it only where the driver names its
    netdev (veth does not on 6.18), and its stats need CONFIG_PAGE_POOL_STATS: otherwise a clear skip."""
    import json

    require(can_make_namespaces() is None, str(can_make_namespaces()))
    with veth_pair(gro=True) as pair:
        sink = pair.spawn(pair.receiver_ns, TCP_SINK.format(ip=pair.receiver_ip))
        source = pair.spawn(pair.sender_ns, TCP_SOURCE.format(ip=pair.receiver_ip, seconds=2))
        try:
            time.sleep(0.5)
            before = json.loads(pair.run(pair.receiver_ns, sys.executable, "-c", READ).stdout)
            time.sleep(1.0)
            after = json.loads(pair.run(pair.receiver_ns, sys.executable, "-c", READ).stdout)
        finally:
            source.wait(10)
            sink.kill()
            sink.wait()
    if not after["pools"] or not any(stats for _, _, stats in after["pools"]):
        pytest.skip(f"no page_pool stats visible in the namespace: {after['why'] or 'no pool listed'}")
    fast = [stats.get("alloc_fast", 0) + stats.get("alloc_slow", 0) for _, _, stats in after["pools"]]
    old = [stats.get("alloc_fast", 0) + stats.get("alloc_slow", 0) for _, _, stats in before["pools"]]
    assert sum(fast) > sum(old)
