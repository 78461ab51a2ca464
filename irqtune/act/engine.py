"""The one path every change takes: read, validate, journal, write, read back, classify.

Like TuneD's get/save/set/verify, minus its pickles and shell-outs: the original is in
the journal (fsynced) before the first byte reaches the host, a refused write leaves
no journal entry behind, and `restore` and `verify` walk the same journal.
"""

from __future__ import annotations

import errno
import logging
import time
from dataclasses import asdict, dataclass

from ..host import Host
from ..parse.interrupts import InterruptTable, parse_interrupts
from ..statedir import boot_id, load_learned_managed, remember_managed
from .journal import Journal
from .knobs import IrqAffinityKnob, Knob, KnobError, NapiKnob, Unsupported, make_knob, netdev_client, parse_knob_id

log = logging.getLogger("irqtune.act")

# outcomes
APPLIED, UNCHANGED, WOULD_CHANGE = "applied", "unchanged", "would change"
MANAGED, REFUSED, TRANSIENT, UNSUPPORTED, FAILED = "managed", "refused", "transient", "unsupported", "failed"
RESTORED, MATCHES, DRIFTED, STALE = "restored", "matches", "drifted", "stale"
DRIFTED_KEPT = "drifted-kept"  # restore left it alone: something else changed it after irqtune (entry kept)
OK_OUTCOMES = frozenset({APPLIED, UNCHANGED, WOULD_CHANGE, RESTORED, MATCHES})


