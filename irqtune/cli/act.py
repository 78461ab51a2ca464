"""The commands that change the host: set, restore, verify (and get, to read one knob).

All go through `act.engine` and the journal; all honour --root, so against a fake
tree the writes land in the tree.
"""

from __future__ import annotations

import json
import sys

import click

from .. import DEFAULT_CONFIG
from ..act import engine
from ..act.engine import read_knob
from ..act.journal import Journal, JournalError
from ..act.knobs import CpuListKnob, IrqAffinityKnob, KnobError, Unsupported, make_knob
from ..act.owners import rivals
from ..measure.inventory import build_inventory, select_irqs, selectable_names
from ..measure.known import device_problem
from ..measure.snapshot import take_snapshot
from ..measure.topology import read_topology
from ..parse.common import CpuListError, parse_cpulist, printable
from ..parse.interrupts import InterruptTable
from ..plan import KNOB_FORMS, Change, Plan, PlanError, check, irq_selector, load_plan, parse_knob_id
from ..statedir import boot_id
from .common import EXIT_DRIFT, EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, report_problems

ACT_EXIT_HELP = """
\b
Exit status:
  0  every knob ended as asked (applied, unchanged, restored, matches)
  1  error: bad knob or value, journal unreadable or locked by another irqtune,
     the state directory a symlink, IRQ affinity from another network namespace
     without --allow-host-wide (plan, apply: the plan breaks a rule)
  2  usage error
  3  some knob was refused: kernel-managed IRQ, no free vectors, busy, or
     unsupported here (no such device or setting: get exits 3 for it too);
     plan, apply: some input was malformed, named on stderr as FILE:LINE:
     what was expected (as status), and the plan made from the rest
  5  verify: drift found (something else changed a knob irqtune set)
"""


GET_EXIT_HELP = """
\b
Exit status:
  0  read
  1  error: not a knob irqtune knows (see irqtune set --help)
  2  usage error
  3  unsupported here: no such IRQ, device, queue or file, a driver without
     that setting, a queue without an XPS map (set exits 3 for the same)
"""


def _shown(knob, value: str, raw: str | None) -> str:
    """What a person reads: an empty CPU list (a mask of 0) is "none", with the file's own text."""
    if value or not isinstance(knob, CpuListKnob):
        return value
    return f"none (the file holds {raw})" if raw else "none"


RESTORE_EXIT_HELP = """
\b
Exit status:
  0  every knob restored (or already original); stale entries dropped
  1  error: journal unreadable or locked, the state directory a symlink,
     --only-if-config FILE unusable
  2  usage error
  3  some knob was refused or failed (entry kept); wins over 5
  5  some knob drifted and was left alone (entry kept; --force restores it)
"""


def _restore_status(results: list[engine.Result]) -> int:
    """3 when a knob could not be restored, else 5 when a drifted knob was left alone (verify's drift code)."""
    done = engine.OK_OUTCOMES | {engine.STALE, engine.DRIFTED_KEPT}
    if any(r.outcome not in done for r in results):
        return EXIT_PARTIAL
    kept = [r for r in results if r.outcome == engine.DRIFTED_KEPT]
    if kept:
        click.echo(f"irqtune: {len(kept)} drifted knob(s) left alone; irqtune restore --force puts them back too",
                   err=True)  # fmt: skip
        return EXIT_DRIFT
    return EXIT_OK


def _emit(results: list[engine.Result], as_json: bool, dry_run: bool | None = None) -> None:
    if as_json:
        document: dict = {"schema": 1, "results": [r.to_json() for r in results]}
        if dry_run is not None:
            document["dry_run"] = dry_run
        click.echo(json.dumps(document, indent=1))
    else:
        for r in results:
            click.echo(str(r))
        if not results:
            click.echo("nothing to do")


def _journal(obj) -> Journal:
    try:
        return Journal.open(obj.state_dir, boot_id(obj.host), wait=False)
    except JournalError as err:
        raise click.ClickException(str(err)) from None


