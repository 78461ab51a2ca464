"""The simulator's RX refill under memory pressure (sim/memory.py) and the agent's answer to it: the library's
rx-refill-pressure scenario drops while the reserve is thin, and the agent's vm.min_free_kbytes ends the drops."""

from __future__ import annotations

import pytest

from irqtune.sim.memory import default_min_free_kbytes, reserve
from irqtune.sim.policy import make_policy
from irqtune.sim.run import run_scenario
from irqtune.sim.scenario import library, load_scenario


def test_refill_fails_below_the_atomic_floor_and_a_larger_reserve_ends_it():
    thin = reserve(4096, default_min_free_kbytes(4096), 10, burst_mb=8.6, refill_pages=512)
    assert (thin.min, thin.low) == (2048, 3096) and 0.15 < thin.refill_fail < 0.2
    assert reserve(4096, 2 * 8192, 10, burst_mb=8.6, refill_pages=512).refill_fail == 0.0
    assert reserve(4096, 8192, 10, burst_mb=0.0, refill_pages=512).refill_fail == 0.0


@pytest.mark.slow
def test_the_agent_raises_the_reserve_before_the_drops_the_defaults_have(tmp_path):
    """Under the defaults the heavy bursts drop 17 % of the packets; the agent sees direct reclaim with free pages
    near min in the building phase and doubles vm.min_free_kbytes there while that lasts (bounded: 5 % of memory at
    most), so the heavy bursts find the reserve wide enough and nothing drops in any phase."""
    spec = load_scenario(library()["rx-refill-pressure"])
    base, _, _ = run_scenario(spec, str(tmp_path / "n"), policy=make_policy("defaults"))
    tuned, _, changes = run_scenario(spec, str(tmp_path / "i"), policy=make_policy("irqtune"))
    assert [r.dropped_pps == 0 for r in base] == [True, True, False]
    assert base[2].dropped_pps > 0.15 * base[2].offered_pps
    made = [c for c in changes if "sysctl/vm.min_free_kbytes" in c]
    assert made and "8192 -> 16384 (applied" in made[0], changes
    times = [float(c.split("s ", 1)[0][2:]) for c in made]
    assert 10 <= times[0] < 20 and max(times) <= 21  # from the building phase, done by the pressure's first pass
    assert all(int(c.split(" -> ")[1].split()[0]) <= 4096 * 1024 // 20 for c in made)
    assert [r.dropped_pps for r in tuned] == [0, 0, 0]
