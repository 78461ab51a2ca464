"""The closed-form NIC queue model against an independent event simulation and docs/physics.md §9.3."""

from __future__ import annotations

import pytest

from irqtune.model.queue import nic_queue
from irqtune.sim.events import simulate_queue

S, H = 0.8e-6, 1.5e-6  # per-packet softirq cost and per-interrupt cost used in docs/physics.md §9.3

GRID = [
    (rate, usecs, frames)
    for rate in (20e3, 100e3, 300e3, 600e3)
    for usecs, frames in ((0, 1), (8e-6, 32), (32e-6, 64), (64e-6, 0), (16e-6, 8), (50e-6, 16), (128e-6, 32))
]


@pytest.mark.slow
@pytest.mark.parametrize(("rate", "usecs", "frames"), GRID, ids=lambda v: f"{v:g}")
def test_closed_form_matches_event_simulation(rate, usecs, frames):
    model = nic_queue(rate, S, H, usecs, frames)
    sim = simulate_queue(rate, S, H, usecs, frames, packets=200_000, seed=7)
    assert model.irq_rate == pytest.approx(sim.irq_rate, rel=0.02)
    assert model.cpu == pytest.approx(sim.cpu, rel=0.02)
    assert model.mean_latency == pytest.approx(sim.mean_latency, rel=0.05)


# docs/physics.md §9.3: (rate, rx-usecs, rx-frames) -> irq/s (model), mean latency µs (event sim), CPU (model)
PUBLISHED = [
    (20e3, 0, 1, 19_107, 2.28, 0.045),
    (100e3, 8e-6, 32, 47_179, 8.02, 0.151),
    (400e3, 64e-6, 64, 10_000, 34.84, 0.335),
    (800e3, 128e-6, 256, 2_753, 67.23, 0.644),
    (800e3, 128e-6, 32, 8_675, 21.64, 0.653),  # count-bound: the setup-time formula said 22.83
]


@pytest.mark.parametrize(("rate", "usecs", "frames", "irqs", "latency_us", "cpu"), PUBLISHED)
def test_published_validation_table(rate, usecs, frames, irqs, latency_us, cpu):
    model = nic_queue(rate, S, H, usecs, frames)
    assert model.irq_rate == pytest.approx(irqs, rel=0.005)
    assert model.cpu == pytest.approx(cpu, abs=0.001)
    assert model.mean_latency * 1e6 == pytest.approx(latency_us, rel=0.02)


def test_overload_and_idle():
    assert nic_queue(2e6, S, H, 0, 1).overloaded
    assert nic_queue(0, S, H, 8e-6, 32).irq_rate == 0


def test_coalescing_trades_interrupts_for_latency():
    settings = [(0, 1), (8e-6, 32), (32e-6, 64), (128e-6, 256)]
    results = [nic_queue(300e3, S, H, u, f) for u, f in settings]
    assert [r.irq_rate for r in results] == sorted((r.irq_rate for r in results), reverse=True)
    assert [r.mean_latency for r in results] == sorted(r.mean_latency for r in results)
    assert results[0].cpu > results[-1].cpu


def test_event_simulation_is_reproducible_and_gives_percentiles():
    a = simulate_queue(100e3, S, H, 16e-6, 32, packets=50_000, seed=3)
    assert a == simulate_queue(100e3, S, H, 16e-6, 32, packets=50_000, seed=3)
    assert a != simulate_queue(100e3, S, H, 16e-6, 32, packets=50_000, seed=4)
    assert a.p50 <= a.mean_latency * 1.5 and a.p50 < a.p99 < a.p999
    assert (a.timer_polls, a.squeezes, a.dropped, a.spin_cpu, a.ksoftirqd) == (0.0, 0.0, 0, 0.0, 0.0)  # napi=None


def test_plain_model_reports_no_napi_activity():
    r = nic_queue(300e3, S, H, 8e-6, 32)
    assert (r.timer_polls, r.squeeze_rate, r.spin_cpu, r.ksoftirqd) == (0.0, 0.0, 0.0, 0.0)
    assert nic_queue(2e6, S, H, 0, 1).squeeze_rate == 0.0  # no budget accounting without napi


RESTART_GRID = [
    (rate, usecs, frames)
    for rate in (20e3, 100e3, 300e3, 600e3)
    for usecs, frames in ((8e-6, 32), (32e-6, 64), (16e-6, 8), (50e-6, 16), (4e-6, 0), (2e-6, 4), (64e-6, 0))
    if frames or rate * usecs <= 2  # no frame cap and λU > 2: windows of e^{λU}/λ, beyond any finite sample
]


@pytest.mark.slow
@pytest.mark.parametrize(("rate", "usecs", "frames"), RESTART_GRID, ids=lambda v: f"{v:g}")
def test_timer_restart_flavour_matches_event_simulation(rate, usecs, frames):
    model = nic_queue(rate, S, H, usecs, frames, "timer-restart")
    sim = simulate_queue(rate, S, H, usecs, frames, packets=200_000, seed=11, flavour="timer-restart")
    assert model.irq_rate == pytest.approx(sim.irq_rate, rel=0.02)
    assert model.cpu == pytest.approx(sim.cpu, rel=0.02)
    assert model.mean_latency == pytest.approx(sim.mean_latency, rel=0.05)