SET_HELP = (
    "Change one KNOB to VALUE through the journal (irqtune restore undoes it).\n\n"
    "The original value is journaled before the write; the value is read back after it. A "
    "kernel-managed IRQ is never written (a refused write teaches irqtune that it is managed).\n\n"
    "IRQ affinity (irq/N/affinity, irq/default/affinity) is host-wide: run under `ip netns exec` it still "
    "moves the interrupt for every namespace, so it is refused when this process's network namespace is not "
    "PID 1's, unless --allow-host-wide. Netlink and /sys/class/net knobs act on the current namespace.\n\n"
    "irq/SELECTOR/affinity names IRQs by device or glob (irq/eth0*/affinity, irq/nvme0q*/affinity): matched "
    "against each IRQ's action names, its device and DEVICE-ROLE-QUEUE, listed one line per IRQ before any "
    "write, and each IRQ set and journaled on its own; a selector that matches nothing is an error.\n\n"
    "\b\nKNOB forms:\n" + "\n".join(f"  {form}" for form in KNOB_FORMS)
)


@click.command("set", epilog=ACT_EXIT_HELP, help=SET_HELP)
@click.argument("knob")
@click.argument("value")
@click.option("-n", "--dry-run", is_flag=True, help="Say what would change; write nothing.")
@click.option("--allow-isolated", is_flag=True, help="Allow IRQ affinity on isolated or nohz_full CPUs.")
@click.option("--allow-host-wide", is_flag=True, help="Allow IRQ affinity from a network namespace other than "
              "the host's (it applies host-wide all the same).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def set_(obj, knob: str, value: str, dry_run: bool, allow_isolated: bool, allow_host_wide: bool,
         as_json: bool) -> None:  # fmt: skip
    try:
        results = [set_knob(obj, one, value, dry_run=dry_run, allow_isolated=allow_isolated,
                            allow_host_wide=allow_host_wide) for one in _selected(obj, knob)]  # fmt: skip
    except KnobError as err:
        raise click.ClickException(str(err)) from None
    _emit(results, as_json, dry_run)
    sys.exit(EXIT_OK if all(r.outcome in engine.OK_OUTCOMES for r in results) else EXIT_PARTIAL)


def _selected(obj, knob: str) -> list[str]:
    """The knob ids `knob` names: itself, or for irq/SELECTOR/affinity one per IRQ the selector matches, each
    listed on stderr first (what will be written is seen before it is)."""
    if irq_selector(knob) is None:
        return [knob]
    snap = take_snapshot(obj.host, with_affinity=False)
    inventory = build_inventory(obj.host, snap.interrupts or InterruptTable(cpus=[]), {})
    matched = resolve_selector(inventory, knob)
    for irq, name in matched.items():
        click.echo(f"irqtune: {printable(knob)}: {_described(inventory, irq, name)}", err=True)
    return [f"irq/{irq}/affinity" for irq in matched]


def resolve_selector(inventory, knob: str) -> dict[int, str]:
    """IRQ -> the name its irq/SELECTOR/affinity selector matched (set, plan and apply): KnobError naming what
    could match where nothing does. {} for a knob id that is no selector."""
    pattern = irq_selector(knob)
    if pattern is None:
        return {}
    matched = select_irqs(inventory, pattern)
    if not matched:
        why = device_problem(pattern, selectable_names(inventory)) or ""
        raise KnobError(f"{printable(knob)}: no IRQ matches {printable(pattern)}" + (f"; {why}" if why else ""))
    return matched


def _described(inventory, irq: int, name: str) -> str:
    """How a matched IRQ is shown: "IRQ 38 (virtio2-input.0, device eth0)"."""
    device = inventory.irqs[irq].device
    return f"IRQ {irq} ({printable(name)}{f', device {printable(device)}' if device and device != name else ''})"


