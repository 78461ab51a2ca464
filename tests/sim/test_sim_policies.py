"""`irqtune simulate --policy`: every library scenario under every policy; the oracle bounds the rest;
what a policy changes goes through the journal and `restore` undoes it."""

from __future__ import annotations

import json
import math

import pytest
from conftest import cli

from irqtune.sim.objective import device_weights, scenario_cost
from irqtune.sim.policy import PolicyError, make_policy, parse_static
from irqtune.sim.run import run_scenario
from irqtune.sim.scenario import library, load_scenario

POLICIES = ["defaults", "static:latency", "static:throughput", "static:dumazet", "static:suspend20", "dim", "aim",
            "always-poll", "oracle-static", "oracle", "irqtune"]  # fmt: skip


def shortened(name: str, seconds: float = 6.0):
    """A library scenario squeezed into `seconds` of simulated time (every phase keeps its share)."""
    scenario = load_scenario(library()[name])
    scale = seconds / scenario.seconds
    for phase in scenario.phases:
        phase.seconds = max(1.0, round(phase.seconds * scale))
    return scenario


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(library()))
def test_every_scenario_runs_under_every_policy(tmp_path, name):
    costs = {}
    for i, policy in enumerate(POLICIES):
        results, trace, _ = run_scenario(shortened(name), str(tmp_path / f"t{i}"), seed=3,
                                               policy=make_policy(policy))  # fmt: skip
        assert len(trace) == sum(r.seconds for r in results)  # one record per simulated second
        for phase in results:
            assert phase.delivered_pps + phase.dropped_pps == pytest.approx(phase.offered_pps)
            assert phase.delivered_pps <= phase.offered_pps * (1 + 1e-9)
            if phase.offered_pps and not phase.dropped_pps:
                assert 0 < phase.mean_latency_us < math.inf and phase.p50_us <= phase.p99_us <= phase.p999_us
            for dev in phase.nvme.values():
                assert dev["iops"] > 0 and dev["mean_latency_us"] > 0 and dev["p50_us"] <= dev["p99_us"]
        costs[policy] = scenario_cost(results, weights=device_weights(shortened(name)))
    # the oracles are the grid optimum of the closed form: no static setting beats them by more than the
    # measurement noise of the counters (the oracle scores phases with the closed form, the run adds noise)
    forbidden = any(not nic.deferral for nic in shortened(name).nics)  # the operator's: outside the oracles' grid
    for policy in ("static:latency", "static:throughput", "static:dumazet", "oracle-static"):
        if forbidden and policy.startswith("static:") and parse_static(policy[len("static:") :]).defer:
            continue
        assert costs["oracle"] <= costs[policy] * 1.03 + 0.5, (policy, costs)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["dim", "irqtune", "oracle"])
def test_results_are_reproducible_with_a_seed(tmp_path, policy):
    def run(seed: int, where: str) -> list:
        results, trace, _ = run_scenario(shortened("load-step"), str(tmp_path / where), seed=seed,
                                         policy=make_policy(policy))  # fmt: skip
        return [r.__dict__ for r in results] + [t.__dict__ for t in trace]

    assert run(5, "a") == run(5, "b")
    if policy == "dim":  # DIM's decisions and the counter noise follow the seed
        assert run(5, "c") != run(6, "d")


@pytest.mark.slow
def test_dim_drifts_where_the_oracle_does_not(tmp_path):
    """Open-loop steady load: DIM walks to maximum moderation and pays in latency (docs/physics.md §1.8-2)."""
    scenario = shortened("steady-rx", 10)
    dim, trace, _ = run_scenario(scenario, str(tmp_path / "dim"), policy=make_policy("dim"))
    oracle, _, _ = run_scenario(shortened("steady-rx", 10), str(tmp_path / "o"), policy=make_policy("oracle"))
    default, _, _ = run_scenario(shortened("steady-rx", 10), str(tmp_path / "d"))
    assert {t.settings["eth0"] for t in trace[-3:]} <= {"128us/256", "256us/256"}  # EQE profiles 3-4
    assert dim[0].mean_latency_us > 5 * max(oracle[0].mean_latency_us, default[0].mean_latency_us)
    assert dim[0].irq_rate < default[0].irq_rate / 5  # what DIM optimises: fewer events


