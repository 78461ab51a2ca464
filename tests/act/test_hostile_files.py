"""Issue 16.4 and 16.6: the state directory and every file a command reads are opened so that a symlink cannot
redirect them and a FIFO cannot hang them (only regular files are read, each kind up to a size cap)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import fakehost
import pytest
from conftest import cli

from irqtune import fileio
from irqtune.export.auth import AuthFileError, BasicAuth

SETTLE = 20.0  # seconds: a command that has not returned by then is hanging on the FIFO


@pytest.fixture
def root(tmp_path):
    return fakehost.build(tmp_path / "host")


def within(call, what: str):
    """`call()` in a thread: what it returned or raised, or a failure when it is still blocked after SETTLE s."""
    done: dict = {}

    def run() -> None:
        try:
            done["result"] = call()
        except Exception as err:  # handed to the test, which expects some
            done["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(SETTLE)
    assert done, f"{what} hangs (a FIFO opened for reading blocks)"
    if "error" in done:
        raise done["error"]
    return done["result"]


def finishes(*args: str, **kwargs):
    """`irqtune ARGS` in-process, failing the test instead of hanging with it."""
    return within(lambda: cli(*args, **kwargs), f"irqtune {' '.join(args)}")


# -- 16.4: a state directory that is a symlink ------------------------------------------------------------------


@pytest.mark.parametrize("command", [("set", "irq/100/affinity", "4-5"), ("run", "--mode", "tune", "--passes", "1")])
def test_a_state_directory_that_is_a_symlink_is_refused(root, tmp_path, command):
    target = tmp_path / "elsewhere"
    target.mkdir()
    state = tmp_path / "state"
    os.symlink(target, state)
    code, _, err = cli(*command, root=root, state=state)
    assert code == 1 and "is a symlink" in err and "Traceback" not in err, err
    assert os.listdir(target) == [], "no journal, lock or state file at the link's target"
    assert (root / "proc" / "irq" / "100" / "smp_affinity_list").read_text() != "4-5\n", "nothing written"


def test_a_journal_that_is_a_symlink_is_refused(root, tmp_path):
    state, target = tmp_path / "state", tmp_path / "target.json"
    state.mkdir()
    target.write_text(json.dumps({"schema": 1, "entries": {}}))
    os.symlink(target, state / "journal.json")
    code, _, err = cli("set", "irq/100/affinity", "4-5", root=root, state=state)
    assert code == 1 and "journal.json: unreadable journal" in err, err
    assert json.loads(target.read_text()) == {"schema": 1, "entries": {}}


# -- 16.6: FIFOs instead of files, and size caps ----------------------------------------------------------------


def test_a_fifo_as_the_journal_is_refused_not_waited_on(root, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / "journal.json")
    code, _, err = finishes("set", "irq/100/affinity", "4-5", root=root, state=state)
    assert code == 1 and "not a regular file (a FIFO)" in err, err


def test_a_fifo_as_managed_irqs_does_not_hang_read_only_status(root, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / "managed-irqs.json")
    code, out, err = finishes("status", "--no-probe", "-i", "0.01", root=root, state=state)
    assert code in (0, 3) and "BUSIEST IRQS" in out, err


@pytest.mark.parametrize(
    ("kind", "command"),
    [
        ("config", ("run", "--config", "{fifo}", "--passes", "1")),
        ("scenario", ("simulate", "{fifo}")),
        ("plan", ("apply", "--plan", "{fifo}")),
        ("basic-auth", ("export", "--once", "--basic-auth-file", "{fifo}")),
    ],
)
def test_a_fifo_given_as_a_file_is_refused_not_waited_on(root, tmp_path, kind, command):
    fifo = tmp_path / f"{kind}.fifo"
    os.mkfifo(fifo)
    args = [a.format(fifo=fifo) for a in command]
    code, _, err = finishes(*args, root=root, state=tmp_path / "state")
    assert code in (1, 2) and "not a regular file (a FIFO)" in err and "Traceback" not in err, err


def test_basic_auth_file_fifo_is_an_auth_file_error(tmp_path):
    os.mkfifo(tmp_path / "users")
    with pytest.raises(AuthFileError, match="not a regular file"):
        within(lambda: BasicAuth.from_file(str(tmp_path / "users")), "BasicAuth.from_file")


def test_a_config_over_its_cap_is_refused_with_the_cap(root, tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text('mode = "observe"\n' + "# padding\n" * 200)
    monkeypatch.setitem(fileio.LIMITS, "config", 1000)
    code, _, err = cli("run", "--config", str(config), "--passes", "1", root=root, state=tmp_path / "state")
    assert code == 1 and "larger than 1000 bytes, the limit" in err, err


def test_the_caps_are_documented():
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").split())
    for kind, limit in fileio.LIMITS.items():
        assert f"{kind} {limit // fileio.MIB} MiB" in readme, f"README does not give the {kind} cap"
