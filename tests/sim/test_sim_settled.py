"""The settled p99 of a phase (from the policy's first change in it, else its second interval) beside the
whole phase's, in the results, `irqtune simulate` and the scorecard, and the scorecard's settled goal."""

from __future__ import annotations

import json

import pytest
from conftest import cli

from irqtune.sim.oracle import NicSetting
from irqtune.sim.policy import Policy
from irqtune.sim.run import PhaseResult, run_scenario
from irqtune.sim.scenario import load_scenario
from irqtune.sim.score import Run, cell, settled_goal

SCENARIO = """[host]
cpus = 4

[[nic]]
name = "eth0"
queues = 1
cpus = "1"
rx_usecs = 128
rx_frames = 128

[[phase]]
name = "steady"
seconds = 6
nic = "eth0"
rate_pps = 100000
"""


class LateFix(Policy):
    """Leaves the driver's 128 µs window for three intervals, then turns coalescing off."""

    name = "late-fix"

    def interval(self, ctl, index, phase, first) -> None:
        if ctl.sim.clock == 3.0:
            ctl.nic("eth0", NicSetting(0, 1))


def test_the_settled_p99_starts_at_the_policys_first_change(tmp_path):
    spec = load_scenario("s.toml", SCENARIO)
    late, trace, _ = run_scenario(spec, str(tmp_path / "late"), policy=LateFix())
    phase = late[0]
    assert phase.settled_from == 3  # the fourth interval is the first to run with the change
    assert phase.p99_us > 100 > 20 > phase.settled_p99_us  # the 128 µs window's tail is in the whole phase only
    assert phase.nics["eth0"]["settled_p99_us"] == phase.settled_p99_us
    assert phase.nics["eth0"]["settled_overhead_cpu"] > phase.overhead_cpu  # no coalescing: more interrupts
    assert max(t.p99_us for t in trace[3:]) < 20
    untouched, _, _ = run_scenario(load_scenario("s.toml", SCENARIO), str(tmp_path / "d"))
    assert untouched[0].settled_from == 1  # no change: from the second interval
    assert untouched[0].settled_p99_us == pytest.approx(untouched[0].p99_us, rel=0.05)
    assert cell(Run("s", "late-fix", late, trace)).settled_p99_us == phase.settled_p99_us


def test_simulate_prints_the_settled_p99_beside_the_whole_phases(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    code, out, _ = cli("simulate", str(path), "--duration", "3s")
    assert code == 0 and "SETTLED-P99-us" in out.splitlines()[1]
    code, out, _ = cli("simulate", str(path), "--duration", "3s", "--json")
    phase = json.loads(out)["phases"][0]
    assert phase["settled_from"] == 1 and phase["settled_p99_us"] > 0
    assert {"settled_p99_us", "settled_overhead_cpu", "settled_cost"} <= set(phase["nics"]["eth0"])


def _phase(p99: float, cpu: float, cost: float) -> PhaseResult:
    nic = {"offered_pps": 1e5, "settled_p99_us": p99, "settled_overhead_cpu": cpu, "settled_cost": cost}
    return PhaseResult("p", 10, 1e5, 1e5, 0, 1e4, 0.2, cpu, 10, 8, p99, 30, 0, 0, {}, nics={"eth0": nic},
                       settled_p99_us=p99)  # fmt: skip


@pytest.mark.parametrize(
    "goal, mine, ok",
    [
        ("latency", (20.9, 9.0, 99.0), True),  # p99 within 5 %: CPU and J are not its goal's
        ("latency", (21.5, 0.01, 1.0), False),
        ("throughput", (99.0, 0.104, 99.0), True),
        ("efficiency", (10.0, 0.2, 1.0), False),
        ("balanced", (99.0, 9.0, 31.4), True),
        ("balanced", (1.0, 0.0, 32.0), False),
    ],
)
def test_settled_goal_judges_each_device_on_what_its_goal_asks_for(goal, mine, ok):
    defaults = Run("s", "defaults", [_phase(20.0, 0.1, 30.0)], [], goals={"eth0": goal})
    checks = settled_goal(Run("s", "irqtune", [_phase(*mine)], [], goals={"eth0": goal}), defaults)
    assert [c.ok for c in checks] == [ok] and checks[0].goal == "settled" and f"eth0 ({goal})" in checks[0].numbers
