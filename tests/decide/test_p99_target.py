"""A device's p99 target in the moderation choice: a constraint before the price of a core."""

from __future__ import annotations

from irqtune.decide.moderation import Moderation, choose, forecast

RATE, SERVICE, IRQ = 300_000, 0.8, 1.5  # a busy queue where an efficiency goal wants a wide window


def test_a_tight_target_picks_a_smaller_window_than_the_price_alone():
    free = choose(RATE, Moderation(0, 1), "efficiency", SERVICE, IRQ, deferral=False)
    held = choose(RATE, Moderation(0, 1), "efficiency", SERVICE, IRQ, deferral=False, p99_target_us=20)
    assert free is not None and held is not None
    assert free.predicted_p99_us > 20 and held.setting.rx_usecs < free.setting.rx_usecs
    assert held.predicted_p99_us <= 20 and "within the 20 µs target" in held.reason
    assert held.predicted_latency_us < free.predicted_latency_us and held.predicted_cpu > free.predicted_cpu


def test_a_loose_target_changes_nothing():
    free = choose(RATE, Moderation(0, 1), "efficiency", SERVICE, IRQ, deferral=False)
    loose = choose(RATE, Moderation(0, 1), "efficiency", SERVICE, IRQ, deferral=False, p99_target_us=1000)
    assert loose is not None and free is not None and loose.setting == free.setting


def test_out_of_target_moves_even_when_the_price_would_keep_it():
    now = Moderation(32, 128)  # the efficiency winner: nothing to gain in J
    assert choose(RATE, now, "efficiency", SERVICE, IRQ, deferral=False) is None
    moved = choose(RATE, now, "efficiency", SERVICE, IRQ, deferral=False, p99_target_us=25)
    assert moved is not None and moved.predicted_p99_us <= 25 < forecast(RATE, now, SERVICE, IRQ).p99_us


def test_an_unreachable_target_takes_the_lowest_p99_and_says_so():
    choice = choose(RATE, Moderation(64, 128), "efficiency", SERVICE, IRQ, p99_target_us=1)
    assert choice is not None
    others = [Moderation(0, 1), Moderation(8, 32), Moderation(0, 1, 10, 20), Moderation(0, 1, 100, 2)]
    assert choice.predicted_p99_us <= min(forecast(RATE, s, SERVICE, IRQ).p99_us for s in others)
    best = choice.predicted_p99_us
    assert f"the p99 target of 1 µs cannot be met: the lowest predicted p99 is {best:.1f} µs" in choice.reason
    assert "now 68.0 µs" in choice.reason
    assert choose(RATE, choice.setting, "efficiency", SERVICE, IRQ, p99_target_us=1) is None  # already the lowest


def test_a_restarting_timer_that_never_closes_has_an_infinite_window_p99_not_an_overflow():
    """A rate and rx-usecs for which e^(-λU) underflows to a denormal: the window never closes by the timer."""
    from irqtune.model.tail import _restart_p99

    assert _restart_p99(1e6, 7.4e-4) == float("inf")
