"""`irqtune simulate` and the TOML files: bad input is FILE:LINE, and no temporary tree outlives a run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import cli
from test_sim_host import SCENARIO

from irqtune.config import ConfigError, load_config
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import ScenarioError, load_scenario

EXE = [sys.executable, "-m", "irqtune"]


@pytest.mark.parametrize("score", [(), ("--score",)])
def test_malformed_scenario_is_file_line_in_the_scorecard_too(tmp_path, score):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.replace("queues = 4\nnode = 1", "queus = 4\nnode = 1"))
    code, _, err = cli("simulate", *score, str(path), "--duration", "1s")
    assert code == 1 and f"{path}:9: nic[0].queus: unknown key" in err and "Traceback" not in err


@pytest.mark.parametrize("score", [(), ("--score",)])
def test_toml_syntax_error_is_file_line_column(tmp_path, score):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.replace("rate_pps = 400000", "rate_pps = 400 000"))
    code, _, err = cli("simulate", *score, str(path))
    assert code == 1 and f"{path}:21:16: Expected newline or end of document after a statement" in err


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('mode = "tune"\n[limits]\ndwell = ,\n', "c.toml:3:9: Invalid value"),
        ('mode = "tune"\ninterval = ', "c.toml:2:12: Invalid value"),  # at the end of the document
        ('mode = "tune"\nname = "a\n', "c.toml:2:10: Illegal character"),
        ("\n\ninterval = " + "9" * 5000 + "\n", "c.toml:3: a number with thousands of digits"),
        ("interval = " + "[" * 5000, "c.toml:1: arrays or inline tables nested too deeply"),
    ],
)
def test_config_syntax_errors_name_line_and_column(text, where):
    with pytest.raises(ConfigError) as caught:
        load_config("c.toml", text)
    assert str(caught.value).startswith(where), caught.value
    with pytest.raises(ScenarioError, match=f"^s{where[1:]}"):
        load_scenario("s.toml", text)


def test_agent_refuses_a_config_with_a_syntax_error(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('mode = "tune"\n[limits]\ndwell = 3 3\n')
    code, _, err = cli("run", "--config", str(config), "--passes", "1", state=tmp_path / "s")
    assert code == 1 and f"{config}:3:11: Expected newline" in err


def run_simulate(tmp, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.run([*EXE, "simulate", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("args", [("steady-rx", "--duration", "2s"), ("--score", "idle-server", "--duration", "2s")])
def test_simulate_leaves_nothing_in_tmp(tmp_path, args):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    result = run_simulate(tmp, *args)
    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp) == []
    assert "tree: removed" in result.stdout or "--score" in args


def test_simulate_keeps_the_tree_it_was_given(tmp_path):
    code, out, err = cli("simulate", "steady-rx", "--duration", "1s", "--tree", str(tmp_path / "t"))
    assert code == 0, err
    assert (tmp_path / "t" / "proc" / "interrupts").is_file() and f"tree: {tmp_path / 't'}" in out


@pytest.mark.slow
def test_simulate_error_after_the_tree_is_made_removes_it(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp_path / "r.json").symlink_to(tmp_path / "no" / "such" / "r.json")  # its directory passes the early check
    result = run_simulate(tmp, "steady-rx", "--duration", "1s", "-o", str(tmp_path / "r.json"))
    assert result.returncode == 1 and "r.json: cannot write" in result.stderr and "Traceback" not in result.stderr
    assert os.listdir(tmp) == []


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 1)])
@pytest.mark.parametrize(
    "args", [("steady-rx", "--duration", "600s", "--speed", "1"), ("--score", "steady-rx", "--duration", "3000s")]
)
def test_simulate_stopped_by_a_signal_removes_its_tree(tmp_path, sig, code, args):
    """Ctrl-C and SIGTERM in the middle of a run (a slow one, a long scorecard): the tree goes too."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [*EXE, "simulate", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not any((tmp / d / "proc").is_dir() for d in os.listdir(tmp)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.listdir(tmp), "the simulation never started"
        time.sleep(0.3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert os.listdir(tmp) == []


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../../../e", "no '/', ':', NUL or whitespace"),
        ("..", "'..' is not a device name"),
        (".", "'.' is not a device name"),
        ("eth0:1", "no '/', ':'"),
        ("eth 1", "no '/', ':'"),
        ("a" * 16, "expected 1 to 15 characters, got 16"),
    ],
)
def test_a_device_name_the_kernel_would_refuse_is_file_line_and_writes_nothing(tmp_path, name, why):
    """A name becomes a path in the tree (sys/class/net/NAME): `../../../../e` would leave --tree, `..` crashed."""
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.replace('name = "eth1"', f"name = {name!r}").replace('"nvme0"', f"{name!r}"))
    code, _, err = cli("simulate", str(path), "--duration", "1s", "--tree", str(tmp_path / "t"))
    assert code == 1 and f"{path}:8: nic[0].name: " in err and why in err and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path)) == ["s.toml"], "nothing made, inside --tree or outside it"
    path.write_text(SCENARIO.replace('"nvme0"', f"{name!r}"))
    with pytest.raises(ScenarioError, match=f"s.toml:13: nvme\\[0\\].name: .*{why[:10]}"):
        load_scenario(str(path))


