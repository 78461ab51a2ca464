"""The config's [pin]: knobs written once through the journal, then only watched.

A pin is the operator's word: the agent applies it like any change (read the original, journal, write, read back,
so `irqtune restore` puts the original back), never moves it itself (`Pinner.why`), and reports when something
else changed it since: drift, written again only with `repin = true`. Globs expand each pass, so a NIC that
appears later is pinned in its first pass.
"""

from __future__ import annotations

from ..act.engine import APPLIED, REFUSED, UNCHANGED, Result, change, prepare, read_knob
from ..act.journal import Journal
from ..act.knobs import KnobError, Unsupported, make_knob
from ..config import Config
from ..host import Host
from ..parse.interrupts import InterruptTable
from ..plan import Change, Plan, parse_knob_id

PINNED = "pinned"  # the outcome of a pin written (or found holding its value) this pass
DRIFTED = "drifted"  # a pinned knob that something else changed: reported (repin = false)
REPINNED = "repinned"  # ... and written again (repin = true)
WOULD_PIN = "would pin"  # observe mode: what tune mode would write


class Pinner:
    """What the pins stand for on this host each pass, and what became of them."""

    def __init__(self, host: Host, state_dir: str) -> None:
        self.host, self.state_dir = host, state_dir
        self.config, self.journal = Config(), None  # the agent's, each pass (a reload may replace them)
        self.knobs: dict[str, str] = {}  # knob id -> the pinned value, this pass's expansion
        self.held: dict[str, str] = {}  # knob -> the value applied (or found): from now on watched for drift
        self.tried: dict[str, str] = {}  # knob -> the value attempted once (an unsupported one is not retried)

    def why(self, knob: str) -> str | None:
        """Why the agent must not change this knob (None: not pinned)."""
        value = self.knobs.get(knob)
        return None if value is None else f"pinned at {value} by the config's [pin]"

    def hold(self, plan: Plan, strict: bool) -> Plan:
        """`plan` (the one-shot plan and apply) with no change that moves a pinned knob off its value: a computed
        plan leaves it, with a note, as a pass of the agent holds it; in a saved or asked one it is a violation (the
        operator's word against the config's: `set` still writes it)."""
        kept, notes, violations = [], list(plan.notes), list(plan.violations)
        for c in plan.changes:
            knob = _canonical(c.knob)
            why = self.why(knob)
            if why is None or self.knobs[knob] == c.target:
                kept.append(c)
            elif strict:
                kept.append(c)
                violations.append(f"{knob}: {why}")
            else:
                notes.append(f"{knob}: {why}; left alone")
        return Plan(kept, notes, violations)

    def expand(self, devices: list[str]) -> dict[str, str]:
        """Knob id -> value for the pins on these network devices (the first pin that names a knob wins)."""
        knobs: dict[str, str] = {}
        for pin in self.config.pins:
            for knob in pin.knobs(devices):
                knobs.setdefault(knob, pin.value)
        self.knobs = knobs
        return knobs

    def run(self, config: Config, journal: Journal | None, devices: list[str],
            interrupts: InterruptTable | None) -> list[Change]:  # fmt: skip
        """Apply new pins (tune mode) or say what would be pinned (observe), and report drift. A pin whose value a
        reload changed is a new pin."""
        self.config, self.journal = config, journal
        tuning, out, knobs = config.mode == "tune", [], self.expand(devices)
        # a device that left: its pins start over when it is back (a new device's defaults are no drift)
        self.held = {k: v for k, v in self.held.items() if k in knobs}
        self.tried = {k: v for k, v in self.tried.items() if k in knobs}
        for knob, value in knobs.items():
            if self.held.get(knob) == value:
                drift = self._drift(knob, value, tuning, interrupts)
                out += [drift] if drift else []
            elif self.tried.get(knob) != value:
                first = self._first(knob, value, tuning, interrupts)
                out += [first] if first else []
        return out

    def _first(self, knob: str, value: str, tuning: bool, interrupts: InterruptTable | None) -> Change | None:
        """The pin's first pass: written in tune mode; in observe mode a recommendation each pass while the knob
        holds another value (None while it holds the pin's)."""
        if not tuning:
            found = read_knob(self.host, knob)
            return None if found == value else _change(knob, found, value, WOULD_PIN, "" if found is not None
                                                       else "cannot read it here")  # fmt: skip
        self.tried[knob] = value
        result = self._write(knob, value, interrupts)
        if result.outcome in (APPLIED, UNCHANGED):
            self.held[knob] = value
            return _change(knob, result.before, value, PINNED, result.message)
        return _change(knob, result.before, value, result.outcome, result.message)

    def _drift(self, knob: str, value: str, tuning: bool, interrupts: InterruptTable | None) -> Change | None:
        """None while the knob holds its pin; else drift, written again with repin = true."""
        found = read_knob(self.host, knob)
        if found is None or found == value:
            return None
        note = f"something else set {found} after irqtune pinned {value}"
        if not (tuning and self.config.repin):
            return _change(knob, found, value, DRIFTED, f"{note}; left alone (repin = false)")
        result = self._write(knob, value, interrupts)
        outcome = REPINNED if result.outcome == APPLIED else result.outcome
        return _change(knob, found, value, outcome, f"{note}; {result.message or 'written again'}")

    def _write(self, knob_id: str, value: str, interrupts: InterruptTable | None) -> Result:
        """The journaled write path every change takes (act/engine.py)."""
        try:
            knob = make_knob(self.host, knob_id, allow_host_wide=self.config.allow_host_wide)
            prepare(knob, self.host, self.state_dir, interrupts)
            return change(knob, value, self.journal, self.state_dir)
        except (KnobError, Unsupported) as err:
            return Result(knob_id, REFUSED, target=value, message=str(err))


def _canonical(knob: str) -> str:
    """The id as the pins name it (an alias or a saved plan's spelling); as written where it is no knob id."""
    try:
        return parse_knob_id(knob).canonical
    except KnobError:
        return knob


def _change(knob: str, found: str | None, value: str, outcome: str, note: str) -> Change:
    device = knob.split("/")[1] if knob.startswith(("net/", "napi/")) else None
    return Change(knob, found if found is not None else "?", value, "the config's [pin]", device,
                  outcome=outcome, note=note)  # fmt: skip
