"""The scorecard's goal checks (docs/physics.md §10.4, `irqtune/sim/score.py`): each on small constructed runs,
once where it holds and once where it does not, and once on a short real run of load-step."""

from __future__ import annotations

import pytest

from irqtune.sim import score
from irqtune.sim.run import Interval, PhaseResult
from irqtune.sim.score import Cell, Run

SETTINGS = {"eth0": {"rx_usecs": 0, "rx_frames": 1, "defer_hard_irqs": 0, "gro_flush_timeout": 0,
                     "irq_suspend_timeout": 0, "busy_read": 0}}  # fmt: skip


def phase(name: str = "p", seconds: float = 10, **values) -> PhaseResult:
    fields = dict(offered_pps=100_000.0, delivered_pps=100_000.0, dropped_pps=0.0, irq_rate=10_000.0, cpu=0.2,
                  overhead_cpu=0.1, mean_latency_us=10.0, p50_us=8.0, p99_us=20.0, p999_us=30.0, time_squeeze=0.0,
                  timer_polls=0.0, settings=SETTINGS, rho_max=0.1, time_squeeze_cpu_max=0.0)  # fmt: skip
    fields.update(values)
    return PhaseResult(name=name, seconds=seconds, **fields)


def intervals(p99s: list[float], start: float = 0.0, latency: list[float] | None = None) -> list[Interval]:
    """One record per second; `latency` sets each one's mean latency (its J), else 10 µs."""
    latency = latency or [10.0] * len(p99s)
    return [Interval(start + k + 1, "p", 100_000, 100_000, 10_000, 0.2, latency[k], {"eth0": "0us/1"}, 0.1, p99)
            for k, p99 in enumerate(p99s)]  # fmt: skip


def run(results: list[PhaseResult], trace: list[Interval], arrivals: str = "poisson", policy: str = "irqtune",
        critical: tuple[str, ...] = ()) -> Run:  # fmt: skip
    return Run("s", policy, results, trace, [{arrivals} for _ in results], list(critical))


def test_phase_intervals_cuts_the_trace_by_time():
    r = run([phase("a", 2), phase("b", 3)], intervals([1, 2, 3, 4, 5]))
    assert [[i.p99_us for i in part] for part in score.phase_intervals(r)] == [[1, 2], [3, 4, 5]]


def test_score_goals_need_the_score_and_a_lead_over_dim_unless_flat():
    cells = [Cell("a", p, 0, 0, 0, 0, 0, s) for p, s in (("dim", -1.0), ("oracle", 1.0), ("irqtune", 0.9))]
    cells += [Cell("flat", p, 0, 0, 0, 0, 0, 1.0) for p in ("dim", "oracle", "irqtune")]
    cells += [Cell("b", p, 0, 0, 0, 0, 0, s) for p, s in (("dim", 0.8), ("oracle", 1.0), ("irqtune", 0.7))]
    checks = {(c.goal, c.scenario): c.ok for c in score.score_goals(cells)}
    assert checks == {("score", "a"): True, ("ahead-of-dim", "a"): True, ("score", "flat"): True,
                      ("score", "b"): False, ("ahead-of-dim", "b"): False}  # fmt: skip


def test_poll_goal_near_always_polls_p99_at_a_third_of_its_cpu():
    poll = run([phase(p99_us=8.0, overhead_cpu=7.0)], [], "closed-loop", "always-poll")
    near = run([phase(p99_us=9.0, overhead_cpu=0.3)], [], "closed-loop")
    slow = run([phase(p99_us=24.0, overhead_cpu=0.1)], [], "closed-loop")
    costly = run([phase(p99_us=8.0, overhead_cpu=3.0)], [], "closed-loop")
    assert [c.ok for c in score.poll_goal(near, poll)] == [True]
    assert [c.ok for c in score.poll_goal(slow, poll)] == [False]
    assert "= 3.00" in score.poll_goal(slow, poll)[0].numbers
    assert [c.ok for c in score.poll_goal(costly, poll)] == [False]
    assert score.poll_goal(run([phase()], []), poll) == []  # open loop: not this goal's


def test_steady_goal_catches_a_drift_after_settling_but_not_the_first_intervals():
    oracle = run([phase(seconds=12)], intervals([20.0] * 12))
    steady = run([phase(seconds=12)], intervals([60, 40, 25] + [21.0] * 9))  # settles in 3 intervals
    drifting = run([phase(seconds=12)], intervals([20.0] * 6 + [25, 30, 35, 40, 45, 50]))
    (ok,) = score.steady_goal(steady, oracle)
    (bad,) = score.steady_goal(drifting, oracle)
    assert ok.ok and not bad.ok and "worst interval 2.50" in bad.numbers
    assert score.steady_goal(run([phase(seconds=12)], intervals([20.0] * 12), "closed-loop"), oracle) == []


def test_steady_goal_holds_a_slower_choice_to_where_it_settled():
    """A controller that settled at twice the oracle's p99 (a cheaper setting, same J) is not drifting; one
    that keeps climbing from there is."""
    oracle = run([phase(seconds=12)], intervals([20.0] * 12))
    slower = run([phase(seconds=12)], intervals([40.0] * 12))
    climbing = run([phase(seconds=12)], intervals([40.0] * 6 + [60.0] * 6))
    assert score.steady_goal(slower, oracle)[0].ok
    assert not score.steady_goal(climbing, oracle)[0].ok


