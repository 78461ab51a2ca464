"""The net_dim port: the decision rules, and DIM's known drift under open-loop load (docs/physics.md §1.8)."""

from __future__ import annotations

import pytest

from irqtune.model.queue import nic_queue
from irqtune.sim.dim import BETTER, SAME, WORSE, Dim, Stats, calc_stats, compare, run_dim_open_loop, significant


def test_significance_is_more_than_ten_percent_in_integers():
    assert not significant(110, 100) and significant(111, 100) and not significant(5, 0)


def test_compare_prefers_bandwidth_then_packets_then_fewer_events():
    prev = Stats(ppms=1000, bpms=64000, epms=100)
    assert compare(Stats(1000, 80000, 100), prev) == BETTER
    assert compare(Stats(1000, 50000, 50), prev) == WORSE  # less bandwidth loses even with fewer events
    assert compare(Stats(1000, 64000, 50), prev) == BETTER  # same traffic, fewer interrupts
    assert compare(Stats(1000, 64000, 105), prev) == SAME
    assert compare(Stats(1, 1, 1), Stats()) == BETTER


def test_calc_stats_rounds_up_per_millisecond():
    assert calc_stats(packets=1001, nbytes=64064, delta_us=1000) == Stats(1001, 64064, 64)
    assert calc_stats(packets=3, nbytes=10, delta_us=2000) == Stats(2, 5, 32)


def test_walks_right_parks_on_the_edge_and_turns_on_worse():
    dim = Dim("eqe", profile_ix=1)
    assert dim.decide(Stats(100, 6400, 50)) and dim.profile_ix == 0  # exits parking towards less moderation
    dim.decide(Stats(100, 6400, 40))  # fewer events: better, but going left from 0 is the edge
    assert dim.tune_state == 0  # PARKING_ON_TOP
    for _ in range(3):
        dim.decide(Stats(100, 6400, 40))
    assert dim.profile_ix == 0
    dim.decide(Stats(200, 12800, 40))  # a significant change wakes it up
    assert dim.profile_ix == 1


@pytest.mark.parametrize("rate", [20e3, 200e3, 800e3])
def test_open_loop_traffic_drifts_to_maximum_moderation(rate):
    trace = run_dim_open_loop(rate, 0.8e-6, 1.5e-6, decisions=400, seed=1)
    at_edge = sum(1 for ix in trace if ix == 4)
    assert at_edge >= 0.8 * len(trace)  # docs/physics.md §1.8-2: parks at EQE 256 us under open-loop Poisson load
    edge = nic_queue(rate, 0.8e-6, 1.5e-6, 256e-6, 256).mean_latency
    best = nic_queue(rate, 0.8e-6, 1.5e-6, 1e-6, 256).mean_latency
    assert edge > 100e-6 and best < 5e-6  # the price: 130-150 us instead of a few


def test_reproducible_with_a_seed():
    assert run_dim_open_loop(2e5, 0.8e-6, 1.5e-6, 100, seed=5) == run_dim_open_loop(2e5, 0.8e-6, 1.5e-6, 100, seed=5)
