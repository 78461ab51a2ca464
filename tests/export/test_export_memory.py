"""Memory families in the exposition (export/memory.py): page pools per device and queue, allocation failures,
zone watermarks; from a fake root through the collector, and from a reading with pools."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from conftest import make_root
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from irqtune.export import Filters, IrqtuneCollector, make_registry
from irqtune.export.memory import memory_families
from irqtune.host import Host
from irqtune.measure.memory import AllocFailures, MemoryState
from irqtune.nl.pagepool import PagePool, PagePools, RxQueueStats

KMSG = Path(__file__).parent.parent / "fixtures" / "kmsg" / "real-failures.kmsg"
ZONE = "Node 0, zone   Normal\n  pages free     900\n        min      500\n        low      600\n" \
       "        high     700\n        managed  9000\n"  # fmt: skip


def samples(text: str, name: str) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}  # fmt: skip


def test_zone_sysctls_and_logged_failures_come_from_a_fake_root(tmp_path):
    root = make_root(tmp_path, {"proc/interrupts": "           CPU0\n  1:  5  IO-APIC  1-edge  i8042\n",
                                "proc/zoneinfo": ZONE, "proc/vmstat": "allocstall_normal 7\ncompact_stall 2\n",
                                "proc/sys/vm/min_free_kbytes": "2000\n"})  # fmt: skip
    (Path(root) / "dev").mkdir()
    shutil.copy(KMSG, Path(root) / "dev" / "kmsg")
    text = generate_latest(make_registry(IrqtuneCollector(Host(str(root))))).decode()
    assert samples(text, "irqtune_zone_free_pages") == {(("node", "0"), ("zone", "Normal")): 900}
    marks = samples(text, "irqtune_zone_watermark_pages")
    assert marks[(("mark", "min"), ("node", "0"), ("zone", "Normal"))] == 500
    assert samples(text, "irqtune_vm_sysctl") == {(("name", "min_free_kbytes"),): 2000}
    assert samples(text, "irqtune_vm_events_total")[(("name", "allocstall_normal"),)] == 7
    assert samples(text, "irqtune_kernel_alloc_failures_total") == {(("context", "atomic"),): 2,
                                                                    (("context", "other"),): 3}  # fmt: skip


def test_page_pool_families_carry_device_and_queue():
    pool = PagePool(id=9, ifindex=2, napi_id=8195, inflight=64, inflight_mem=262144,
                    stats={"alloc_fast": 100, "alloc_slow": 7, "recycle_ring_full": 3})  # fmt: skip
    state = MemoryState(pools=PagePools([pool]), rx_queues=[RxQueueStats(2, 1, rx_alloc_fail=4)],
                        alloc_failures=AllocFailures(1, 1, Counter({0: 1})), ifnames={2: "eth1"})  # fmt: skip
    names = {f.name: f for f in memory_families(state, Filters())}
    alloc = {tuple(s.labels.values()): s.value for s in names["irqtune_page_pool_alloc"].samples}
    assert alloc[("eth1", "napi-8195", "9", "slow")] == 7
    assert names["irqtune_page_pool_inflight_bytes"].samples[0].value == 262144
    rx = names["irqtune_rx_alloc_failures"].samples[0]
    assert rx.labels == {"device": "eth1", "queue": "1"} and rx.value == 4
    assert "irqtune_zone_free_pages" not in names  # nothing to show, no family


def test_nic_driver_rx_alloc_failures_are_one_counter_per_device():
    state = MemoryState(nic_rx_alloc_failures={"eth1": 17, "eth2": 0})
    names = {f.name: f for f in memory_families(state, Filters())}
    family = names["irqtune_nic_rx_alloc_failures"]
    assert {s.labels["device"]: s.value for s in family.samples if s.name.endswith("_total")} == {"eth1": 17, "eth2": 0}
    assert "irqtune_nic_rx_alloc_failures" not in {f.name for f in memory_families(MemoryState(), Filters())}