def test_steady_goal_cancels_the_noise_the_oracle_shares():
    """The same seed gives the same arrivals to both runs: a p99 spike that is in the oracle's interval
    too is sampling noise, not drift."""
    noisy = [20.0, 21, 19, 20, 60, 20, 22, 20, 80, 20, 21, 20]
    oracle = run([phase(seconds=12)], intervals(noisy))
    same = run([phase(seconds=12)], intervals([p * 1.05 for p in noisy]))
    assert score.steady_goal(same, oracle)[0].ok


def test_recovery_goal_allows_three_intervals_after_a_load_change():
    def stepped(latency: list[float]) -> Run:
        return run([phase("quiet", 8), phase("busy", 8, offered_pps=1e6, delivered_pps=1e6)],
                   intervals([20.0] * 16, latency=[10.0] * 8 + latency))  # fmt: skip

    oracle = stepped([10.0] * 8)
    quick = stepped([90, 50, 30] + [10.0] * 5)
    slow = stepped([90, 50, 30, 20] + [10.0] * 4)
    relapse = stepped([10.0] * 6 + [30, 10])
    (ok,) = score.recovery_goal(quick, oracle)  # the first phase is not a change
    assert ok.ok and "until interval 3 of 8" in ok.numbers
    assert not score.recovery_goal(slow, oracle)[0].ok
    assert not score.recovery_goal(relapse, oracle)[0].ok


def test_steady_goal_leaves_bursty_phases_to_the_recovery_goal():
    """A bursty phase's load is not unchanged: its intervals' p99 mixes quiet and burst packets, and is not held
    to a settled level (the recovery goal judges it); an open-loop Poisson phase is."""
    oracle = run([phase(seconds=12)], intervals([20.0] * 12), "bursty")
    jumpy = run([phase(seconds=12)], intervals([17.0] * 6 + [40.0] + [17.0] * 5), "bursty")
    assert score.steady_goal(jumpy, oracle) == []
    poisson = run([phase(seconds=12)], intervals([17.0] * 6 + [40.0] + [17.0] * 5))
    assert not score.steady_goal(poisson, run([phase(seconds=12)], intervals([20.0] * 12)))[0].ok


def test_recovery_goal_judges_a_bursty_phase_from_its_start():
    oracle = run([phase(seconds=6)], intervals([20.0] * 6), "bursty")
    assert score.recovery_goal(run([phase(seconds=6)], intervals([20.0] * 6), "bursty"), oracle)[0].ok
    late = run([phase(seconds=6)], intervals([20.0] * 6, latency=[10.0] * 4 + [40, 40]), "bursty")
    assert not score.recovery_goal(late, oracle)[0].ok


def test_health_goal_below_rho_0_8_no_drops_and_no_squeeze():
    scope = run([phase("a"), phase("b"), phase("c"), phase("hot", rho_max=0.9)], [])
    mine = run([phase("a"), phase("b", dropped_pps=500.0), phase("c", time_squeeze_cpu_max=3.0),
                phase("hot", dropped_pps=1e5, time_squeeze_cpu_max=50.0)], [])  # fmt: skip
    assert [(c.phase, c.ok) for c in score.health_goal(mine, scope)] == [("a", True), ("b", False), ("c", False)]


def test_critical_goal_the_critical_nic_does_not_feel_the_storm():
    def nic(p99: float, irqs: float) -> dict:
        return {"eth0": {"offered_pps": 50_000.0, "p99_us": p99, "irq_rate": irqs}}

    calm = phase("calm", nics=nic(3.0, 47_000.0))
    same = run([calm, phase("storm", nics=nic(3.1, 47_500.0))], [], critical=("eth0",))
    felt = run([calm, phase("storm", nics=nic(6.0, 47_000.0))], [], critical=("eth0",))
    assert [c.ok for c in score.critical_goal(same)] == [True]
    assert [c.ok for c in score.critical_goal(felt)] == [False]
    assert score.critical_goal(run([calm, calm], [])) == []  # no critical NIC


@pytest.mark.slow
def test_goals_on_a_short_real_load_step():
    """load-step in 30 s: irqtune back within the oracle's J after each step and steady in between;
    DIM misses both (it walks away from the oracle's setting under open-loop load)."""
    runs = {p: score.run_policy("load-step", p, duration=30) for p in ("irqtune", "oracle", "dim")}
    irqtune, oracle, dim = runs["irqtune"], runs["oracle"], runs["dim"]
    assert [len(part) for part in score.phase_intervals(irqtune)] == [10, 10, 10]
    assert all(r.rho_max < 0.8 and r.time_squeeze_cpu_max == 0 for r in irqtune.results)
    assert all(c.ok for c in score.steady_goal(oracle, oracle))
    recovery = score.recovery_goal(irqtune, oracle)
    assert [c.phase for c in recovery] == ["busy", "quiet-again"] and all(c.ok for c in recovery)
    assert all(c.ok for c in score.steady_goal(irqtune, oracle) + score.health_goal(irqtune, oracle))
    assert not any(c.ok for c in score.recovery_goal(dim, oracle))