def set_knob(obj, knob: str, value: str, *, dry_run: bool = False, allow_isolated: bool = False,
             allow_host_wide: bool = False) -> engine.Result:  # fmt: skip
    """One knob changed through the journal (or only compared, dry_run); a running IRQ tuner is warned about."""
    k = make_knob(obj.host, knob, read_topology(obj.host), allow_isolated=allow_isolated,
                  allow_host_wide=allow_host_wide)  # fmt: skip
    engine.prepare(k, obj.host, obj.state_dir)
    if isinstance(k, IrqAffinityKnob) and not dry_run:
        for name in rivals(obj.host):
            click.echo(f"irqtune: warning: {name} is running and may move IRQ {k.parts[1]} back", err=True)
    if dry_run:
        return engine.change(k, value, None, obj.state_dir, dry_run=True)
    with _journal(obj) as journal:
        return engine.change(k, value, journal, obj.state_dir)


@click.command(epilog=GET_EXIT_HELP)
@click.argument("knob")
@click.option("--json", "as_json", is_flag=True, help="Print the value as JSON: the canonical value and, for "
              "a file, its raw text (an empty CPU list is value \"\", raw \"0\").")  # fmt: skip
@click.pass_obj
def get(obj, knob: str, as_json: bool) -> None:
    """Read one KNOB's current value (never writes).

    CPU lists are shown as lists (0-3,8) whatever the file holds (a hex mask); an
    empty one as "none" with the file's text.
    """
    try:
        k = make_knob(obj.host, knob)
        value, raw = k.reading()
    except KnobError as err:
        raise click.ClickException(str(err)) from None
    except Unsupported as err:  # the same cause makes set report "unsupported" and exit 3
        if as_json:
            click.echo(json.dumps({"knob": knob, "value": None, "outcome": engine.UNSUPPORTED, "message": str(err)}))
        click.echo(f"irqtune: {printable(str(err))}", err=True)
        sys.exit(EXIT_PARTIAL)
    if as_json:
        click.echo(json.dumps({"knob": k.id, "value": value, "raw": raw}))
    else:
        click.echo(printable(_shown(k, value, raw)))


@click.command(epilog=RESTORE_EXIT_HELP)
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be restored; write nothing.")
@click.option("--force", is_flag=True, help="Also put back knobs that drifted (something else changed them "
              "after irqtune, as verify reports); without it they are left alone, entries kept.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--only-if-config", "config_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Restore only when the agent configuration FILE says restore_on_exit = true (the service's "
                   "ExecStopPost after a crash or a watchdog abort); otherwise keep the journal and exit 0. A "
                   "FILE that cannot be read or has an error restores nothing and exits 1.")  # fmt: skip
@click.pass_obj
def restore(obj, dry_run: bool, force: bool, as_json: bool, config_file: str | None) -> None:
    """Put every knob irqtune changed back to its original value, from the journal.

    Works after a crash at any point: the original is journaled (fsynced) before
    each first write. Entries from an earlier boot are stale and dropped: /proc
    and /sys settings do not survive a reboot.

    A knob that drifted (it no longer holds what irqtune wrote: an operator or
    another tool changed it since) is left alone: one line names it, the value
    irqtune wrote and the value found now; its entry is kept, so `restore --force`
    can still put the original back. --dry-run and --json show the same decision.
    """
    if config_file is not None:
        from ..config import ConfigError, load_config  # the plan and restore commands' imports: not get's

        try:
            config = load_config(config_file)
        except (ConfigError, OSError) as err:
            raise click.ClickException(f"{err}; nothing restored") from None
        if not config.restore_on_exit:
            click.echo(f"irqtune: restore_on_exit is off in {config_file}: journal kept (irqtune restore puts "
                       "it back)", err=True)  # fmt: skip
            return
    with _journal(obj) as journal:
        results = engine.restore(obj.host, journal, obj.state_dir, dry_run=dry_run, force=force)
    _emit(results, as_json, dry_run)
    sys.exit(_restore_status(results))


