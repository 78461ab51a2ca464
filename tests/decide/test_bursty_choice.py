"""The moderation choice over a bursty window's rate levels (decide/moderation.py `forecast_levels`): what the
mean hides, the levels show; one level is the plain choice."""

from __future__ import annotations

import math

import pytest

from irqtune.agent.propose import burst_levels
from irqtune.decide.moderation import Moderation, choose, forecast, forecast_levels
from irqtune.measure.bursts import Burst

QUIET, PEAK = 200_000, 1_000_000
LEVELS = [(0.8, QUIET), (0.2, PEAK)]  # 200 ms a second at 5x
MEAN = 0.8 * QUIET + 0.2 * PEAK


def test_levels_weigh_latency_per_packet_and_cpu_over_time_and_take_the_worst_p99():
    setting = Moderation(8, 32)
    quiet, peak = forecast(QUIET, setting, 0.8, 1.5), forecast(PEAK, setting, 0.8, 1.5)
    both = forecast_levels(LEVELS, setting, 0.8, 1.5)
    packets = 0.8 * QUIET + 0.2 * PEAK
    assert both.latency_us == pytest.approx((0.8 * QUIET * quiet.latency_us + 0.2 * PEAK * peak.latency_us) / packets)
    assert both.cpu == pytest.approx(0.8 * quiet.cpu + 0.2 * peak.cpu)
    assert both.irq_rate == pytest.approx(0.8 * quiet.irq_rate + 0.2 * peak.irq_rate)
    assert both.p99_us == max(quiet.p99_us, peak.p99_us)
    assert forecast_levels([(1.0, MEAN)], setting, 0.8, 1.5) == forecast(MEAN, setting, 0.8, 1.5)


def test_a_level_the_setting_cannot_carry_makes_it_overloaded():
    over = forecast_levels([(0.9, 100_000), (0.1, 2_000_000)], Moderation(0, 1), 0.8, 1.5)
    assert math.isinf(over.latency_us) and math.isinf(over.p99_us)


def test_the_p99_target_is_held_at_the_peak_not_at_the_mean():
    """At the mean, a deferral period meets a 12 µs target and is the cheaper; in the bursts its p99 is over it, so
    over the levels a setting within it at the peak is chosen, and the reason names the bursts."""
    now, target = Moderation(32, 128), 12.0
    at_mean = choose(MEAN, now, "balanced", 0.8, 1.5, p99_target_us=target)
    assert at_mean is not None and forecast(PEAK, at_mean.setting, 0.8, 1.5).p99_us > target
    bursty = choose(MEAN, now, "balanced", 0.8, 1.5, p99_target_us=target, levels=LEVELS)
    assert bursty is not None and forecast(PEAK, bursty.setting, 0.8, 1.5).p99_us <= target
    assert bursty.predicted_p99_us <= target
    assert "bursts of 1,000,000 pkt/s 20% of the time" in bursty.reason


def test_one_level_is_the_choice_at_the_mean():
    now = Moderation(32, 128)
    assert choose(MEAN, now, "balanced", 0.8, 1.5, levels=[(1.0, MEAN)]) == choose(MEAN, now, "balanced", 0.8, 1.5)


def test_the_busiest_queue_gets_the_device_levels_scaled_to_its_mean():
    burst = Burst(4 * MEAN, 4 * PEAK, 0.0, 0.0, ((0.8, 4 * QUIET), (0.2, 4 * PEAK)))
    levels = burst_levels(burst, MEAN)
    assert [share for share, _ in levels] == pytest.approx([0.8, 0.2])
    assert [rate for _, rate in levels] == pytest.approx([QUIET, PEAK])
    flat = Burst(4 * MEAN, 4 * MEAN * 1.1, 0.0, 0.0, ((0.5, 4 * MEAN * 0.9), (0.5, 4 * MEAN * 1.1)))
    assert burst_levels(flat, MEAN) is None and burst_levels(None, MEAN) is None
