"""`irqtune import-tuned` on real TuneD profiles (tests/fixtures/tuned, SOURCES.md there): the config it prints
loads with irqtune's own loader, carries the pins over and names every key it could not, FILE:LINE."""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import REPO

from irqtune.cli import main
from irqtune.config import load_config
from irqtune.plan.tuned import convert, parse_conf

ROOT = REPO / "tests" / "fixtures" / "tuned"


def _import(*args: str):
    result = CliRunner().invoke(main, ["--root", str(ROOT), "import-tuned", *args])
    assert result.exit_code == 0, result.output
    return result


def _imported(profile: str) -> tuple[object, dict]:
    """(the loaded config, the JSON answer)."""
    answer = json.loads(_import(profile, "--json").stdout)
    return load_config(f"{profile}.toml", answer["config"]), answer


def _leftovers(answer: dict) -> dict[str, str]:
    return {f"[{left['section']}] {left['key']}": left["where"] for left in answer["leftovers"]}


def test_network_latency_pins_busy_polling_and_names_the_rest():
    config, answer = _imported("network-latency")
    assert {p.pattern: p.value for p in config.pins} == {"sysctl/net.core.busy_read": "50",
                                                        "sysctl/net.core.busy_poll": "50"}  # fmt: skip
    assert config.mode == "observe" and not config.cpus.critical and len(answer["leftovers"]) == 19  # README
    left = _leftovers(answer)
    for key in ("[sysctl] net.ipv4.tcp_fastopen", "[sysctl] kernel.numa_balancing", "[vm] transparent_hugepages",
                "[bootloader] cmdline_network_latency", "[selinux] avc_cache_threshold"):  # fmt: skip
        assert left[key].endswith(tuple(f"network-latency/tuned.conf:{n}" for n in range(1, 40))), (key, left)
    # include=latency-performance followed: its keys are named with its own file and line
    assert left["[cpu] governor"].endswith("latency-performance/tuned.conf:10"), left
    assert left["[sysctl] vm.swappiness"].endswith("latency-performance/tuned.conf:39"), left


def test_latency_performance_has_nothing_irqtune_sets():
    config, answer = _imported("latency-performance")
    assert config.pins == [] and len(answer["leftovers"]) == 10
    assert "[cpu] force_latency" in _leftovers(answer)


def test_network_throughput_and_its_include_carry_nothing_over_and_name_why():
    config, answer = _imported("network-throughput")
    assert config.pins == []
    left = {f"[{x['section']}] {x['key']}": x["why"] for x in answer["leftovers"]}
    assert "not a sysctl irqtune sets" in left["[sysctl] net.ipv4.tcp_rmem"]
    assert "not a sysctl irqtune sets" in left["[sysctl] net.core.somaxconn"]  # throughput-performance's
    assert "[sysctl.thunderx] kernel.numa_balancing" in left  # a conditional instance: named, not applied


def test_net_option_strings_become_glob_pins_and_isolated_cores_critical():
    """The test profile (etc/tuned overrides usr/lib/tuned): ethtool -C names (rx-frames, adaptive-rx) map to
    irqtune's, on/off to 1/0, ring= (ethtool -G) to the ring knobs, for the devices= glob; its busy_read overrides
    the included network-latency's."""
    config, answer = _imported("irqtune-nic")
    pins = {p.pattern: p.value for p in config.pins}
    assert pins == {
        "sysctl/net.core.busy_read": "25", "sysctl/net.core.busy_poll": "50", "net/eth*/coalesce/rx-usecs": "8",
        "net/eth*/coalesce/rx-max-frames": "32", "net/eth*/coalesce/use-adaptive-rx": "0",
        "net/eth*/coalesce/pkt-rate-low": "1000", "net/eth*/coalesce/tx-aggr-max-bytes": "4096",
        "net/eth*/channels/combined": "4", "sysctl/net.core.netdev_budget": "600",
        "net/eth*/rings/rx": "1024", "net/eth*/rings/tx": "512",
    }  # fmt: skip
    assert config.cpus.critical == "2-3"
    left = {f"[{x['section']}] {x['key']}": x["why"] for x in answer["leftovers"]}
    assert "[net] ring" not in left  # ethtool -G sizes: the ring knobs
    assert "[net] devices" not in left and "[scheduler] isolated_cores" not in left


def test_text_output_is_the_config_on_stdout_and_leftovers_on_stderr(tmp_path):
    result = _import("network-latency")
    assert load_config("out.toml", result.stdout).pins
    assert "not carried over: " in result.stderr and "[selinux] avc_cache_threshold = 8192" in result.stderr
    assert "not carried over" not in result.stdout
    out = tmp_path / "irqtune.toml"
    written = _import(str(ROOT / "usr/lib/tuned/network-latency/tuned.conf"), "-o", str(out))
    assert written.stdout == "" and load_config(str(out)).pins == load_config("x", result.stdout).pins


def test_a_missing_profile_is_an_error():
    result = CliRunner().invoke(main, ["--root", str(ROOT), "import-tuned", "no-such-profile"])
    assert result.exit_code == 1 and "no TuneD profile 'no-such-profile'" in result.output


def test_cpu_partitioning_isolated_cores_from_its_variables_or_named_when_a_function():
    """cpu-partitioning sets isolated_cores in [variables] (its variables.conf) and uses ${isolated_cores} in
    [scheduler] and [bootloader]: a literal list carries over as [cpus] critical, TuneD's default (a function that
    picks cores at boot) cannot and is named."""
    text = (
        "[variables]\nisolated_cores=2-5\n[scheduler]\nisolated_cores=${isolated_cores}\n"
        "[irqbalance]\nbanned_cpus=${isolated_cores}\n"
    )
    imported = convert("cpu-partitioning", parse_conf(text, "tuned.conf"))
    assert imported.critical == "2-5" and load_config("c.toml", imported.toml()).cpus.critical == "2-5"
    assert imported.leftover_lines() == ["tuned.conf:6: [irqbalance] banned_cpus = ${isolated_cores}: irqtune has "
                                         "no equivalent of TuneD's [irqbalance] banned_cpus"]  # fmt: skip
    function = convert("cpu-partitioning", parse_conf("[variables]\nisolated_cores=${f:calc_isolated_cores:1}\n", "v"))
    assert function.critical == "" and "set [cpus] critical by hand" in function.leftover_lines()[0]
