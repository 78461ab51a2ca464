"""A driver's special rx-usecs values: Intel's ITR drivers read 1..4 as adaptive modes and refuse some small values
(model/coalesce.py `DRIVER_USECS`, from each driver's set_coalesce), so moderation never proposes them and does
not score a current adaptive mode as a delay."""

from __future__ import annotations

import itertools

import pytest

from irqtune.decide.moderation import Moderation, choose, forecast
from irqtune.model.coalesce import DRIVER_USECS, driver_flavour, rx_usecs_mode, usecs_rules, writable_usecs

# (driver, rx-usecs, what the kernel's set_coalesce makes of it): "off", "mode NAME", "EINVAL" or "delay"
KERNEL_RULES = [
    # e1000e/ethtool.c e1000_set_coalesce, e1000e/e1000.h E1000_MIN/MAX_ITR_USECS, e1000e/param.c mode names
    ("e1000e", 0, "off"),
    ("e1000e", 1, "mode dynamic"),
    ("e1000e", 2, "EINVAL"),  # (ec->rx_coalesce_usecs == 2)
    ("e1000e", 3, "mode dynamic conservative"),
    ("e1000e", 4, "mode simplified"),  # itr_setting = 4
    ("e1000e", 5, "EINVAL"),  # > 4 and < E1000_MIN_ITR_USECS
    ("e1000e", 9, "EINVAL"),
    ("e1000e", 10, "delay"),  # E1000_MIN_ITR_USECS
    ("e1000e", 10000, "delay"),  # E1000_MAX_ITR_USECS
    ("e1000e", 10001, "EINVAL"),
    # igb/igb_ethtool.c igb_set_coalesce, igb/igb.h IGB_MIN/MAX_ITR_USECS
    ("igb", 0, "off"),
    ("igb", 1, "mode dynamic"),
    ("igb", 2, "EINVAL"),
    ("igb", 3, "mode dynamic conservative"),
    ("igb", 4, "EINVAL"),  # > 3 and < IGB_MIN_ITR_USECS: unlike e1000e, 4 is no mode
    ("igb", 9, "EINVAL"),
    ("igb", 10, "delay"),
    ("igb", 10000, "delay"),
    ("igb", 10001, "EINVAL"),
    # igc/igc_ethtool.c igc_ethtool_set_coalesce, igc/igc.h IGC_MIN/MAX_ITR_USECS
    ("igc", 2, "EINVAL"),
    ("igc", 3, "mode dynamic conservative"),
    ("igc", 4, "EINVAL"),
    ("igc", 10, "delay"),
    ("igc", 10001, "EINVAL"),
    # ixgbe/ixgbe_ethtool.c ixgbe_set_coalesce: 1 is dynamic ITR, then a delay up to IXGBE_MAX_EITR >> 2
    ("ixgbe", 0, "off"),
    ("ixgbe", 1, "mode dynamic"),
    ("ixgbe", 2, "delay"),
    ("ixgbe", 3, "delay"),
    ("ixgbe", 1022, "delay"),
    ("ixgbe", 1023, "EINVAL"),
]


@pytest.mark.parametrize(("driver", "usecs", "kernel"), KERNEL_RULES)
def test_the_table_follows_the_drivers_set_coalesce(driver, usecs, kernel):
    rules = usecs_rules(driver)
    mode = rx_usecs_mode(driver, usecs)
    got = "off" if usecs == 0 else f"mode {mode}" if mode else "EINVAL" if rules.rejected(usecs) else "delay"
    assert got == kernel


@pytest.mark.parametrize(
    ("driver", "usecs", "writable"),
    [("e1000e", 0, 0), ("e1000e", 1, 10), ("e1000e", 2, 10), ("e1000e", 8, 10), ("e1000e", 16, 16),
     ("e1000e", 20000, 10000), ("igb", 4, 10), ("igb", 64, 64), ("ixgbe", 1, 2), ("ixgbe", 8, 8),
     ("ixgbe", 2048, 1022), ("mlx5_core", 2, 2), (None, 8, 8), ("ice", 4, 4)],
)  # fmt: skip
def test_writable_usecs_is_the_nearest_delay_the_driver_takes(driver, usecs, writable):
    assert writable_usecs(driver, usecs) == writable