@click.command(epilog=ACT_EXIT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_obj
def verify(obj, as_json: bool) -> None:
    """Report drift: knobs irqtune set that no longer hold its value (irqbalance, a link flap)."""
    with _journal(obj) as journal:
        results = engine.verify(obj.host, journal)
    _emit(results, as_json)
    sys.exit(EXIT_DRIFT if any(r.outcome == engine.DRIFTED for r in results) else EXIT_OK)


def _plan(obj, exclude: tuple[str, ...], ban_cpus: str, allow_isolated: bool, plan_file: str | None = None,
          asked: tuple[str, ...] = (), config_path: str | None = None):  # fmt: skip
    """The plan (computed, or the saved one) with the asked changes, checked against the rules the agent keeps:
    (plan, topology, exit status for malformed input)."""
    try:
        banned = frozenset(parse_cpulist(ban_cpus)) if ban_cpus else frozenset()
    except CpuListError as err:
        raise click.BadParameter(str(err), param_hint="--ban-cpus") from None
    pairs = _asked_pairs(asked)
    _check_names(obj.host, exclude, banned)
    decided = None
    if plan_file:
        try:
            decided = load_plan(plan_file)
        except PlanError as err:
            raise click.ClickException(str(err)) from None
    from ..agent.critical import one_shot
    from ..agent.service import load_for_host
    from ..config import ConfigError  # config's parser: the plan commands', not get's
    from ..decide.placement import placement_plan, placement_rules
    from ..measure.reading import input_problems, read_host

    try:
        config = load_for_host(config_path, None, None, obj.host)
    except (ConfigError, OSError) as err:
        raise click.ClickException(f"{err}; nothing planned") from None
    reading = read_host(obj.host, obj.state_dir)
    shot = one_shot(obj.host, config, obj.state_dir, reading)  # the pods' CPUs and the pins, as a pass sees them
    honoured = shot.rule_args(reading.topology.online)
    rules = placement_rules(
        reading,
        banned=banned | honoured["banned"],
        allow_isolated=allow_isolated,
        exclude=frozenset(exclude) | honoured["exclude"],
        device_cpus=honoured["device_cpus"],
    )
    partial = report_problems([*input_problems(reading, obj.host), *shot.problems])  # named as status names them
    computed = shot.pinner.hold(placement_plan(reading, rules, decided), strict=decided is not None)
    mine = shot.pinner.hold(_asked_plan(obj.host, reading.inventory, pairs), strict=True)
    result = _merged(computed, mine, rules)
    result.notes += shot.notes
    return result, reading.topology, partial


def _asked_pairs(asked: tuple[str, ...]) -> list[tuple[str, str]]:
    """KNOB=VALUE arguments split; a knob id that is neither a knob nor an IRQ selector is an error (as in set)."""
    pairs = []
    for text in asked:
        knob, eq, value = text.partition("=")
        if not eq:
            raise click.BadParameter(f"expected KNOB=VALUE, got {printable(text)}", param_hint="KNOB=VALUE")
        if irq_selector(knob) is None:
            try:
                knob = parse_knob_id(knob).canonical
            except KnobError as err:
                raise click.ClickException(str(err)) from None
        pairs.append((knob, value))
    return pairs


def _asked_plan(host, inventory, pairs: list[tuple[str, str]]) -> Plan:
    """The asked changes, a selector resolved to its IRQs with the same resolver as set's, each IRQ in a note."""
    plan = Plan()
    for knob, value in pairs:
        try:
            matched = resolve_selector(inventory, knob)
        except KnobError as err:
            raise click.ClickException(f"{err}; nothing planned") from None
        if matched:
            plan.notes.append(f"{printable(knob)} selects " + ", ".join(_described(inventory, irq, name)
                                                                       for irq, name in matched.items()))  # fmt: skip
        for irq, name in matched.items() or [(None, "")]:
            kid = parse_knob_id(f"irq/{irq}/affinity" if irq is not None else knob)
            info = inventory.irqs.get(kid.irq) if kid.irq is not None else None
            current = read_knob(host, kid.canonical)
            plan.changes.append(Change(kid.canonical, "?" if current is None else current, value,
                                       f"asked: {printable(knob)}={printable(value)}" + (f" ({printable(name)})"
                                                                                          if name else ""),
                                       device=kid.device or (info.device if info else None), irq=kid.irq))  # fmt: skip
    return plan


def _merged(base: Plan, asked: Plan, rules) -> Plan:
    """The plan with the asked changes in place of its own for the same knobs (named in a note), checked."""
    mine = {c.knob for c in asked.changes}
    notes = [f"{c.knob}: asked {c.target} in place of the plan's {b.target}"
             for c in asked.changes for b in base.changes if b.knob == c.knob]  # fmt: skip
    kept = [b for b in base.changes if b.knob not in mine]
    violations = [v for v in base.violations if v.partition(": ")[0] not in mine]
    return Plan(
        kept + asked.changes,
        base.notes + asked.notes + notes,
        violations + asked.violations + check(Plan(list(asked.changes)), rules).violations,
    )


def _check_names(host, exclude: tuple[str, ...], banned: frozenset[int]) -> None:
    """A typo must not plan around nothing: unknown devices and CPUs are usage errors (exit 2)."""
    if not exclude and not banned:
        return
    from ..measure.known import cpu_problem, device_problem, known_names

    known = known_names(host)
    problems = [p for p in (device_problem(name, known.devices) for name in dict.fromkeys(exclude)) if p]
    if problems:
        raise click.BadParameter("; ".join(problems), param_hint="--exclude")
    problem = cpu_problem(banned, known.cpus)
    if problem:
        raise click.BadParameter(problem, param_hint="--ban-cpus")


def _plan_json(plan) -> dict:
    """A plan as JSON, saying that nothing was written (plan, and apply without --yes)."""
    return {**plan.to_json(), "dry_run": True}


_plan_options = [
    click.option(
        "--exclude",
        "exclude",
        multiple=True,
        metavar="DEV",
        help="Leave this device alone (repeatable; it must exist here).",
    ),
    click.option("--ban-cpus", default="", metavar="LIST", help="CPUs no interrupt may be moved to, e.g. 0,8-15."),
    click.option("--allow-isolated", is_flag=True, help="Allow isolated and nohz_full CPUs as targets."),
    click.option("--json", "as_json", is_flag=True, help="Print the plan (and results) as JSON."),
    click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help=f"The agent's config (TOML), honoured as a pass of the agent honours it: its [cpus] banned, "
        f"critical and housekeeping, manage = false, [pin], and with [kubernetes] the exclusive CPUs of "
        f"opted-in pods. Default: {DEFAULT_CONFIG} if it exists.",
    ),
    click.argument("asked", nargs=-1, metavar="[KNOB=VALUE]..."),
]


