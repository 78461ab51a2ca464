"""What the agent reads once and again only when it changed (issue 17: one Reading per pass, parse only what changed):
the topology until a CPU comes or goes, the sysfs device walk until a device or an IRQ's actions change; and the
interrupt rates' fast path gives what counter_delta gives."""

from __future__ import annotations

import os
import time

import fakehost
import pytest
from hypothesis import given
from hypothesis import strategies as st

from irqtune.agent.loop import Agent
from irqtune.config import Config
from irqtune.host import Host
from irqtune.measure.rates import RowRate, _rising_rates, compute_rates, counter_delta
from irqtune.measure.snapshot import IrqStatics, take_snapshot

U32 = 1 << 32


class CountingHost(Host):
    """Counts the files and directories read below the root, by path."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def _read_in(self, tree: str, rel: str) -> bytes:  # every read, listing and link below a tree's fd
        self.reads.append(f"{tree}/{rel}")
        return super()._read_in(tree, rel)

    def _listdir(self, tree: str, rel: str) -> list[str]:
        self.reads.append(f"{tree}/{rel}")
        return super()._listdir(tree, rel)

    def _exists(self, tree: str, rel: str) -> bool:
        self.reads.append(f"{tree}/{rel}")
        return super()._exists(tree, rel)

    def _readlink(self, tree: str, rel: str) -> str:
        self.reads.append(f"{tree}/{rel}")
        return super()._readlink(tree, rel)

    def taken(self, fragment: str) -> int:
        found = sum(fragment in path for path in self.reads)
        self.reads.clear()
        return found


def test_the_agent_reads_topology_and_devices_again_only_when_a_cpu_or_a_device_changed(tmp_path):
    root = fakehost.build(tmp_path / "root")
    host = CountingHost(str(root))
    agent = Agent(host, Config(), str(tmp_path / "state"), time.monotonic)
    agent.run_pass()
    host.reads.clear()
    agent.run_pass()
    assert host.taken("thread_siblings_list") == 0
    agent.run_pass()
    assert host.taken("msi_irqs") == 0
    assert [d.name for d in agent.reading.inventory.devices if d.source == "sysfs"]  # still there, from the cache
    (root / "sys/devices/system/cpu/online").write_text("0-5\n")  # CPUs 6 and 7 go offline
    agent.run_pass()
    assert host.taken("thread_siblings_list") == 6
    assert agent.reading.topology.online == [0, 1, 2, 3, 4, 5]
    os.rename(root / "sys/class/net/ens1f0", root / "sys/class/net/ens1f9")  # a device renamed (or replaced)
    agent.run_pass()
    assert host.taken("msi_irqs") > 0
    assert "ens1f9" in [d.name for d in agent.reading.inventory.devices]


def test_cached_devices_are_copies_each_pass_fills_its_own(tmp_path):
    host = Host(str(fakehost.build(tmp_path / "root")))
    agent = Agent(host, Config(), str(tmp_path / "state"), time.monotonic)
    agent.run_pass()
    first = {d.name: len(d.irqs) for d in agent.reading.inventory.devices}
    agent.run_pass()
    assert {d.name: len(d.irqs) for d in agent.reading.inventory.devices} == first  # not doubled


counts = st.lists(st.integers(0, U32 - 1), min_size=1, max_size=12)


@given(counts, st.data(), st.floats(0.1, 10.0))
def test_the_fast_path_gives_what_counter_delta_gives(old, data, interval):
    new = data.draw(st.lists(st.integers(0, U32 - 1), min_size=len(old), max_size=len(old)))
    new = data.draw(st.sampled_from([new, list(old), [min(o + 7, U32 - 1) for o in old]]))
    cpus = list(range(len(old)))
    fast = _rising_rates(cpus, old, new, interval, dict.fromkeys(cpus, 0.0))
    reference = {cpu: counter_delta(o, n, interval) / interval for cpu, o, n in zip(cpus, old, new)}
    if fast is None:  # a counter fell: the caller takes counter_delta's path
        assert any(n < o for o, n in zip(old, new))
    else:
        assert fast == reference


def test_an_irqs_node_and_hint_are_read_again_only_when_its_actions_change(tmp_path):
    """A pass reads each IRQ's requested and effective affinity; its node and the driver's hint only when the IRQ
    is new, its actions changed, or every IrqStatics.REFRESH readings (a driver may set a new hint)."""
    root = fakehost.build(tmp_path / "root")
    host = CountingHost(str(root))
    statics = IrqStatics()
    first = take_snapshot(host, statics=statics)
    assert host.taken("/node") == len(first.affinity) > 0 and first.affinity[100].node == 0
    (root / "proc/irq/100/node").write_text("1\n")
    (root / "proc/irq/100/affinity_hint").write_text("f0\n")
    (root / "proc/irq/100/effective_affinity_list").write_text("5\n")
    again = take_snapshot(host, statics=statics)
    assert host.taken("/node") == 0 and host.taken("affinity_hint") == 0
    assert again.affinity[100].effective == [5]  # read every pass
    assert (again.affinity[100].node, again.affinity[100].hint) == (0, [])  # kept: the same actions
    text = (root / "proc/interrupts").read_text()
    (root / "proc/interrupts").write_text(text.replace("ens1f0-TxRx-0", "ens1f0-TxRx-9"))  # requested again
    renamed = take_snapshot(host, statics=statics)
    assert host.taken("/node") == 1 and (renamed.affinity[100].node, renamed.affinity[100].hint) == (1, [4, 5, 6, 7])
    (root / "proc/irq/101/node").write_text("1\n")
    for _ in range(IrqStatics.REFRESH):
        refreshed = take_snapshot(host, statics=statics)
    assert refreshed.affinity[101].node == 1  # the periodic refresh read it
    assert take_snapshot(host).affinity[101].node == 1  # a one-off reader (status) has no statics: reads all


def test_rows_that_did_not_move_share_one_read_only_rate_map(tmp_path):
    """On a big host most rows are all zeros both times: they cost no per-CPU work and share one mapping, which no
    consumer can change under the others."""
    root = fakehost.build(tmp_path / "root")
    host = Host(str(root))
    before = take_snapshot(host, with_affinity=False)
    after = take_snapshot(host, with_affinity=False)
    after.monotonic = before.monotonic + 1.0
    rates = compute_rates(before, after)
    quiet = [r for r in rates.interrupts.values() if r.per_cpu and not r.total]
    assert len(quiet) >= 2 and all(r.per_cpu is quiet[0].per_cpu for r in quiet)
    assert set(quiet[0].per_cpu.values()) == {0.0}
    with pytest.raises(TypeError):
        quiet[0].per_cpu[0] = 1.0  # type: ignore[index]


@given(counts, st.data(), st.floats(0.1, 10.0))
def test_a_rows_rates_busy_cpus_and_busiest_come_from_its_deltas_as_the_map_gives_them(old, data, interval):
    """A moved row's per-CPU map is built only when read; what is asked of every row (its busy CPUs, its busiest,
    its total) comes from the deltas and agrees with the map."""
    new = [o + data.draw(st.integers(0, 1000)) for o in old]
    cpus = list(range(len(old)))
    rates = _rising_rates(cpus, old, new, interval, dict.fromkeys(cpus, 0.0))
    reference = {cpu: (n - o) / interval for cpu, o, n in zip(cpus, old, new)}
    row = RowRate("40", rates, (sum(new) - sum(old)) / interval)
    assert dict(rates.items()) == reference and rates == reference and rates.get(len(old)) is None
    assert row.busy == tuple(cpu for cpu, rate in reference.items() if rate > 0)
    if row.total:
        assert row.busiest() == max(reference, key=reference.__getitem__)
