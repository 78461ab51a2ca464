"""The igb adaptive-ITR port: every branch of igb_update_itr by hand, igb_set_itr's mapping, and where it settles."""

from __future__ import annotations

import pytest

from irqtune.model.queue import nic_queue
from irqtune.sim.aim import (
    IGB_4K_ITR,
    IGB_20K_ITR,
    IGB_70K_ITR,
    IGB_START_ITR,
    Aim,
    bulk_latency,
    igb_update_itr,
    low_latency,
    lowest_latency,
    run_aim,
)

S, H = 0.8e-6, 1.5e-6  # docs/physics.md §9.3's per-packet and per-interrupt costs


def test_register_units_are_quarter_microseconds():
    assert Aim().usecs == 162.0  # IGB_START_ITR 648, "~6000 ints/sec"
    a = Aim()
    for itr_val, usecs in ((IGB_70K_ITR, 14.0), (IGB_20K_ITR, 49.0), (IGB_4K_ITR, 245.0), (0, 1.0), (3, 1.0)):
        a.itr_val = itr_val
        assert a.usecs == usecs  # 14/49/245 µs: 71k/20.4k/4.1k ints/s, the 70K/20K/4K of the names


BRANCHES = [  # (class, packets, bytes, next class), worked by hand from igb_update_itr
    (lowest_latency, 1, 9000, bulk_latency),  # 9000 B/packet > 8000
    (lowest_latency, 2, 16002, bulk_latency),  # 8001 > 8000
    (lowest_latency, 2, 16001, low_latency),  # 8000 (integer division) is not > 8000; < 5 packets and > 512 B
    (lowest_latency, 4, 600, low_latency),
    (lowest_latency, 4, 512, lowest_latency),  # not > 512 B
    (lowest_latency, 5, 7500, lowest_latency),  # 5 packets is not < 5
    (low_latency, 2, 18000, bulk_latency),  # > 10000 B, 9000 B/packet
    (low_latency, 9, 10800, bulk_latency),  # > 10000 B, < 10 packets
    (low_latency, 10, 12010, bulk_latency),  # 1201 B/packet > 1200
    (low_latency, 10, 12000, low_latency),  # 1200 is not > 1200, 10 packets not > 35
    (low_latency, 36, 10080, lowest_latency),  # > 10000 B of small packets, > 35 of them
    (low_latency, 35, 10500, low_latency),
    (low_latency, 4, 8004, bulk_latency),  # ≤ 10000 B, 2001 B/packet > 2000
    (low_latency, 4, 8000, low_latency),
    (low_latency, 2, 511, lowest_latency),  # ≤ 2 packets, < 512 B
    (low_latency, 2, 512, low_latency),
    (low_latency, 3, 192, low_latency),  # 3 packets
    (bulk_latency, 36, 25001, low_latency),  # > 25000 B and > 35 packets
    (bulk_latency, 35, 52500, bulk_latency),
    (bulk_latency, 36, 25000, bulk_latency),  # 25000 is neither > 25000 nor < 1500, however many packets
    (bulk_latency, 1, 1499, low_latency),
    (bulk_latency, 1, 1500, bulk_latency),  # a lone full-size frame keeps bulk: bulk is sticky for MTU traffic
]


@pytest.mark.parametrize(("itr", "packets", "nbytes", "expected"), BRANCHES)
def test_igb_update_itr_branches(itr, packets, nbytes, expected):
    assert igb_update_itr(itr, packets, nbytes) == expected


@pytest.mark.parametrize("itr", [lowest_latency, low_latency, bulk_latency])
def test_no_packets_leaves_the_class(itr):
    assert igb_update_itr(itr, 0, 0) == itr


@pytest.mark.parametrize(("setting", "itr_val"), [(3, IGB_20K_ITR), (1, IGB_70K_ITR)])
def test_conservative_mode_clamps_lowest_to_low_but_keeps_the_class(setting, itr_val):
    a = Aim(setting)
    a.update(1, 64)
    assert a.itr == lowest_latency and a.itr_val == itr_val
    a.update(36, 10080)  # from lowest: 280 B/packet, ≥ 5 packets, stays lowest (in setting 3 too)
    assert a.itr == lowest_latency and a.itr_val == itr_val


def test_an_empty_interrupt_still_programs_the_class():
    a = Aim()
    a.update(0, 0)  # igb_set_itr maps current_itr even when igb_update_itr returned early
    assert a.itr == lowest_latency and a.itr_val == IGB_20K_ITR


def test_smoothing_never_holds_an_intermediate_value():
    a = Aim(1)
    a.update(1, 64)  # lowest: 56
    a.update(4, 600)  # -> low: the intermediate step 196*56//(196+14) = 52 loses to max(.., 196)
    assert (a.itr, a.itr_val) == (low_latency, IGB_20K_ITR)
    a.update(2, 18000)  # -> bulk: 980*196//(980+49) = 186 loses to 980
    assert (a.itr, a.itr_val) == (bulk_latency, IGB_4K_ITR)
    a.update(1, 100)  # interrupt rate increasing (shorter interval): taken at once
    assert (a.itr, a.itr_val) == (low_latency, IGB_20K_ITR)


def test_rejects_non_adaptive_settings():
    for setting in (0, 2, 4, 196):
        with pytest.raises(ValueError):
            Aim(setting)


SETTLE = [  # (rate pps, frame bytes, rx_itr_setting, settled interval µs)
    (10e3, 64, 3, 49.0),  # small packets: lowest class, clamped to 20k ints/s
    (300e3, 64, 3, 49.0),
    (10e3, 64, 1, 14.0),  # dynamic mode keeps lowest: 70k ints/s
    (300e3, 64, 1, 14.0),
    (10e3, 1500, 1, 49.0),  # a lone large frame per interrupt: low
    (50e3, 1500, 1, 245.0),  # ≥ 7 MTU frames in one interrupt once: bulk, and it stays
    (80e3, 1500, 3, 245.0),
    (10e3, 9000, 3, 245.0),  # jumbo: > 8000 B/packet straight from lowest
]


@pytest.mark.parametrize(("rate", "nbytes", "setting", "usecs"), SETTLE)
def test_settles(rate, nbytes, setting, usecs):
    trace = run_aim(rate, nbytes, S, H, 600, seed=3, setting=setting)
    tail = trace[300:]
    assert sum(1 for u in tail if u == usecs) >= 0.9 * len(tail)


@pytest.mark.parametrize(("rate", "nbytes", "setting", "usecs"), [c for c in SETTLE if c[0] >= 50e3])
def test_settled_interval_caps_the_interrupt_rate(rate, nbytes, setting, usecs):
    irq_rate = nic_queue(rate, S, H, usecs * 1e-6, 0, "min-gap").irq_rate
    assert 0.8 * 1e6 / usecs <= irq_rate <= 1e6 / usecs * 1.001  # loaded: close to the cap, never above it


def test_light_load_is_not_delayed_under_min_gap():
    light = nic_queue(10e3, S, H, 49e-6, 0, "min-gap")
    assert light.irq_rate >= 0.75 * 10e3  # most packets find the gap expired and interrupt at once


def test_overload_freezes_the_interval():
    assert set(run_aim(2e6, 64, S, H, 20)) == {IGB_START_ITR / 4}  # rho >= 1: NAPI never completes


def test_reproducible_with_a_seed():
    assert run_aim(2e4, 1500, S, H, 300, seed=5) == run_aim(2e4, 1500, S, H, 300, seed=5)
