"""The change journal: the original value of every knob irqtune touched, kept until restored.

Versioned JSON in the state directory (`journal.json`), rewritten atomically before
every write to the host, and locked (`journal.lock`, flock) so two irqtune processes
cannot interleave. After a crash at any point the journal holds the original of every
knob that may have been written, so `irqtune restore` can put the host back. Entries
belong to a boot (`boot_id`): /proc and /sys settings do not survive a reboot, so
entries of an earlier boot are stale, reported and dropped, never written back.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, field

from .. import jsonfile
from ..parse.common import brief
from ..statedir import StateDirError, open_lock, open_state_dir, read_state_file, write_json_atomically

SCHEMA = 1
JOURNAL_FILE = "journal.json"
LOCK_FILE = "journal.lock"


class JournalError(RuntimeError):
    """The journal cannot be read or locked: nothing is written to the host."""


@dataclass
class Entry:
    knob: str
    original: str  # the value before irqtune's first write, canonical form
    written: str  # the last value irqtune wrote
    first_changed: float = 0.0
    last_changed: float = 0.0
    boot_id: str = ""
    context: dict = field(default_factory=dict)  # e.g. an IRQ's action names: restore checks it is the same IRQ
    pending: bool = False  # `written` is an intent not yet read back (irqtune may have died mid-change): no drift

    def to_json(self) -> dict:
        return {
            "original": self.original, "written": self.written, "first_changed": self.first_changed,
            "last_changed": self.last_changed, "boot_id": self.boot_id, "context": self.context,
            "pending": self.pending,
        }  # fmt: skip


@dataclass
class Journal:
    """Open with `Journal.open(state_dir, boot_id)` as a context manager: holds the lock."""

    path: str
    boot_id: str
    entries: dict[str, Entry] = field(default_factory=dict)
    _lock_fd: int | None = None
    _dir_fd: int | None = None  # the state directory, opened once without following a link

    @classmethod
    def open(cls, state_dir: str, boot_id: str, wait: bool = True) -> Journal:
        if not boot_id:  # without it, entries of this boot would look stale and be dropped
            raise JournalError("cannot read /proc/sys/kernel/random/boot_id: refusing to change or restore anything")
        journal = cls(os.path.join(state_dir, JOURNAL_FILE), boot_id)
        lock = os.path.join(state_dir, LOCK_FILE)
        try:
            fd = open_lock(state_dir, LOCK_FILE)
            journal._dir_fd = open_state_dir(state_dir)
        except StateDirError as err:
            raise JournalError(err.strerror) from None
        except OSError as err:
            raise JournalError(f"state directory {state_dir} unusable: {err.strerror} (root needed?)") from None
        journal._lock_fd = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            journal.close()
            raise JournalError(f"another irqtune holds {lock}") from None
        try:
            journal._load()
        except JournalError:
            journal.close()
            raise
        return journal

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _load(self) -> None:
        try:
            text = read_state_file(self._dir_fd, JOURNAL_FILE, "journal").decode("utf-8")
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            why = err.strerror if isinstance(err, OSError) else err
            raise JournalError(f"{self.path}: unreadable journal ({why}); move it away to start afresh") from err
        try:
            data = jsonfile.loads(self.path, text)
        except jsonfile.JsonError as err:
            raise JournalError(f"{err.where}: unreadable journal ({err.what}); move it away to start afresh") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("entries"), dict):
            raise JournalError(f"{self.path}:1: expected a schema {SCHEMA} journal")
        for knob, e in data["entries"].items():
            damage = _damage(e)
            if damage:
                key, why = damage
                line = jsonfile.key_line(text, "entries", knob, *([key] if key else []))
                raise JournalError(f"{self.path}:{line}: entry {brief(knob)} is damaged: {why}; fix or move it")
            context = e.get("context", {})
            self.entries[knob] = Entry(
                knob, e["original"], e["written"], float(e.get("first_changed", 0)), float(e.get("last_changed", 0)),
                e.get("boot_id", ""), context if isinstance(context, dict) else {}, e.get("pending") is True,
            )  # fmt: skip

    def save(self) -> None:
        data = {"schema": SCHEMA, "entries": {k: e.to_json() for k, e in sorted(self.entries.items())}}
        try:
            write_json_atomically(self._dir_fd, JOURNAL_FILE, data)
        except OSError as err:
            raise JournalError(f"cannot write {self.path}: {err.strerror}; nothing written to the host") from None

    def record_intent(self, knob: str, original: str, target: str, context: dict | None = None) -> bool:
        """Durably note a knob's original before writing `target`. Returns True if the entry is new."""
        now = time.time()
        entry = self.entries.get(knob)
        new = entry is None or entry.boot_id != self.boot_id
        if new:
            self.entries[knob] = Entry(knob, original, target, now, now, self.boot_id, dict(context or {}), True)
        else:
            entry.written, entry.last_changed, entry.pending = target, now, True
        self.save()
        return new

    def note_written(self, knob: str, value: str) -> None:
        """After a write, refused or not: what the knob really holds now (what verify expects)."""
        self.confirm({knob: value})

    def confirm(self, values: dict[str, str]) -> None:
        """Knob -> value read back after irqtune's write: from now on a different value is drift."""
        changed = False
        for knob, value in values.items():
            entry = self.entries.get(knob)
            if entry is not None and (entry.written != value or entry.pending):
                entry.written, entry.pending, changed = value, False, True
        if changed:
            self.save()

    def newest_first(self) -> list[Entry]:
        """Undo order: the last knob changed first (channels before the IRQs and NAPIs they created)."""
        return sorted(self.entries.values(), key=lambda e: e.first_changed, reverse=True)

    def forget(self, knob: str) -> None:
        self.forget_all([knob])

    def forget_all(self, knobs: list[str]) -> None:
        """Drop these entries with one save: restore's cost stays linear in the journal's size."""
        removed = [knob for knob in knobs if self.entries.pop(knob, None) is not None]
        if removed:
            self.save()

    def stale(self) -> list[Entry]:
        return [e for e in self.entries.values() if e.boot_id != self.boot_id]


def _damage(entry: object) -> tuple[str | None, str] | None:
    """(key, why) when a journal entry cannot be used (key None: the entry itself), else None."""
    if not isinstance(entry, dict):
        return None, "expected an object"
    for key in ("original", "written"):
        if not isinstance(entry.get(key), str):
            return key, f"expected a string, got {brief(entry.get(key))}"
    for key in ("first_changed", "last_changed"):
        if not jsonfile.is_number(entry.get(key, 0)):
            return key, f"expected a time in seconds, got {brief(entry.get(key))}"
    if not isinstance(entry.get("boot_id", ""), str):
        return "boot_id", f"expected a string, got {brief(entry.get('boot_id'))}"
    return None