@pytest.mark.parametrize("driver", sorted(DRIVER_USECS))
def test_every_writable_value_is_a_delay_and_every_delay_stays(driver):
    rules = usecs_rules(driver)
    for usecs in range(rules.fixed[1] + 50):
        got = writable_usecs(driver, usecs)
        assert not rules.rejected(got) and rx_usecs_mode(driver, got) is None, (usecs, got)
        if usecs == 0 or rules.fixed[0] <= usecs <= rules.fixed[1]:
            assert got == usecs


SWEEP = [
    (rate, goal, current, deferral)
    for rate in (2_000, 20_000, 80_000, 200_000, 400_000, 800_000)
    for goal in ("latency", "balanced", "throughput")
    for current in (Moderation(0, 1), Moderation(3, 0), Moderation(20, 0), Moderation(64, 0), Moderation(250, 0))
    for deferral in (True, False)
]


def test_on_e1000e_no_candidate_is_a_mode_or_refused():
    """Before, at 400k packets/s with the latency goal the candidate rx-usecs 8 was proposed (the same sweep still
    finds windows under 10 µs without the driver): EINVAL on e1000e. Every choice is now 0 or 10..10000 µs."""
    rules = usecs_rules("e1000e")
    unruled = set()
    for rate, goal, current, deferral in SWEEP:
        choice = choose(rate, current, goal, 0.8, 1.5, deferral=deferral, flavour="min-gap", driver="e1000e")
        if choice is not None:
            assert not 1 <= choice.setting.rx_usecs <= 9, (rate, goal, current, deferral, choice)
            assert not rules.rejected(choice.setting.rx_usecs)
        before = choose(rate, current, goal, 0.8, 1.5, deferral=deferral, flavour="min-gap")
        if before is not None and 1 <= before.setting.rx_usecs <= 9:
            unruled.add(before.setting.rx_usecs)
    assert unruled, "the sweep should reach a window under 10 µs where no driver rule applies"


def test_unlisted_drivers_choose_as_before():
    """mlx5_core (and no driver at all) are not in the table: the same choices as without a driver, small
    windows included."""
    small = set()
    for (rate, goal, current, deferral), flavour in itertools.product(SWEEP, ("timer-from-first", "min-gap")):
        plain = choose(rate, current, goal, 0.8, 1.5, deferral=deferral, flavour=flavour)
        assert choose(rate, current, goal, 0.8, 1.5, deferral=deferral, flavour=flavour, driver="mlx5_core") == plain
        if plain is not None and 1 <= plain.setting.rx_usecs <= 9:
            small.add(plain.setting.rx_usecs)
    assert small, "the sweep should reach a window under 10 µs where no driver rule applies"


def test_a_current_adaptive_mode_is_not_scored_as_a_delay():
    """e1000e's default rx-usecs 3 is "dynamic conservative", not 3 µs: the best candidate is proposed with a reason
    that says the mode was not predicted, where the same 3 on mlx5_core is a delay the model scores."""
    for rate in (20_000, 400_000):
        choice = choose(rate, Moderation(3, 0), "balanced", 0.8, 1.5, flavour="min-gap", driver="e1000e")
        assert choice is not None, rate
        assert choice.setting.rx_usecs == 0 or choice.setting.rx_usecs >= 10
        assert "the driver's adaptive mode 3 (dynamic conservative) is not predicted" in choice.reason
        assert "the measurement after the change decides (rolled back if worse)" in choice.reason
    other = choose(20_000, Moderation(3, 0), "balanced", 0.8, 1.5)
    assert other is None or "adaptive mode" not in other.reason
    assert driver_flavour("e1000e") == "min-gap"


def test_the_choice_carries_the_predicted_interrupt_rate():
    choice = choose(20_000, Moderation(64, 128), "balanced", 0.8, 1.5, queues=2)
    assert choice is not None
    expected = forecast(20_000, choice.setting, 0.8, 1.5)
    assert choice.predicted_irq_rate == expected.irq_rate > 0
    assert choice.predicted_latency_us == expected.latency_us
