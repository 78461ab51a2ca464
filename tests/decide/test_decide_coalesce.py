"""irqtune's moderation: the square-root window rule, and the choice by predicting candidates."""

from __future__ import annotations

import math

import pytest

from irqtune.model.coalesce import target_window
from irqtune.model.queue import nic_queue


def test_no_window_below_the_threshold_and_sqrt_rule_above():
    # W = 100 µs/core, h = 1.5 µs: λ* = 1/√(W h) ≈ 81.6k pps, U* ≈ 0.6·√(2·100·1.5) ≈ 10.4 µs -> 8 µs
    assert target_window(50_000, 100, 1.5) == 0
    assert target_window(120_000, 100, 1.5) == 8
    assert target_window(120_000, 500, 1.5) == 32  # 0.6·√1500 ≈ 23 µs -> 32 (nearest power of two in log)
    assert target_window(150_000, 20, 1.5) == 0  # latency goal, W = 20: λ* ≈ 183k pps
    assert target_window(250_000, 20, 1.5) == 4  # U* ≈ 0.6·√60 ≈ 4.6 µs


def test_the_rule_lands_near_the_closed_form_optimum():
    """The rule is a shortcut for minimising J = E[T] + W·CPU; check it against a grid of the model."""
    s, h, w = 0.8e-6, 1.5e-6, 100.0
    for rate in (150_000, 400_000):

        def cost(u: int, rate: float = rate) -> float:
            r = nic_queue(rate, s, h, u * 1e-6, 0 if u else 1)
            return r.mean_latency * 1e6 + w * r.cpu

        best = min((0, 2, 4, 8, 16, 32, 64), key=cost)
        chosen = target_window(rate, w, h * 1e6)
        assert cost(chosen) <= cost(best) * 1.10, (rate, chosen, best)


@pytest.mark.parametrize("goal", ["latency", "balanced", "throughput"])
def test_higher_load_never_asks_for_a_smaller_window(goal):
    windows = [
        target_window(rate, {"latency": 20, "balanced": 100, "throughput": 500}[goal], 1.5)
        for rate in (1e3, 1e4, 1e5, 3e5, 1e6)
    ]
    assert windows == sorted(windows) and not math.isnan(sum(windows))


def test_moderation_defers_at_high_rates_and_not_at_low_ones():
    from irqtune.decide.moderation import Moderation, choose, predict

    busy = choose(200_000, Moderation(8, 32), "balanced", 0.8, 1.5)
    assert busy is not None and busy.setting.defer > 0 and busy.setting.gro_flush_us > 0
    quiet = choose(5_000, Moderation(8, 32), "balanced", 0.8, 1.5)
    assert quiet is not None and quiet.setting == Moderation(0, 1)  # no window, no deferral at a trickle
    assert choose(5_000, Moderation(0, 1), "balanced", 0.8, 1.5) is None  # already there: nothing to do
    without = choose(200_000, Moderation(0, 1), "balanced", 0.8, 1.5, deferral=False)  # a kernel without the knobs
    assert without is not None and without.setting.defer == 0 and without.setting.rx_usecs > 0
    latency, overhead = predict(200_000, busy.setting, 0.8, 1.5)
    assert overhead < predict(200_000, Moderation(8, 32), 0.8, 1.5)[1] and latency < 30


def test_driver_semantics_of_rx_usecs():
    from irqtune.model.coalesce import driver_flavour

    assert driver_flavour("ice") == driver_flavour("igb") == "min-gap"  # Intel ITR: a minimum gap
    assert driver_flavour("mlx5_core") == driver_flavour(None) == driver_flavour("weird\x1b") == "timer-from-first"


def test_an_overloaded_queue_keeps_its_setting_when_every_candidate_is_overloaded_too():
    """1 Mpps at 1 µs per packet on one queue: no setting brings it below saturation (every prediction is
    infinite), so nothing is worth writing; before, a current setting predicted infinite made any move worth it
    and rx-usecs 0 / rx-frames 1 was written for nothing. Out of overload it still moves."""
    from irqtune.decide.moderation import Moderation, choose

    assert choose(1_000_000, Moderation(8, 32), "balanced", 1.0, 1.5) is None
    assert choose(1_000_000, Moderation(8, 32), "balanced", 1.0, 1.5, p99_target_us=30) is None
    below = choose(900_000, Moderation(8, 32), "balanced", 1.0, 1.5)
    assert below is not None and math.isfinite(below.predicted_latency_us)
