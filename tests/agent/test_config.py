"""The agent's config: defaults, rules by name and class, and errors that name the file, line and key."""

from __future__ import annotations

import re

import pytest

from irqtune.config import ConfigError, load_config

CONFIG = """mode = "tune"
interval = 5
goal = "balanced"

[cpus]
critical = "6-7"
irq_sink = "0"

[limits]
max_changes = 4
dwell = 20

[[device]]
name = "eth1"
goal = "latency"

[[device]]
class = "nvme"
manage = false
"""


def test_a_full_config_and_its_rules():
    config = load_config("c.toml", CONFIG)
    assert (config.mode, config.interval, config.limits.max_changes, config.limits.dwell) == ("tune", 5, 4, 20)
    assert config.cpus.cpus("critical") == {6, 7} and config.cpus.cpus("irq_sink") == {0}
    assert config.goal_for("eth1", "nic") == "latency"
    assert config.goal_for("eth0", "nic") == "balanced" and config.manages("eth0", "nic")
    assert not config.manages("nvme0", "nvme")


def test_an_empty_file_is_the_defaults():
    config = load_config("empty.toml", "")
    assert config.mode == "observe" and config.devices == [] and config.limits.max_changes == 8


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('mode = "tune"', 'mode = "auto"', "c.toml:1: mode: expected one of observe, tune"),
        ("interval = 5", "interval = 0", "c.toml:2: interval: expected 0.5..3600 seconds"),
        ('critical = "6-7"', 'critical = "7-6"', "c.toml:6: cpus.critical:"),
        ("dwell = 20", "dwel = 20", "c.toml:11: limits.dwel: unknown key"),
        ("dwell = 20", "dwell = -1", "c.toml:11: limits.dwell: must not be negative"),
        ('goal = "latency"', 'goal = "fast"', "c.toml:15: device[0].goal: expected one of"),
        ('class = "nvme"', 'class = "gpu"', "c.toml:18: device[1].class: expected one of nic, nvme"),
        ('name = "eth1"', 'name = "eth1"\nclass = "nic"', "c.toml:14: device[0].name: give exactly one"),
        ("max_changes = 4", 'max_changes = "4"', "c.toml:10: limits.max_changes: expected int"),
    ],
)
def test_errors_name_the_key_and_line(old, new, message):
    text = CONFIG.replace(old, new, 1)
    assert text != CONFIG
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("c.toml", text)


def test_device_cpus():
    config = load_config("c.toml", CONFIG.replace('goal = "latency"', 'goal = "latency"\ncpus = "6-7"', 1))
    assert config.device_cpus() == {"eth1": {6, 7}}
    with pytest.raises(ConfigError, match=re.escape("c.toml:16: device[0].cpus:")):
        load_config("c.toml", CONFIG.replace('goal = "latency"', 'goal = "latency"\ncpus = "7-x"', 1))


def test_bounds_patterns_and_their_errors():
    text = CONFIG + '\n[bounds]\n"net/*/coalesce/rx-usecs" = [0, 64]\n"net/eth1/gro-flush-timeout" = [0, 50000]\n'
    config = load_config("c.toml", text)
    assert config.bound("net/eth3/coalesce/rx-usecs") == (0, 64)
    assert config.bound("net/eth1/gro-flush-timeout") == (0, 50000) and config.bound("irq/5/affinity") is None
    with pytest.raises(ConfigError, match=re.escape("c.toml:22: bounds.net/*/coalesce/rx-usecs: expected [MIN, MAX]")):
        load_config("c.toml", text.replace("[0, 64]", "[64, 0]"))


def test_the_agent_holds_decisions_to_the_bounds(tmp_path):
    from irqtune.agent.loop import Agent
    from irqtune.host import Host
    from irqtune.plan import Change

    config = load_config("c.toml", '[bounds]\n"net/*/coalesce/rx-usecs" = [4, 64]\n')
    agent = Agent(Host(str(tmp_path)), config, str(tmp_path), clock=lambda: 0.0)
    held = agent._bounded(Change("net/eth1/coalesce/rx-usecs", "8", "256", "model"))
    assert held.target == "64" and "held to the config's bounds 4..64" in held.reason
    assert agent._bounded(Change("net/eth1/coalesce/rx-usecs", "4", "0", "model")) is None  # clamped to current
    assert agent._bounded(Change("net/eth1/gro-flush-timeout", "0", "20000", "model")).target == "20000"


def test_colocate_and_steer_need_a_device_name_and_a_known_move():
    good = load_config("c.toml", '[[device]]\nname = "eth1"\ncolocate = "memcached"\ncolocate_move = "threads"\n'
                       "steer = true\n")  # fmt: skip
    assert good.colocations() == {"eth1": ("memcached", "threads")} and good.steered() == {"eth1"}
    with pytest.raises(ConfigError, match=r"c.toml:4: device\[0\].colocate_move: expected irq or threads"):
        load_config("c.toml", '[[device]]\nname = "eth1"\ncolocate = "x"\ncolocate_move = "both"\n')
    with pytest.raises(ConfigError, match="needs a device name"):
        load_config("c.toml", '[[device]]\nclass = "nic"\nsteer = true\n')