@dataclass(frozen=True)
class Result:
    knob: str
    outcome: str
    before: str | None = None
    target: str | None = None
    after: str | None = None
    message: str = ""
    written: str | None = None  # drifted-kept: the value irqtune wrote (before: the value found now)

    def to_json(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.outcome == DRIFTED_KEPT:  # no arrow: nothing was or will be written
            return f"{self.knob}: {self.outcome}: {self.message}"
        before = "-" if self.before is None else self.before
        change = f"{before} -> {self.target}" if self.target is not None else before
        tail = f" ({self.message})" if self.message else ""
        return f"{self.knob}: {self.outcome}: {change}{tail}"


def _irq_actions(host: Host, irq: int, interrupts: InterruptTable | None = None) -> tuple[str, ...]:
    if interrupts is None:
        raw = host.text("proc", "interrupts")
        interrupts = parse_interrupts(raw) if raw else None
    row = interrupts.rows.get(str(irq)) if interrupts else None
    return row.actions if row else ()


def prepare(knob: Knob, host: Host, state_dir: str, interrupts: InterruptTable | None = None) -> None:
    """What is known before writing: is this IRQ kernel-managed (debugfs, or learned earlier)? `interrupts`: the
    caller's reading of /proc/interrupts this pass (read again when not given)."""
    if isinstance(knob, IrqAffinityKnob):
        irq = int(knob.parts[1])
        actions = _irq_actions(host, irq, interrupts)
        knob.meta["irq"], knob.meta["actions"] = irq, actions
        from ..measure.inventory import managed_state  # affinity writes only: `get` starts without it

        knob.managed, _ = managed_state(host, irq, load_learned_managed(state_dir, boot_id(host)), actions)


def change(knob: Knob, value: str, journal: Journal | None, state_dir: str, dry_run: bool = False) -> Result:
    """Set one knob. `journal` None only with dry_run. Never raises for host-side refusals."""
    target = knob.normalize(value)  # KnobError goes to the caller: bad input, one line
    try:
        before = knob.read()
    except Unsupported as err:
        return Result(knob.id, UNSUPPORTED, target=target, message=str(err))
    if target == before:
        return Result(knob.id, UNCHANGED, before, target, before)
    if knob.managed == "yes":
        return Result(knob.id, MANAGED, before, target, before, "kernel-managed IRQ: never written")
    if dry_run or journal is None:
        return Result(knob.id, WOULD_CHANGE, before, target, before)
    context = {"actions": list(knob.meta.get("actions", ()))} if isinstance(knob, IrqAffinityKnob) else {}
    dependents = _journal_napi_dependents(knob, journal, target)
    new_entry = journal.record_intent(knob.id, before, target, context)
    try:
        _write_with_retries(knob, target)
    except OSError as err:
        outcome, message = knob.classify(err)
        after = read_quietly(knob)
        if after == before and new_entry:
            journal.forget(knob.id)  # nothing changed: nothing to restore
        elif after is not None:
            journal.note_written(knob.id, after)
        if outcome == MANAGED and isinstance(knob, IrqAffinityKnob):
            _learn_managed(knob, err, state_dir)
        _confirm_dependents(knob.host, journal, dependents)
        log.warning("%s: %s", knob.id, message)
        return Result(knob.id, outcome, before, target, after, message)
    after = read_quietly(knob)
    if after is not None:  # confirmed: a different value from now on is drift
        journal.confirm({knob.id: after})
    _confirm_dependents(knob.host, journal, dependents, target if after == target else None)
    if after != target:
        return Result(knob.id, FAILED, before, target, after, "read back a different value")
    log.info("%s: %s -> %s", knob.id, before, target)
    return Result(knob.id, APPLIED, before, target, after, _effective_note(knob))


# device-wide sysfs file -> the per-NAPI setting it overwrites on every NAPI of the device (Linux 6.13+)
DEVICE_WIDE_NAPI = {"gro-flush-timeout": "gro-flush-timeout", "napi-defer-hard-irqs": "defer-hard-irqs",
                    "threaded": "threaded"}  # fmt: skip


def _journal_napi_dependents(knob: Knob, journal: Journal, target: str) -> list[str]:
    """A device-wide NAPI write resets every NAPI's own value: journal those first, so restore
    (newest first: the device, then each NAPI) gives every NAPI back its own original. Returns their ids."""
    kid = parse_knob_id(knob.id)
    if kid.kind != "netdev" or kid.name not in DEVICE_WIDE_NAPI:
        return []
    ifindex = knob.host.text("sys", "class", "net", kid.device, "ifindex")
    try:
        with netdev_client(knob.host, knob.id) as client:
            napis = client.napis(int(ifindex or "-1"))
    except (ImportError, Unsupported, *NapiKnob.errors(), OSError, ValueError) as err:  # nothing per NAPI to lose
        log.debug("%s: per-NAPI values not journaled: %s", knob.id, err)
        return []
    setting = DEVICE_WIDE_NAPI[kid.name]
    field = setting.replace("-", "_")
    dependents = []
    for napi in napis:
        if field in napi and str(napi[field]) != target:
            dependents.append(f"napi/{kid.device}/{napi['id']}/{setting}")
            journal.record_intent(dependents[-1], str(napi[field]), target)
    return dependents


def _confirm_dependents(host: Host, journal: Journal, dependents: list[str], target: str | None = None) -> None:
    """What each NAPI holds after a device-wide write: `target` when the device read it back, else read per NAPI
    (a write refused or read back differently must not leave their entries pending, taken for a crash forever)."""
    if target is not None:
        journal.confirm(dict.fromkeys(dependents, target))
        return
    held = {dep: read_knob(host, dep) for dep in dependents}
    journal.confirm({dep: value for dep, value in held.items() if value is not None})


TRANSIENT_RETRIES = (0.05, 0.2, 0.5)  # seconds to wait before each retry of an EBUSY/EAGAIN write


def _write_with_retries(knob: Knob, value: str) -> None:
    for delay in (*TRANSIENT_RETRIES, None):
        try:
            knob.write(value)
            return
        except OSError as err:
            if delay is None or knob.classify(err)[0] != TRANSIENT:
                raise
            log.info("%s: %s; retrying in %.2f s", knob.id, err.strerror, delay)
            time.sleep(delay)


def read_quietly(knob: Knob) -> str | None:
    try:
        return knob.read()
    except (Unsupported, OSError):
        return None


def read_knob(host: Host, knob_id: str) -> str | None:
    """The value a knob id holds now, or None when it cannot be read (unknown id, gone, unsupported)."""
    try:
        return read_quietly(make_knob(host, knob_id))
    except KnobError:
        return None


def _effective_note(knob: Knob) -> str:
    """What the result says besides the values: the IRQ's effective CPUs, or how a knob was written (RSS: netlink
    or the ioctl)."""
    if not isinstance(knob, IrqAffinityKnob):
        return knob.meta.get("note", "")
    effective = knob.host.text("proc", "irq", knob.parts[1], "effective_affinity_list")
    return f"effective {effective}" if effective else ""


def _learn_managed(knob: IrqAffinityKnob, err: OSError, state_dir: str) -> None:
    irq, name = knob.meta["irq"], errno.errorcode[err.errno]
    remember_managed(state_dir, boot_id(knob.host), irq, list(knob.meta["actions"]), name)
    log.warning("IRQ %d is kernel-managed (write refused with %s); remembered in %s", irq, name, state_dir)


def restore(host: Host, journal: Journal, state_dir: str, dry_run: bool = False, force: bool = False) -> list[Result]:
    """Put every journaled knob back to its original, newest change first.

    Entries of an earlier boot are dropped (the settings did not survive the reboot); an IRQ
    whose action names changed now belongs to another device and is not written. A knob that
    drifted (something else changed it after irqtune, as `verify` reports) is left alone with
    its entry kept, unless `force`: an operator's later change must not be clobbered at 3 a.m.
    """
    done: list[str] = []  # entries to drop: saved once at the end, not once per entry (3,000 rewrites of 3,000)
    try:
        return _restore_all(host, journal, dry_run, force, done)
    finally:  # an entry a crash leaves in between restores again as "already original"
        if not dry_run:
            journal.forget_all(done)


def _restore_all(host: Host, journal: Journal, dry_run: bool, force: bool, done: list[str]) -> list[Result]:
    """restore's walk; the knobs whose entries can go are appended to `done`."""
    results = []
    for entry in journal.stale():
        results.append(Result(entry.knob, STALE, message=f"from boot {entry.boot_id[:8]}: not restored after reboot"))
        done.append(entry.knob)
    drifted = {} if force else _drifted(host, journal)  # read before any write: restoring one knob may move others
    interrupts = _interrupts(host)  # read once, not once per IRQ entry
    for entry in journal.newest_first():
        if entry.boot_id != journal.boot_id:
            continue
        result = _restore_one(host, entry, dry_run, drifted, interrupts)
        results.append(result)
        if result.outcome == RESTORED or result.outcome == STALE:
            done.append(entry.knob)
    return results


def _interrupts(host: Host) -> InterruptTable:
    """/proc/interrupts for the IRQ entries' action names; empty (no actions: nothing matches) when unreadable."""
    raw = host.text("proc", "interrupts")
    return parse_interrupts(raw) if raw else InterruptTable(cpus=[])


def _drifted(host: Host, journal: Journal) -> dict[str, str]:
    """Knob -> the value found now, for every knob of this boot that no longer holds what irqtune wrote.

    A pending entry (irqtune died between journaling and reading back) is not drift: irqtune's own
    change may be what is half done there, and restore exists to undo exactly that."""
    return {r.knob: r.after or "" for r in verify(host, journal)
            if r.outcome == DRIFTED and not journal.entries[r.knob].pending}  # fmt: skip


def _kept(entry, found: str, original: str) -> Result:
    message = (f"irqtune wrote {entry.written or 'none'}, found {found or 'none'} now (something else changed it): "
               f"left alone, entry kept; restore --force puts back {original or 'none'}")  # fmt: skip
    return Result(entry.knob, DRIFTED_KEPT, found, original, found, message, written=entry.written)


def _restore_one(host: Host, entry, dry_run: bool, drifted: dict[str, str], interrupts: InterruptTable) -> Result:
    try:
        knob = make_knob(host, entry.knob)
        # the original is what it was: isolated CPUs, an empty mask, the host-wide affinity set from a namespace
        knob.meta.update(allow_isolated=True, allow_empty=True, online=[], allow_host_wide=True)
        original = knob.normalize(entry.original)
    except KnobError as err:
        return Result(entry.knob, FAILED, message=f"journal entry unusable: {err}; entry kept")
    if isinstance(knob, IrqAffinityKnob) and "actions" in entry.context:
        now = list(_irq_actions(host, int(knob.parts[1]), interrupts))
        if now != entry.context["actions"]:
            return Result(
                entry.knob, STALE, message=f"IRQ now serves {now or 'nothing'}, not {entry.context['actions']}"
            )
    try:
        current = knob.read()
    except Unsupported as err:
        return Result(entry.knob, UNSUPPORTED, message=f"{err}; entry kept")
    if current == original:
        return Result(entry.knob, RESTORED, current, original, current, "already original")
    if entry.knob in drifted:
        return _kept(entry, drifted[entry.knob], original)
    if dry_run:
        return Result(entry.knob, WOULD_CHANGE, current, original, current)
    try:
        _write_with_retries(knob, original)
    except OSError as err:
        outcome, message = knob.classify(err)
        return Result(entry.knob, outcome, current, original, current, f"{message}; entry kept")
    after = read_quietly(knob)
    if after != original:
        return Result(entry.knob, FAILED, current, original, after, "read back differs; entry kept")
    return Result(entry.knob, RESTORED, current, original, after)


def verify(host: Host, journal: Journal) -> list[Result]:
    """Does every knob still hold what irqtune wrote? Drift means someone else changed it."""
    results = []
    for entry in journal.entries.values():
        if entry.boot_id != journal.boot_id:
            results.append(Result(entry.knob, STALE, message="from an earlier boot"))
            continue
        try:
            current = make_knob(host, entry.knob).read()
        except (KnobError, Unsupported) as err:
            results.append(Result(entry.knob, UNSUPPORTED, message=str(err)))
            continue
        outcome = MATCHES if current == entry.written else DRIFTED
        message = "" if outcome == MATCHES else f"irqtune wrote {entry.written}; something else changed it"
        if outcome == DRIFTED and entry.pending:
            message = f"irqtune's write of {entry.written} was never read back (interrupted?); restore undoes it"
        results.append(Result(entry.knob, outcome, current, entry.written, current, message))
    return results
