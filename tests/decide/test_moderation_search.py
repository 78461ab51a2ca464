"""The moderation choice searches the knob space (decide/moderation.py): it finds what a brute-force fine grid of the
same model finds, settings the old fixed candidate list could not reach included, within the config's bounds (the best
bounded setting, not the unbounded one clamped) and only among rx-usecs values the driver takes as a delay."""

from __future__ import annotations

import time
from dataclasses import replace

from irqtune.decide import moderation
from irqtune.decide.moderation import Bounds, Moderation, choose, forecast
from irqtune.model.coalesce import GOAL_WEIGHT_US, usecs_rules

SERVICE, IRQ = 0.8, 1.5
# The fixed list choose() picked from before the search (rx-usecs, rx-frames, defer, gro-flush µs)
OLD_LIST = [(0, 1, 0, 0), (8, 32, 0, 0), (16, 64, 0, 0), (32, 128, 0, 0), (64, 128, 0, 0), (0, 1, 10, 20),
            (0, 1, 100, 20), (0, 1, 100, 50)]  # fmt: skip


def ladder(low: int, high: int, per_octave: int = 4) -> list[int]:
    """Whole numbers from low to high, `per_octave` to a doubling: the brute force's fine grid."""
    out, k = set(), 0
    while (value := round(low * 2 ** (k / per_octave))) <= high:
        out.add(value)
        k += 1
    return sorted(out | {high})


def cost(rate: float, setting: Moderation, goal: str, flavour: str = "timer-from-first") -> float:
    f = forecast(rate, setting, SERVICE, IRQ, flavour)
    return f.latency_us + GOAL_WEIGHT_US[goal] * f.cpu


def brute(rate: float, goal: str, settings: list[Moderation], flavour: str = "timer-from-first") -> Moderation:
    return min(settings, key=lambda s: cost(rate, s, goal, flavour))


def windows(usecs: list[int]) -> list[Moderation]:
    return [Moderation(0, 1)] + [Moderation(u, f) for u in usecs if u for f in ladder(2, 256, 2)]


def deferrals(defers: list[int]) -> list[Moderation]:
    return [Moderation(0, 1, d, g) for d in defers for g in ladder(1, 1000, 3)]


def test_the_search_finds_a_short_gro_flush_timeout_the_old_list_lacked():
    """200k packets/s with the latency goal: the best deferral polls every few µs (the old list's shortest period
    was 20 µs); the search comes within 2 % of a fine brute-force grid, the old list 30 % above it."""
    rate, goal = 200_000, "latency"
    best = brute(rate, goal, windows(ladder(1, 1000, 3)) + deferrals(ladder(1, 1000, 3)))
    assert best.defer > 0 and best.gro_flush_us < 10
    choice = choose(rate, Moderation(8, 32), goal, SERVICE, IRQ)
    assert choice is not None and choice.setting.gro_flush_us < 10
    assert cost(rate, choice.setting, goal) <= 1.02 * cost(rate, best, goal)
    old = min(cost(rate, Moderation(*c), goal) for c in OLD_LIST)
    assert old > 1.3 * cost(rate, best, goal)
    assert "settings searched" in choice.reason


def test_bounds_are_searched_within_not_clamped_after():
    """An operator who forbids deferral (napi-defer-hard-irqs [0, 0]) or long windows (rx-usecs [0, 64]) gets the
    best setting inside the bounds: at 200k packets/s (balanced) a window with a frame cap, where the unbounded
    choice clamped into the bounds (what the loop's clamp would write) costs far more or the same at best."""
    rate, goal = 200_000, "balanced"
    free = choose(rate, Moderation(8, 32), goal, SERVICE, IRQ)
    assert free is not None and free.setting.defer > 0
    no_defer = choose(rate, Moderation(8, 32), goal, SERVICE, IRQ, bounds=Bounds(defer=(0, 0)))
    assert no_defer is not None and no_defer.setting.defer == 0 and no_defer.setting.rx_usecs > 0
    best = brute(rate, goal, windows(ladder(1, 1000, 3)))
    assert cost(rate, no_defer.setting, goal) <= 1.02 * cost(rate, best, goal)
    clamped = replace(free.setting, defer=0)
    assert cost(rate, no_defer.setting, goal) < 0.8 * cost(rate, clamped, goal)

    short = choose(rate, Moderation(8, 32), goal, SERVICE, IRQ, deferral=False, bounds=Bounds(rx_usecs=(0, 64)))
    assert short is not None and 0 < short.setting.rx_usecs <= 64
    best = brute(rate, goal, windows(ladder(1, 64, 3)))
    assert cost(rate, short.setting, goal) <= 1.02 * cost(rate, best, goal)


def test_e1000e_gets_the_best_delay_it_takes_and_never_1_to_9():
    """e1000e reads rx-usecs 1, 3 and 4 as adaptive modes and refuses 2 and 5..9: across loads, goals and bounds no
    choice is one of them; at 200k packets/s for throughput the best delay it takes (45 µs, off the old list) is
    found within 1 % of a brute force over every value it takes; bounds of [0, 9] leave only 0 (off)."""
    rules = usecs_rules("e1000e")
    for rate in (20_000, 200_000, 800_000):
        for goal in ("latency", "balanced", "throughput"):
            for bounds in (None, Bounds(rx_usecs=(0, 9)), Bounds(rx_usecs=(5, 40))):
                for current in (Moderation(3, 0), Moderation(20, 0)):
                    choice = choose(rate, current, goal, SERVICE, IRQ, deferral=False, flavour="min-gap",
                                    driver="e1000e", frames=False, bounds=bounds)  # fmt: skip
                    usecs = (choice.setting if choice else current).rx_usecs
                    assert choice is None or not 1 <= usecs <= 9, (rate, goal, bounds, current, choice)
                    assert choice is None or not rules.rejected(usecs)
                    if choice is not None and bounds is not None:
                        assert bounds.rx_usecs[0] <= usecs <= bounds.rx_usecs[1] or usecs == 0
    rate, goal = 200_000, "throughput"
    choice = choose(rate, Moderation(20, 0), goal, SERVICE, IRQ, deferral=False, flavour="min-gap", driver="e1000e")
    assert choice is not None and choice.setting.rx_usecs >= 10
    takes = [Moderation(u, 0) for u in [0, *range(10, 1001)]]
    best = brute(rate, goal, takes, "min-gap")
    assert cost(rate, choice.setting, goal, "min-gap") <= 1.01 * cost(rate, best, goal, "min-gap")


def test_a_search_is_cached_and_a_pass_costs_a_few_predictions():
    """The search runs once per load (rounded to 2 %); a pass whose load is within that reuses it and predicts only
    the few best again, at the measured inputs."""
    moderation.search.cache_clear()
    first = choose(200_000, Moderation(8, 32), "balanced", SERVICE, IRQ)
    assert first is not None
    start = time.perf_counter()
    for i in range(20):
        again = choose(200_000 * (1 + i * 1e-4), Moderation(8, 32), "balanced", SERVICE, IRQ)
        assert again is not None and again.setting == first.setting
    assert moderation.search.cache_info().misses == 1
    assert (time.perf_counter() - start) / 20 < 0.005  # well under 5 ms a pass (about 0.3 ms here)