def test_bounds_never_clamp_an_rx_usecs_into_a_drivers_mode(tmp_path):
    """On e1000e, rx-usecs 1, 3 and 4 are adaptive modes and 2, 5..9 are refused: a bound that would clamp a
    delay there raises it to the driver's minimum delay, or leaves the knob alone when that is out of bounds."""
    from types import SimpleNamespace

    from irqtune.agent.loop import Agent
    from irqtune.host import Host
    from irqtune.plan import Change

    def agent(bounds: str) -> Agent:
        made = Agent(Host(str(tmp_path)), load_config("c.toml", f'[bounds]\n"net/*/coalesce/rx-usecs" = {bounds}\n'),
                     str(tmp_path), clock=lambda: 0.0)  # fmt: skip
        nic = SimpleNamespace(driver="e1000e")
        made.inventory = SimpleNamespace(device=lambda name: nic if name == "eth1" else None)
        return made

    assert agent("[4, 64]")._bounded(Change("net/eth1/coalesce/rx-usecs", "3", "0", "m", "eth1")).target == "10"
    assert agent("[0, 8]")._bounded(Change("net/eth1/coalesce/rx-usecs", "0", "16", "m", "eth1")) is None
    other = agent("[4, 64]")._bounded(Change("net/eth2/coalesce/rx-usecs", "8", "0", "m", "eth2"))
    assert other.target == "4"  # a driver without rules: clamped as before


def test_a_p99_target_per_device_with_a_top_level_default():
    config = load_config(
        "c.toml",
        "p99_target_us = 200\n" + CONFIG.replace('goal = "latency"', 'goal = "latency"\np99_target_us = 50', 1),
    )
    assert config.p99_target_for("eth1", "nic") == 50 and config.p99_target_for("eth0", "nic") == 200
    assert load_config("c.toml", CONFIG).p99_target_for("eth1", "nic") == 0  # none unless written


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('goal = "latency"', 'goal = "latency"\np99_target_us = -5', "c.toml:16: device[0].p99_target_us: must not be"),
        (
            'goal = "latency"',
            'goal = "latency"\np99_target_us = "50us"',
            "c.toml:16: device[0].p99_target_us: expected",
        ),
        (
            'goal = "latency"',
            'goal = "latency"\np99_target_us = 5e6',
            "c.toml:16: device[0].p99_target_us: expected micro",
        ),
        (
            "manage = false",
            "manage = false\np99_target_us = 50",
            "c.toml:20: device[1].p99_target_us: a p99 target is for NICs",
        ),
        (
            'goal = "balanced"',
            'goal = "balanced"\np99_target_us = 2e6',
            "c.toml:4: p99_target_us: expected microseconds",
        ),
    ],
)
def test_p99_target_errors_name_the_key_and_line(old, new, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("c.toml", CONFIG.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("dwell = 20", "dwell = 20\nirq_cost_us = nan", "c.toml:12: limits.irq_cost_us: expected a finite number"),
        ("dwell = 20", "dwell = nan", "c.toml:11: limits.dwell: expected a finite number, got nan"),
        ("dwell = 20", "dwell = 1e400", "c.toml:11: limits.dwell: expected a finite number, got inf"),
        ('goal = "balanced"', "goal = 'balanced'\np99_target_us = nan", "c.toml:4: p99_target_us: expected a finite"),
        ("dwell = 20", "dwell = 20\nservice_us = 0", "c.toml:12: limits.service_us: expected 0.01 to 1000, got 0"),
        ("dwell = 20", "dwell = 20\nirq_cost_us = 0", "c.toml:12: limits.irq_cost_us: expected 0.01 to 1000, got 0"),
        ("dwell = 20", "dwell = 20\nirq_cost_us = 1e300", "c.toml:12: limits.irq_cost_us: expected 0.01 to 1000"),
        ("dwell = 20", "dwell = 1e12", "c.toml:11: limits.dwell: expected 0 to 86400, got 1e+12"),
        ("max_changes = 4", "max_changes = 1" + "0" * 400, "c.toml:10: limits.max_changes: expected a 64-bit integer"),
        ("dwell = 20", "dwell = 1" + "0" * 400, "c.toml:11: limits.dwell: expected a 64-bit integer"),
    ],
)
def test_every_number_is_finite_and_in_range(old, new, message):
    """Issue 16.5: nan sent the model into an endless loop and disabled the dwell; 0 divided by zero; a
    400-digit integer overflowed float()."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("c.toml", CONFIG.replace(old, new, 1))


@pytest.mark.parametrize(
    ("new", "line", "key"),
    [
        ("mode" + ".a" * 1500 + " = 1", 1, "mode"),  # a table 1,500 deep where a string belongs
        ("mode = 'tune'\n\n" + "x = " + "[1," * 5000 + "]" * 5000, 3, None),  # an array 5,000 deep
        ("mode = 'tune'\n[bounds]\n'a'" + ".b" * 1500 + " = 1", 3, "bounds.a"),
        ("mode = 'tune'\n[[device]]\nname" + ".b" * 1500 + " = 1", 3, "device[0].name"),
    ],
)
def test_a_config_nested_deep_is_a_located_error(new, line, key):
    """Issue 16.7/16.8: quoting a value nested 5,000 deep in the message raised RecursionError (a SIGHUP with
    such a file killed the agent); the line is the one where the nesting is, not line 1."""
    with pytest.raises(ConfigError) as caught:
        load_config("c.toml", new)
    message = str(caught.value)
    assert message.startswith(f"c.toml:{line}: {key + ':' if key else ''}") and len(message) < 300


@pytest.mark.parametrize(
    "text",
    [
        "mode = '" + "x" * 2_000_000 + "'",
        "'" + "k" * 2_000_000 + "' = 1",
        "[exporter]\nlisten = '" + "1" * 2_000_000 + "'",
        "[[device]]\nname = 'eth0'\ngoal = '" + "y" * 2_000_000 + "'",
    ],
)
def test_values_quoted_in_errors_are_cut_short(text):
    """Issue 16.9: one message echoed a 2 MB value; values and keys are cut to 80 characters with an ellipsis."""
    with pytest.raises(ConfigError) as caught:
        load_config("c.toml", text)
    assert len(str(caught.value)) < 400 and "…" in str(caught.value)
