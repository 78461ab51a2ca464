"""Safe at 3 a.m. (issue 12), the act/CLI layer: restore leaves drift alone, unknown names and CPUs are refused,
`get` says what a value means, and JSON says whether anything was written."""

from __future__ import annotations

import json
from pathlib import Path

import fakehost
import pytest
from click.testing import CliRunner

from irqtune.act import engine
from irqtune.act.journal import Journal
from irqtune.cli import main
from irqtune.host import Host


def invoke(root: Path | str, state: Path, *args: str):
    result = CliRunner().invoke(main, ["--root", str(root), "--state-dir", str(state), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def root(tmp_path):
    return fakehost.build(tmp_path / "host")


def affinity(root: Path, irq: int) -> str:
    return (root / "proc" / "irq" / str(irq) / "smp_affinity_list").read_text().strip()


def entries(state: Path) -> dict:
    return json.loads((state / "journal.json").read_text())["entries"]


# -- point 2: restore leaves drifted knobs alone unless --force ---------------------------------------------------


@pytest.fixture
def drifted(root, tmp_path) -> Path:
    """irqtune set IRQs 100 and 101; then an operator moved 100 elsewhere."""
    state = tmp_path / "state"
    assert invoke(root, state, "set", "irq/100/affinity", "4-5")[0] == 0
    assert invoke(root, state, "set", "irq/101/affinity", "4")[0] == 0
    (root / "proc" / "irq" / "100" / "smp_affinity_list").write_text("0-3\n")
    return state


def test_restore_leaves_a_drifted_knob_alone_and_says_so(root, drifted):
    code, out, err = invoke(root, drifted, "restore")
    assert code == 5, out + err
    assert affinity(root, 100) == "0-3" and affinity(root, 101) == "0-7"
    line = next(line for line in out.splitlines() if line.startswith("irq/100/affinity"))
    assert "drifted-kept" in line and "wrote 4-5" in line and "found 0-3" in line and "->" not in line
    assert "--force" in err
    assert set(entries(drifted)) == {"irq/100/affinity"}  # kept for a later restore --force
    code, out, _ = invoke(root, drifted, "restore", "--force")
    assert code == 0 and "restored" in out
    assert affinity(root, 100) == "0-7" and entries(drifted) == {}


def test_restore_dry_run_and_json_show_the_same_decision(root, drifted):
    code, out, _ = invoke(root, drifted, "restore", "--dry-run")
    assert code == 5 and "irq/100/affinity: drifted-kept" in out and "irq/101/affinity: would change" in out
    code, out, _ = invoke(root, drifted, "restore", "--dry-run", "--json")
    assert code == 5
    document = json.loads(out)
    results = {r["knob"]: r for r in document["results"]}
    kept = results["irq/100/affinity"]
    assert (kept["outcome"], kept["written"], kept["before"], kept["target"]) == ("drifted-kept", "4-5", "0-3", "0-7")
    assert document["dry_run"] is True
    code, out, _ = invoke(root, drifted, "restore", "--dry-run", "--force")
    assert code == 0 and "irq/100/affinity: would change" in out
    assert affinity(root, 100) == "0-3" and affinity(root, 101) == "4"  # dry runs wrote nothing
    code, out, _ = invoke(root, drifted, "restore", "--json")
    assert code == 5 and json.loads(out)["dry_run"] is False


def test_the_agents_restore_leaves_drift_alone_by_default(root, drifted):
    """engine.restore as the agent's restore_on_exit calls it: no force, so an operator's change stands."""
    with Journal.open(str(drifted), "boot-1") as journal:
        outcomes = {r.knob: r.outcome for r in engine.restore(Host(str(root)), journal, str(drifted))}
    assert outcomes == {"irq/100/affinity": engine.DRIFTED_KEPT, "irq/101/affinity": engine.RESTORED}
    assert affinity(root, 100) == "0-3" and set(entries(drifted)) == {"irq/100/affinity"}


def test_restore_only_if_config_leaves_drift_alone(root, drifted, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("restore_on_exit = true\n")
    code, out, _ = invoke(root, drifted, "restore", "--only-if-config", str(config))
    assert code == 5 and "drifted-kept" in out and affinity(root, 100) == "0-3"


def test_a_knob_put_back_by_someone_else_is_restored_not_kept(root, drifted):
    (root / "proc" / "irq" / "100" / "smp_affinity_list").write_text("0-7\n")  # the original again
    code, out, _ = invoke(root, drifted, "restore")
    assert code == 0 and "already original" in out and entries(drifted) == {}


def test_restore_help_documents_force_and_drift():
    result = CliRunner().invoke(main, ["restore", "--help"])
    assert "--force" in result.output and "drifted" in result.output and "5  some knob drifted" in result.output


def test_a_change_interrupted_before_its_read_back_is_restored_not_kept(root, tmp_path):
    """SIGKILL between journaling and reading back: the value may be irqtune's own half-done write, not drift."""
    state = tmp_path / "state"
    with Journal.open(str(state), "boot-1") as journal:
        journal.record_intent("irq/100/affinity", "0-7", "4")
    (root / "proc" / "irq" / "100" / "smp_affinity_list").write_text("")  # a fake tree's truncated write
    code, out, _ = invoke(root, state, "restore")
    assert code == 0, out
    assert affinity(root, 100) == "0-7" and entries(state) == {}
