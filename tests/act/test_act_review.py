"""Regressions from the review of the act layer: each case once left the host half-changed or crashed."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import fakehost
import pytest
from conftest import cli

from irqtune.act.journal import Journal, JournalError


@pytest.fixture
def root(tmp_path):
    return fakehost.build(tmp_path / "host")


def affinity(root: Path, irq: int) -> str:
    return (root / "proc" / "irq" / str(irq) / "smp_affinity_list").read_text().strip()


def test_spellings_of_one_knob_share_one_journal_entry(root, tmp_path):
    state = tmp_path / "s"
    assert cli("set", "irq/0100/affinity", "4", root=root, state=state).exit_code == 0
    assert cli("set", "irq/100/affinity", "5", root=root, state=state).exit_code == 0
    entries = json.loads((state / "journal.json").read_text())["entries"]
    assert list(entries) == ["irq/100/affinity"] and entries["irq/100/affinity"]["original"] == "0-7"
    assert cli("set", "/irq/100/affinity/", "4", root=root, state=state).exit_code == 1  # not an id irqtune knows
    assert cli("restore", root=root, state=state).exit_code == 0 and affinity(root, 100) == "0-7"


def test_saved_plan_cannot_touch_excluded_devices_or_banned_cpus(root, tmp_path):
    plan = tmp_path / "p.json"
    plan.write_text(json.dumps({"schema": 1, "changes": [
        {"knob": "irq/100/affinity", "target": "5", "device": "someone-else"},
        {"knob": "net/ens1f0/rx-0/rps-cpus", "target": "4"},
    ]}))  # fmt: skip
    code, _, err = cli("apply", "--yes", "--plan", str(plan), "--exclude", "ens1f0", root=root, state=tmp_path / "s")
    assert code == 1 and "device ens1f0 is excluded" in err and affinity(root, 100) == "0-7"
    code, _, err = cli("apply", "--yes", "--plan", str(plan), "--ban-cpus", "4", root=root, state=tmp_path / "s")
    assert code == 1 and "net/ens1f0/rx-0/rps-cpus: CPU 4 is banned" in err


def test_unreadable_boot_id_refuses_instead_of_dropping_entries(root, tmp_path):
    state = tmp_path / "s"
    cli("set", "irq/100/affinity", "4", root=root, state=state)
    boot = root / "proc" / "sys" / "kernel" / "random" / "boot_id"
    boot.rename(boot.with_name("hidden"))
    code, _, err = cli("restore", root=root, state=state)
    assert code == 1 and "boot_id" in err
    assert "irq/100/affinity" in json.loads((state / "journal.json").read_text())["entries"]
    boot.with_name("hidden").rename(boot)
    assert cli("restore", root=root, state=state).exit_code == 0 and affinity(root, 100) == "0-7"


def test_a_bad_knob_late_in_a_plan_stops_before_the_first_write(root, tmp_path):
    plan = tmp_path / "p.json"
    plan.write_text(json.dumps({"schema": 1, "changes": [
        {"knob": "irq/100/affinity", "target": "4"}, {"knob": "irq/101/affinity", "target": "99"},
    ]}))  # fmt: skip
    code, _, err = cli("apply", "--yes", "--plan", str(plan), root=root, state=tmp_path / "s")
    assert code == 1 and "nothing written" in err and affinity(root, 100) == "0-7"


def test_odd_files_give_results_not_tracebacks(root, tmp_path):
    state = tmp_path / "s"
    (root / "sys" / "class" / "net" / "bonding_masters").write_text("bond0\n")
    code, out, err = cli("set", "net/bonding_masters/threaded", "1", root=root, state=state)
    assert code == 3 and "unsupported" in out and "Traceback" not in err
    cli("set", "irq/100/affinity", "4", root=root, state=state)
    cli("set", "irq/101/affinity", "5", root=root, state=state)
    target = root / "proc" / "irq" / "101" / "smp_affinity_list"
    target.unlink()
    target.mkdir()
    code, out, _ = cli("restore", root=root, state=state)
    assert code == 3 and "irq/101/affinity: unsupported" in out and affinity(root, 100) == "0-7"


def test_refused_write_keeps_verify_honest(root, tmp_path, monkeypatch):
    import errno

    from irqtune.act import knobs

    state = tmp_path / "s"
    cli("set", "irq/100/affinity", "4", root=root, state=state)

    def no_vectors(self, value):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(knobs.IrqAffinityKnob, "write", no_vectors)
    code, out, _ = cli("set", "irq/100/affinity", "5", root=root, state=state)
    assert code == 3 and "no free interrupt vectors" in out
    monkeypatch.undo()
    assert cli("verify", root=root, state=state).exit_code == 0  # still holds 4, which irqtune did write


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda s: (s.parent / "file").write_text("x"), "unusable"),
        (lambda s: (s.mkdir(), (s / "journal.json").write_text(
            '{"schema": 1, "entries": {"irq/1/affinity": {"original": "0", "written": "1", "first_changed": "x"}}}'
        )), "damaged"),
    ],
)  # fmt: skip
def test_unusable_state_dir_or_damaged_entry_is_one_line(root, tmp_path, setup, message):
    state = tmp_path / "state"
    setup(state)
    target = tmp_path / "file" / "s" if message == "unusable" else state
    code, _, err = cli("set", "irq/100/affinity", "4", root=root, state=target)
    assert code == 1 and message in err and "Traceback" not in err and affinity(root, 100) == "0-7"


@pytest.mark.parametrize(
    "body",
    ['{"schema": 1, "changes": [{"knob": "irq/100/affinity", "target": "two"}]}',
     '{"schema": 1, "changes": [], "notes": 5}', '{"schema": 1, "changes": [{"knob": 5, "target": "1"}]}'],
)  # fmt: skip
def test_malformed_saved_plans_are_one_line(root, tmp_path, body):
    plan = tmp_path / "p.json"
    plan.write_text(body)
    code, _, err = cli("apply", "--plan", str(plan), root=root, state=tmp_path / "s")
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) >= 1


def test_all_cpus_banned_or_isolated_is_a_note(root, tmp_path):
    code, out, _ = cli("plan", "--ban-cpus", "0-5", root=root, state=tmp_path / "s")
    assert code == 0 and "no CPU left" in out


def test_napi_id_must_be_ascii_digits(root, tmp_path):
    code, _, err = cli("set", "napi/eth0/\u00b2/threaded", "1", root=root, state=tmp_path / "s")
    assert code == 1 and "unknown knob" in err


def test_restore_refuses_a_tampered_original(root, tmp_path):
    state = tmp_path / "s"
    cli("set", "irq/100/affinity", "4", root=root, state=state)
    journal = json.loads((state / "journal.json").read_text())
    journal["entries"]["irq/100/affinity"]["original"] = "0-7; x"
    (state / "journal.json").write_text(json.dumps(journal))
    code, out, _ = cli("restore", root=root, state=state)
    assert code == 3 and "journal entry unusable" in out and affinity(root, 100) == "4"


def test_irq_given_to_another_device_is_not_restored(root, tmp_path):
    state = tmp_path / "s"
    cli("set", "irq/100/affinity", "4", root=root, state=state)
    path = root / "proc" / "interrupts"
    path.write_text(path.read_text().replace("ens1f0-TxRx-0", "nvme7q1"))
    code, out, _ = cli("restore", root=root, state=state)
    assert code == 0 and "stale" in out and "nvme7q1" in out and affinity(root, 100) == "4"


def test_writes_never_create_files(root, tmp_path):
    from irqtune.host import Host

    host = Host(str(root))
    with pytest.raises(FileNotFoundError):
        host.write(os.path.join(host.proc("irq", "100"), "new_file"), "1")


JOURNAL = {
    "schema": 1,
    "entries": {
        "irq/5/affinity": {"boot_id": "b", "context": {}, "first_changed": 1.5, "last_changed": 2.0,
                           "original": "0-3", "pending": False, "written": "2"},
    },
}  # fmt: skip
# json.dump(indent=1, sort_keys=True): schema line 1 "{", 2 "entries", 3 the knob, 4 boot_id, 5 context,
# 6 first_changed, 7 last_changed, 8 original


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ('"first_changed": 1.5', '"first_changed": 1' + "0" * 400, ":6: ", "is damaged: expected a time in seconds"),
        ('"last_changed": 2.0', '"last_changed": 1' + "0" * 5000, ":7: ", "a number of thousands of digits"),
        ('"context": {}', '"context": ' + "[" * 5000 + "]" * 5000, ":5: ", "nested too deeply"),
        ('"first_changed": 1.5', '"first_changed": NaN', ":6: ", "NaN is not a finite number"),
        ('"last_changed": 2.0', '"last_changed": 1e400', ":7: ", "1e400 is not a finite number"),
        ('"boot_id": "b"', '"boot_id": ' + "[" * 500 + "]" * 500, ":4: ", "is damaged: expected a string"),
        ('"original": "0-3"', '"original": 5', ":8: ", "is damaged: expected a string, got 5"),
        ('"schema": 1', "schema: 1", ":", "unreadable journal (Expecting property name"),
    ],
)
def test_a_damaged_journal_is_one_located_line(tmp_path, old, new, where, message):
    """Issue 16.8: OverflowError (400 digits), RecursionError (nested 5,000 deep), a line-less ValueError
    (5,000 digits) and NaN taken as a time; now each is a JournalError `FILE:LINE: what` at the right line."""
    text = json.dumps(JOURNAL, indent=1, sort_keys=True)
    assert old in text
    (tmp_path / "journal.json").write_text(text.replace(old, new, 1))
    with pytest.raises(JournalError) as caught:
        Journal.open(str(tmp_path), "b")
    assert str(caught.value).startswith(f"{tmp_path / 'journal.json'}{where}") and message in str(caught.value)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"schema": 1,\n"changes": ' + "[" * 5000 + "]" * 5000 + "}", "p.json:2: not a readable JSON plan (arrays"),
        ('{"schema": 1, "changes": [],\n"notes": [' + "[" * 900 + "]" * 900 + "]}", None),
        ('{"schema": 1, "changes": [],\n"notes": [1' + "0" * 5000 + "]}", "p.json:2: not a readable JSON plan (a num"),
    ],
)
def test_saved_plans_nested_deep_or_of_huge_numbers_are_located(root, tmp_path, body, message):
    """Issue 16.8: RecursionError and a line-less ValueError from a saved plan; a note nested 900 deep (below
    the parser's limit) is quoted briefly, not str()'d at full depth."""
    plan = tmp_path / "p.json"
    plan.write_text(body)
    code, out, err = cli("apply", "--plan", str(plan), root=root, state=tmp_path / "s")
    if message is None:
        assert code == 0 and "note: [[[[...]]]]" in out
    else:
        assert code == 1 and f"{plan}".replace("p.json", "") + message in err, err


def test_a_learned_managed_irq_of_5000_digits_is_ignored(root, tmp_path):
    """Issue 16.8: int() of a 5,000-digit IRQ number in managed-irqs.json raised ValueError in every reader."""
    state = tmp_path / "s"
    state.mkdir()
    boot = (root / "proc" / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    (state / "managed-irqs.json").write_text(json.dumps({"boot_id": boot, "irqs": {"1" * 5000: {"actions": []}}}))
    code, _, err = cli("plan", root=root, state=state)
    assert code == 0 and "Traceback" not in err


def test_journal_lines_end_at_newlines_only(tmp_path):
    """Issue 16.8: read with universal newlines, a \\r (JSON whitespace) became a line of its own and every
    FILE:LINE after it was one line off."""
    text = json.dumps(JOURNAL, indent=1, sort_keys=True).replace("{\n", "{\r", 1)
    (tmp_path / "journal.json").write_text(text.replace('"first_changed": 1.5', '"first_changed": "x"'))
    with pytest.raises(JournalError, match=re.escape(f"{tmp_path / 'journal.json'}:5: entry 'irq/5/affinity' is")):
        Journal.open(str(tmp_path), "b")
