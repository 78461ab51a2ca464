"""The config's [pin] on a simulated host: pins written once through the journal (so restore undoes them), held
against the agent's own moderation, drift reported (and written again only with repin = true)."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner

from irqtune.act import engine
from irqtune.act.journal import Journal
from irqtune.agent.loop import Agent
from irqtune.cli import main
from irqtune.config import Config, ConfigError, Limits, load_config
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import load_scenario
from irqtune.statedir import boot_id

SCENARIO = """
[host]
cpus = 4

[[nic]]
name = "eth1"
queues = 2
flavour = "timer-from-first"
rx_usecs = 64
rx_frames = 256

[[phase]]
name = "steady"
seconds = 60
nic = "eth1"
rate_pps = 20000
"""
PINS = """
mode = "{mode}"
interval = 1
repin = {repin}
[limits]
dwell = 0
[pin]
"sysctl/net.core.busy_read" = 50
"net/eth*/coalesce/rx-usecs" = {usecs}
"""


class _Run:
    """A simulated host, its journal and an agent with a [pin] config."""

    def __init__(self, tmp_path, mode: str = "tune", usecs: int = 8, repin: bool = False) -> None:
        self.sim = SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=2)
        self.host = SimulatedKernel.for_root(self.sim.root)
        self.state = str(tmp_path / "state")
        self.journal = Journal.open(self.state, boot_id(self.host))
        config = load_config("c.toml", PINS.format(mode=mode, usecs=usecs, repin=str(repin).lower()))
        self.agent = Agent(self.host, config, self.state, clock=lambda: self.sim.clock, journal=self.journal)

    def passes(self, n: int) -> list:
        reports = []
        for _ in range(n):
            self.sim.step(1.0, self.sim.sc.phases[0])
            reports.append(self.agent.run_pass())
        return reports

    def read(self, knob: str) -> str | None:
        return engine.read_knob(self.host, knob)

    def busy_read_set_by_someone_else(self, value: int) -> None:
        with open(os.path.join(self.sim.root, "proc/sys/net/core/busy_read"), "w", encoding="utf-8") as f:
            f.write(f"{value}\n")


def test_pins_are_applied_once_journaled_and_restored(tmp_path):
    run = _Run(tmp_path)
    first, second = run.passes(2)
    pins = {p.knob: p for p in first.pins}
    assert set(pins) == {"sysctl/net.core.busy_read", "net/eth1/coalesce/rx-usecs"}, [p.to_json() for p in first.pins]
    assert all(p.outcome == "pinned" for p in pins.values()), [p.to_json() for p in first.pins]
    assert (pins["sysctl/net.core.busy_read"].current, pins["net/eth1/coalesce/rx-usecs"].current) == ("0", "64")
    assert second.pins == []  # once: a pin holding its value is not written (nor reported) again
    assert run.read("sysctl/net.core.busy_read") == "50" and run.read("net/eth1/coalesce/rx-usecs") == "8"
    entries = run.journal.entries
    assert entries["sysctl/net.core.busy_read"].original == "0"
    assert entries["net/eth1/coalesce/rx-usecs"].original == "64"
    run.journal.close()
    result = CliRunner().invoke(main, ["--root", run.sim.root, "--state-dir", run.state, "restore"])
    assert result.exit_code == 0, result.output
    assert run.read("sysctl/net.core.busy_read") == "0" and run.read("net/eth1/coalesce/rx-usecs") == "64"


def test_a_pinned_knob_is_not_moved_by_the_agents_moderation(tmp_path):
    """20k packets/s with rx-usecs 64: unpinned, moderation turns coalescing off (test_agent_moderation.py);
    pinned at 64, the proposal is held with the pin as its reason and the knob keeps 64."""
    run = _Run(tmp_path, usecs=64)
    reports = run.passes(4)
    usecs = [d for r in reports for d in r.decisions if d.knob == "net/eth1/coalesce/rx-usecs"]
    assert usecs, [d.to_json() for r in reports for d in r.decisions]
    assert all(d.outcome == "held" and "pinned at 64" in d.note for d in usecs), [d.to_json() for d in usecs]
    assert run.read("net/eth1/coalesce/rx-usecs") == "64"
    run.journal.close()


def test_drift_is_reported_and_left_alone_by_default(tmp_path):
    run = _Run(tmp_path)
    run.passes(1)
    run.busy_read_set_by_someone_else(7)
    report = run.passes(1)[0]
    drift = [p for p in report.pins if p.knob == "sysctl/net.core.busy_read"]
    assert len(drift) == 1 and drift[0].outcome == "drifted" and drift[0].current == "7", report.to_json()["pins"]
    assert "repin = false" in drift[0].note
    assert run.read("sysctl/net.core.busy_read") == "7"
    verified = {r.knob: r.outcome for r in engine.verify(run.host, run.journal)}
    assert verified["sysctl/net.core.busy_read"] == engine.DRIFTED  # `irqtune verify` says so too
    run.journal.close()


def test_repin_writes_a_drifted_pin_again(tmp_path):
    run = _Run(tmp_path, repin=True)
    run.passes(1)
    run.busy_read_set_by_someone_else(7)
    report = run.passes(1)[0]
    assert [(p.knob, p.outcome) for p in report.pins] == [("sysctl/net.core.busy_read", "repinned")]
    assert run.read("sysctl/net.core.busy_read") == "50"
    assert run.journal.entries["sysctl/net.core.busy_read"].original == "0"  # restore still puts back the first
    run.journal.close()


def test_observe_mode_reports_what_it_would_pin_and_writes_nothing(tmp_path):
    run = _Run(tmp_path, mode="observe")
    report = run.passes(1)[0]
    assert {(p.knob, p.outcome) for p in report.pins} == {("sysctl/net.core.busy_read", "would pin"),
                                                         ("net/eth1/coalesce/rx-usecs", "would pin")}  # fmt: skip
    assert run.read("sysctl/net.core.busy_read") == "0" and not run.journal.entries
    run.journal.close()


def test_a_glob_pin_covers_a_nic_that_appears_later(tmp_path):
    config = load_config("c.toml", PINS.format(mode="tune", usecs=8, repin="false"))
    assert config.pins[1].knobs(["eth1"]) == ["net/eth1/coalesce/rx-usecs"]
    assert config.pins[1].knobs(["eth1", "eth2", "ens3"]) == [
        "net/eth1/coalesce/rx-usecs",
        "net/eth2/coalesce/rx-usecs",
    ]
    assert Config(limits=Limits()).pins == []


def test_pin_errors_name_the_file_line_and_key():
    cases = {
        '"sysctl/net.core.busy_read" = "50"': "expected a whole number",
        '"net/eth*/coalesce/rx-usecs" = 100': "outside the config's [bounds] 0..64",
        '"net/eth*/coalesce/no-such" = 1': "unknown knob 'net/eth*/coalesce/no-such'",
        '"sysctl/net.core.busy_poll" = 2000000': "2000000 is outside 0..1048576",
        '"irq/5/affinity" = 3': "expected a CPU list as a string",
    }
    for line, problem in cases.items():
        text = f'[bounds]\n"net/*/coalesce/rx-usecs" = [0, 64]\n\n[pin]\n{line}\n'
        try:
            load_config("c.toml", text)
        except ConfigError as err:
            assert str(err).startswith(f"c.toml:5: pin.{line.split(chr(34))[1]}: ") and problem in str(err), err
        else:
            raise AssertionError(f"accepted {line}")


def test_a_reload_that_changes_a_pin_writes_the_new_value_and_one_that_drops_it_lets_the_knob_go(tmp_path):
    run = _Run(tmp_path)
    run.passes(1)
    run.agent.config = load_config("c.toml", PINS.format(mode="tune", usecs=16, repin="false"))  # as SIGHUP does
    report = run.passes(1)[0]
    assert [(p.knob, p.current, p.outcome) for p in report.pins] == [("net/eth1/coalesce/rx-usecs", "8", "pinned")]
    assert run.read("net/eth1/coalesce/rx-usecs") == "16"
    assert run.journal.entries["net/eth1/coalesce/rx-usecs"].original == "64"
    run.agent.config = Config(mode="tune", interval=1.0, limits=Limits(dwell=0))
    report = run.passes(1)[0]
    assert report.pins == [] and run.agent.pinner.why("net/eth1/coalesce/rx-usecs") is None
    run.journal.close()


def test_a_nic_that_leaves_and_comes_back_is_pinned_again_not_reported_as_drift(tmp_path):
    run = _Run(tmp_path)
    run.passes(1)
    config = run.agent.config
    assert run.agent.pinner.run(config, run.journal, [], None) == []  # eth1 gone: its pin lets go
    path = os.path.join(run.sim.root, "sys/class/net/eth1/irqtune-sim/ethtool.json")
    with open(path, encoding="utf-8") as f:
        state = json.load(f)
    state["coalesce"]["rx_usecs"] = 64  # back with its driver's default
    with open(path, "w", encoding="utf-8") as f:
        json.dump(state, f)
    again = run.agent.pinner.run(config, run.journal, ["eth1"], None)
    assert [(p.knob, p.current, p.outcome) for p in again] == [("net/eth1/coalesce/rx-usecs", "64", "pinned")]
    assert run.read("net/eth1/coalesce/rx-usecs") == "8"
    run.journal.close()


def test_a_tuned_profile_imported_and_applied_on_a_simulated_host(tmp_path):
    """The TuneD migration end to end: `irqtune import-tuned` of the test profile (tests/fixtures/tuned), switched to
    tune mode, run by the agent on a simulated host: its sysctl and NIC pins written through the journal, and
    `irqtune restore` puts every original back."""
    from conftest import REPO

    root = REPO / "tests" / "fixtures" / "tuned"
    imported = CliRunner().invoke(main, ["--root", str(root), "import-tuned", "irqtune-nic", "--json"])
    assert imported.exit_code == 0, imported.output
    text = json.loads(imported.stdout)["config"].replace('mode = "observe"', 'mode = "tune"')
    config = load_config("imported.toml", text)
    run = _Run(tmp_path)
    run.agent = Agent(run.host, config, run.state, clock=lambda: run.sim.clock, journal=run.journal)
    before = {k: run.read(k) for k in ("sysctl/net.core.busy_read", "sysctl/net.core.busy_poll",
                                       "net/eth1/coalesce/rx-usecs", "net/eth1/coalesce/rx-max-frames")}  # fmt: skip
    first = run.passes(1)[0]
    pinned = {p.knob: p.outcome for p in first.pins}
    assert pinned.get("sysctl/net.core.busy_read") == "pinned" and pinned.get("sysctl/net.core.busy_poll") == "pinned"
    assert pinned.get("net/eth1/coalesce/rx-usecs") == "pinned", [p.to_json() for p in first.pins]
    assert run.read("sysctl/net.core.busy_read") == "25" and run.read("net/eth1/coalesce/rx-usecs") == "8"
    assert run.read("net/eth1/coalesce/rx-max-frames") == "32"
    run.journal.close()
    result = CliRunner().invoke(main, ["--root", run.sim.root, "--state-dir", run.state, "restore"])
    assert result.exit_code == 0, result.output
    assert {k: run.read(k) for k in before} == before