def _with_plan_options(fn):
    for option in reversed(_plan_options):
        fn = option(fn)
    return fn


@click.command(epilog=ACT_EXIT_HELP)
@_with_plan_options
@click.pass_obj
def plan(obj, exclude, ban_cpus, allow_isolated, as_json, config_path, asked) -> None:
    """What irqtune would change now, and why (never writes).

    Policy today: spread each NIC's queue IRQs, one per CPU in turn, over the
    NIC-local housekeeping CPUs (not isolated, not banned); kernel-managed IRQs and
    excluded devices are left alone with a note. Checked against the invariants
    before it is shown: a plan with violations cannot be applied.

    The agent's config is honoured as a pass of the agent honours it: no IRQ onto its
    banned or critical CPUs or the exclusive CPUs of opted-in Kubernetes pods (the
    kubelet asked once; where it cannot be, the CPUs the agent last held), and a knob
    its [pin] holds is left alone (a note says so).

    KNOB=VALUE adds a change of your own (set's KNOB forms; irq/SELECTOR/affinity
    names IRQs by device or glob, each IRQ it selects named in a note), in place of
    the plan's for the same knob and checked by the same rules.
    """
    result, _, partial = _plan(obj, exclude, ban_cpus, allow_isolated, asked=asked, config_path=config_path)
    click.echo(json.dumps(_plan_json(result), indent=1) if as_json else "\n".join(result.diff()))
    sys.exit(EXIT_ERROR if result.violations else partial)