def test_cli_prints_the_policy_and_refuses_unknown_ones(tmp_path):
    out_file = tmp_path / "r.json"
    code, out, err = cli("simulate", "nvme-optane", "--policy", "always-poll", "--duration", "3s",
                         "--tree", str(tmp_path / "t"), "-o", str(out_file))  # fmt: skip
    assert code == 0, err
    assert "policy always-poll" in out and "poll" in out and "NVME" in out
    saved = json.loads(out_file.read_text())
    assert saved["policy"] == "always-poll" and len(saved["intervals"]) == 3
    assert any("busy_read" in c for c in saved["changes"])
    code, _, err = cli("simulate", "steady-rx", "--policy", "magic")
    assert code == 1 and "unknown policy 'magic'" in err
    code, _, err = cli("simulate", "steady-rx", "--policy", "static:rx-usecs=fast")
    assert code == 1 and "key=value" in err
    with pytest.raises(PolicyError):
        make_policy("static:bogus=1")
    assert parse_static("suspend20").suspend_us == 20_000 and parse_static("rx-usecs=4,rx-frames=8").usecs == 4


def test_what_a_policy_changed_is_journaled_and_restore_undoes_it(tmp_path):
    tree = tmp_path / "t"
    code, out, err = cli(
        "simulate", "memcached-low", "--policy", "static:suspend20", "--duration", "2s", "--tree", str(tree), "--json"
    )
    assert code == 0, err
    settings = json.loads(out)["phases"][0]["settings"]["eth0"]
    assert settings["irq_suspend_timeout"] == 20_000_000 and settings["defer_hard_irqs"] == 100
    state = str(tree / ".irqtune-state")
    napi = json.loads((tree / "sys/class/net/eth0/irqtune-sim/napi.json").read_text())
    assert {v["irq_suspend_timeout"] for v in napi.values()} == {20_000_000}
    code, out, err = cli("restore", root=tree, state=state)
    assert code == 0, out + err
    napi = json.loads((tree / "sys/class/net/eth0/irqtune-sim/napi.json").read_text())
    assert {(v["irq_suspend_timeout"], v["defer_hard_irqs"], v["gro_flush_timeout"]) for v in napi.values()} == {
        (0, 0, 0)}  # fmt: skip
    assert (tree / "sys/class/net/eth0/gro_flush_timeout").read_text().strip() == "0"
    coalesce = json.loads((tree / "sys/class/net/eth0/irqtune-sim/ethtool.json").read_text())["coalesce"]
    assert (coalesce["rx_usecs"], coalesce["rx_max_frames"]) == (8, 128)


@pytest.mark.slow
def test_scorecard_normalises_to_defaults_and_the_oracle():
    from irqtune.sim.score import POLICIES as SCORED
    from irqtune.sim.score import scorecard

    cells = scorecard(["load-step", "idle-server"], duration=6)
    assert len(cells) == 2 * len(SCORED)
    by = {(c.scenario, c.policy): c for c in cells}
    assert by[("load-step", "defaults")].score == 0 and by[("load-step", "oracle")].score == 1
    assert by[("load-step", "dim")].score < 0  # DIM's drift costs more than it saves
    assert all(c.cost >= by[(c.scenario, "oracle")].cost * 0.97 for c in cells)


@pytest.mark.slow
def test_mixed_criticality_the_critical_nic_stays_put_and_does_not_feel_the_storm(tmp_path):
    """irqtune keeps the critical NIC's IRQs on its isolated CPUs (config cpus), moves the noisy NIC's
    IRQs off them, and the critical NIC's latency and interrupt load do not change when the other storms."""
    tree = tmp_path / "t"
    results, _, changes = run_scenario(load_scenario(library()["mixed-criticality"]), str(tree),
                                       policy=make_policy("irqtune"))  # fmt: skip
    assert not any(c.split()[1].startswith(("irq/100/", "irq/101/")) for c in changes)  # eth0's queue IRQs
    calm, storm = (r.nics for r in results)
    assert storm["eth1"]["offered_pps"] > 4 * calm["eth1"]["offered_pps"]
    assert storm["eth0"]["mean_latency_us"] == pytest.approx(calm["eth0"]["mean_latency_us"], rel=0.02)
    assert storm["eth0"]["irq_rate"] == pytest.approx(calm["eth0"]["irq_rate"], rel=0.05)
    rows = json.loads(cli("snapshot", "--json", root=tree).stdout)["interrupts"]["rows"]
    on_critical = {irq for irq, row in rows.items() if irq.isdigit() and {"6", "7"} & set(row["counts"])}
    assert on_critical == {"100", "101"}  # nothing but the critical NIC's own queues there