def _outside(tmp_path):
    """A directory outside every tree, with a file a planted link points at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "interrupts").write_text("precious\n")
    return outside


@pytest.mark.parametrize("planted", ["link-in-dir", "dir-is-link"])
def test_simulate_refuses_a_tree_dir_it_did_not_make(tmp_path, planted):
    """Issue 16.3: --tree DIR holding someone else's files (a `proc` link out) or being a link is refused."""
    outside, tree = _outside(tmp_path), tmp_path / "t"
    if planted == "link-in-dir":
        tree.mkdir()
        os.symlink(outside, tree / "proc")
    else:
        os.symlink(outside, tree)
    code, _, err = cli("simulate", "steady-rx", "--duration", "1s", "--tree", str(tree))
    assert code == 1 and "Traceback" not in err, err
    assert ("not empty and not a simulated tree" if planted == "link-in-dir" else "is a symlink") in err
    assert sorted(os.listdir(outside)) == ["interrupts"] and (outside / "interrupts").read_text() == "precious\n"


@pytest.mark.parametrize("planted", ["file-link", "dir-link", "hard-link"])
def test_simulate_never_writes_through_a_link_planted_in_its_tree(tmp_path, planted):
    """A tree rendered before may be rendered again, but a link planted in it since is refused, never followed."""
    outside, tree = _outside(tmp_path), tmp_path / "t"
    code, _, err = cli("simulate", "steady-rx", "--duration", "1s", "--tree", str(tree))
    assert code == 0, err
    if planted == "file-link":
        (tree / "proc" / "interrupts").unlink()
        os.symlink(outside / "interrupts", tree / "proc" / "interrupts")
    elif planted == "dir-link":
        shutil.rmtree(tree / "proc" / "net")
        os.symlink(outside, tree / "proc" / "net")
    else:
        (tree / "proc" / "interrupts").unlink()
        os.link(outside / "interrupts", tree / "proc" / "interrupts")
    code, _, err = cli("simulate", "steady-rx", "--duration", "1s", "--tree", str(tree))
    assert code == 1 and "refused" in err and "Traceback" not in err, err
    assert sorted(os.listdir(outside)) == ["interrupts"] and (outside / "interrupts").read_text() == "precious\n"


ETHTOOL = "sys/class/net/eth1/irqtune-sim/ethtool.json"
NAPI = "sys/class/net/eth1/irqtune-sim/napi.json"


@pytest.mark.parametrize(
    ("path", "text", "args", "code", "message"),
    [
        (".irqtune-sim.json", '{"kernel": 6', ("status", "-i", "0"), 1, ".irqtune-sim.json:1:13: Expecting ',' delim"),
        (".irqtune-sim.json", "[]", ("status", "-i", "0"), 1, ".irqtune-sim.json:1: expected a JSON object"),
        (".irqtune-sim.json", '{\n "kernel": 618}', ("status", "-i", "0"), 1, ".json:2: kernel: expected a version"),
        (".irqtune-sim.json", '{"online": [0, "1"]}', ("status", "-i", "0"), 1, ":1: online: expected a list of"),
        (ETHTOOL, "[1]", ("get", "net/eth1/coalesce/rx-usecs"), 3, "ethtool.json:1: expected a JSON object"),
        (
            ETHTOOL,
            '{"coalesce": {\n"rx_usecs": "x"}}',
            ("get", "net/eth1/coalesce/rx-usecs"),
            3,
            "ethtool.json:2: coalesce.rx_usecs: expected a whole number, got 'x'",
        ),
        (ETHTOOL, '{"coalesce": ', ("set", "net/eth1/coalesce/rx-usecs", "4"), 3, "ethtool.json:1:14: Expecting"),
        (NAPI, '{"9": 3}', ("get", "napi/eth1/9/defer-hard-irqs"), 3, "napi.json:1: 9: expected an object of whole"),
    ],
)
def test_a_damaged_simulated_tree_is_one_located_line(tmp_path, path, text, args, code, message):
    """Issue 16.8: a bad .irqtune-sim.json or device state file was a JSONDecodeError or TypeError traceback."""
    sim = SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=5)
    file = os.path.join(sim.root, path)
    with open(file, "w", encoding="utf-8") as f:
        f.write(text)
    result = cli(*args, root=sim.root, state=os.path.join(sim.root, "state"))
    assert result.exit_code == code and message in result.output and "Traceback" not in result.output, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--duration", "nans"), "--duration: expected 1ms to 86,400s, got 'nans'"),
        (("--duration", "1e300s"), "--duration: expected 1ms to 86,400s"),
        (("--duration", "1e-300s"), "--duration: expected 1ms to 86,400s"),
        (("--speed", "nan"), "--speed: expected max or a positive number, got 'nan'"),
        (("-o", "/nonexistent/dir/x.json"), "--output: /nonexistent/dir: no such directory"),
        (("-o", "/proc/x.json"), "--output: /proc: cannot write there"),
    ],
)
def test_simulate_options_are_checked_before_the_run(tmp_path, args, message):
    """Issue 16.8: --duration nans raised ValueError and 1e300s ran for ever; -o /nonexistent/dir/x.json failed after
    the run, not before it."""
    code, _, err = cli("simulate", "steady-rx", "--tree", str(tmp_path / "t"), *args)
    assert code == 2 and message in err and not (tmp_path / "t").exists(), err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("status", "-i", "nan"), "'-i' / '--interval'"),
        (("run", "--interval", "nan", "--passes", "1"), "'--interval'"),
        (("top", "-d", "nan", "-n", "1"), "'-d' / '--delay'"),
        (("probe", "-d", "nan"), "'-d' / '--duration'"),
    ],
)
def test_nan_is_no_interval(tmp_path, args, option):
    """Issue 16.5: --interval nan passed click's range check (nan compares false) and a pass never came."""
    sim = SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=5)
    code, _, err = cli(*args, root=sim.root, state=tmp_path / "state")
    assert code == 2 and f"Invalid value for {option}: nan is not a finite number" in err, err
