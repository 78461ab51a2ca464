"""`irqtune diff A.json B.json`: two saved snapshots compared (options, file reading, exit status)."""

from __future__ import annotations

import json
import sys

import click

from ..fileio import read_regular
from ..measure.snapshot_load import SnapshotFileError, load_snapshot
from .common import report_problems

DIFF_EXIT = """
\b
Exit status:
  0  success
  1  a file is not a snapshot (unreadable, not JSON, not schema 1, no time),
     or the two cannot be compared (other host, other boot, B not later
     than A); the message names the file and says why
  2  usage error (unknown option, bad value)
  3  partial: some rows of a file were malformed; those rows were skipped,
     named on stderr as FILE:LINE: what was expected, and the rest printed
"""


def _load(path: str):
    """The snapshot in `path`; ClickException (exit 1) naming the file when it cannot be one."""
    try:
        text = read_regular(path, "snapshot").decode("utf-8")
    except OSError as err:
        raise click.ClickException(f"{path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise click.ClickException(f"{path}: not a snapshot: not UTF-8 text") from None
    try:
        return load_snapshot(path, text)
    except SnapshotFileError as err:
        raise click.ClickException(str(err)) from None


@click.command(epilog=DIFF_EXIT)
@click.argument("a", metavar="A.json", type=click.Path(dir_okay=False))
@click.argument("b", metavar="B.json", type=click.Path(dir_okay=False))
@click.option("-n", "--top", type=click.IntRange(1, 10_000), default=10, show_default=True,
              help="Busiest IRQs shown in the text (--json has every IRQ).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (schema 1) instead of text.")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Colour the text: auto = only on a terminal and when NO_COLOR is unset.")  # fmt: skip
def diff(a: str, b: str, top: int, as_json: bool, color: str) -> None:
    """What happened between two `irqtune snapshot --json` files of one host.

    \b
    For two snapshots taken on one host in one boot (a sosreport-style
    workflow: save one now, one later, compare anywhere): the gap, the
    rate of every IRQ per CPU, LOC/RES/CAL/TLB per CPU, softirq and softnet
    rates, IRQs and devices that appeared or vanished, requested/effective
    affinity that changed, and the findings status would report for that
    interval (from the snapshots alone: no NUMA or isolation is known).
    Refuses snapshots of two hosts or two boots (boot id, else most
    counters fell) and a B not later than A. Never reads --root.
    """
    from ..render import render_diff
    from ..snapdiff import DiffRefused, build_diff
    from ..table import Style

    before, after = _load(a), _load(b)
    try:
        report = build_diff(before, after, a, b)
    except DiffRefused as err:
        raise click.ClickException(f"cannot compare: {err}") from None
    problems = [*before.problems, *after.problems]
    report["problems"] = [p.to_json() for p in problems]
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        click.echo(render_diff(report, Style.auto(color), top), nl=False)
    sys.exit(report_problems(problems))


COMMANDS = (diff,)