@click.command(epilog=ACT_EXIT_HELP)
@_with_plan_options
@click.option("-y", "--yes", is_flag=True, help="Really write. Without it apply is a dry run.")
@click.option("--take-over", is_flag=True, help="Apply even while irqbalance or TuneD runs.")
@click.option("--allow-host-wide", is_flag=True, help="Apply IRQ affinity from a network namespace other than the "
              "host's (it applies host-wide all the same; see irqtune set --help).")  # fmt: skip
@click.option(
    "--plan", "plan_file", type=click.Path(exists=True, dir_okay=False),
    help="Apply this saved plan (irqtune plan --json, possibly edited) instead of deciding now; "
    "it is checked against the same rules.",
)  # fmt: skip
@click.pass_obj
def apply(obj, exclude, ban_cpus, allow_isolated, as_json, config_path, asked, yes, take_over, allow_host_wide,
          plan_file) -> None:  # fmt: skip
    """Apply the plan: a dry run unless --yes; every write journaled and read back.

    The plan is plan's (or --plan FILE's), with the KNOB=VALUE changes and the
    agent's config honoured as plan says; a saved plan that would move a pinned
    knob breaks the rules and is not applied.
    """
    result, topology, partial = _plan(obj, exclude, ban_cpus, allow_isolated, plan_file, asked, config_path)
    if result.violations:
        click.echo("\n".join(result.diff()), err=True)
        raise click.ClickException("the plan breaks the rules above; nothing written")
    others = {} if take_over else rivals(obj.host)
    if yes and others:
        for name, how in others.items():
            click.echo(f"irqtune: {name} is running: {how}", err=True)
        raise click.ClickException("refusing to fight another IRQ tuner; nothing written")
    if not yes:
        click.echo(json.dumps(_plan_json(result), indent=1) if as_json else "\n".join(result.diff()))
        if not as_json:
            click.echo("(dry run: nothing written; --yes to apply)")
        sys.exit(partial)
    results = apply_plan(obj, result, topology, allow_isolated=allow_isolated, allow_host_wide=allow_host_wide)
    _emit(results, as_json, dry_run=False)
    sys.exit(EXIT_OK if all(r.outcome in engine.OK_OUTCOMES for r in results) and not partial else EXIT_PARTIAL)


def apply_plan(obj, plan, topology, *, allow_isolated: bool = False, allow_host_wide: bool = False,
               ) -> list[engine.Result]:  # fmt: skip
    """Every change of a checked plan through the journal, read back; every knob is built and every target
    validated before the first write (a bad one: ClickException, nothing written)."""
    staged = []
    try:
        for change in plan.changes:
            knob = make_knob(obj.host, change.knob, topology, allow_isolated=allow_isolated,
                             allow_host_wide=allow_host_wide)  # fmt: skip
            staged.append((knob, knob.normalize(change.target)))
    except KnobError as err:
        raise click.ClickException(f"{err}; nothing written") from None
    results = []
    with _journal(obj) as journal:
        for knob, target in staged:
            engine.prepare(knob, obj.host, obj.state_dir)
            results.append(engine.change(knob, target, journal, obj.state_dir))
    return results


COMMANDS = (set_, get, restore, verify, plan, apply)
