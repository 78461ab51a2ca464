"""`irqtune top`: options, the hardirq probe's lifetime, signals and exit status of the live view."""

from __future__ import annotations

import errno
import os
import signal
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING

import click

from ..agent.signals import Stopped, catch_signals
from ..host import PathEscape
from ..measure.snapshot import take_snapshot
from ..probe.runner import EbpfUnavailable, ProbeSession, ebpf_unavailable_reason
from ..top.model import SORTS
from ..top.sample import PROBES, Sample, Sampler
from .common import EXIT_NO_EBPF, FiniteRange, report_problems

if TYPE_CHECKING:
    from . import Ctx

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

TOP_EXIT = """
\b
Exit status:
  0  quit with q, Ctrl-C, SIGTERM or SIGHUP, or --iterations done
  1  nothing to measure: /proc/interrupts unreadable under --root, or a path
     was refused
  2  usage error (unknown option, bad value, --root not a directory)
  3  partial: some input was malformed; those rows were skipped, named on
     stderr as FILE:LINE: what was expected, and the rest shown
  4  --probe was given but eBPF cannot run here (no bcc, not root, tracefs not
     mounted, --root not /); the message says which
"""


def _report(sample: Sample | None) -> int:
    return report_problems(sample.problems if sample else [])


@click.command(epilog=TOP_EXIT)
@click.option(
    "-d", "--delay", type=FiniteRange(0.1, 3600), default=1.0, show_default=True, metavar="SECONDS",
    help="Seconds between refreshes; each refresh shows the rates of that window.",
)  # fmt: skip
@click.option(
    "-n", "--iterations", type=click.IntRange(1), metavar="N",
    help="Stop after N refreshes. Default: until q, Ctrl-C or SIGTERM.",
)  # fmt: skip
@click.option(
    "-s", "--sort", type=click.Choice(SORTS), default="rate", show_default=True,
    help="Row order: rate (busiest first), cpus (spread over most CPUs first), latency (slowest mean "
    "handler time first), irq (number), device (name). Keys r, c, l, i, d change it while running.",
)  # fmt: skip
@click.option(
    "--top", "rows", type=click.IntRange(1), metavar="N",
    help="IRQ rows shown. Default: as many as fit the terminal; every IRQ in plain mode.",
)  # fmt: skip
@click.option("-b", "--batch", is_flag=True, help="Plain lines, one block per refresh, even on a terminal.")
@click.option(
    "--probe/--no-probe", default=None,
    help="Measure hard-IRQ handler time (mean and max per IRQ) with the hardirq eBPF probe. "
    "Default: when it can run (root, bcc, --root /).",
)  # fmt: skip
@click.pass_obj
def top(obj: Ctx, delay: float, iterations: int | None, sort: str, rows: int | None, batch: bool,
        probe: bool | None) -> None:  # fmt: skip
    """A live view of interrupts: the busiest IRQs and the interrupt load of every CPU.

    \b
    Every refresh shows, for the window since the last one:
      IRQ rows   rate, how many CPUs took it and their shares (PER-CPU, e.g.
                 0:92% 1:8%), device and queue, action names, effective
                 affinity, and the mean and maximum hard-IRQ handler time
                 (MEAN-us, MAX-us) when the hardirq probe runs
      CPU rows   device interrupts/s, timer (LOC), rescheduling (RES),
                 function-call (CAL) and TLB-shootdown IPIs/s (IPIn on ARM),
                 and the share of time in hard-IRQ and softirq context

    \b
    Keys on a terminal:
      r  sort by rate           c  by CPU spread       l  by handler latency
      i  by IRQ number          d  by device name      q  quit

    When stdout is not a terminal (or with --batch) each refresh is printed as
    one block of plain lines followed by a blank line, like top -b; combine
    with --iterations to take a fixed number. The probe is detached and the
    terminal restored on q, Ctrl-C, SIGTERM and SIGHUP. Never writes.
    """
    host = obj.host
    try:
        if not take_snapshot(host, with_affinity=False).interrupts:
            raise click.ClickException(f"nothing to measure under {host.root}: /proc/interrupts unavailable")
    except PathEscape as err:
        raise click.ClickException(str(err)) from None
    reason = ebpf_unavailable_reason(host) if probe is not False else "--no-probe"
    if probe and reason:
        click.echo(f"irqtune: eBPF unavailable: {reason}", err=True)
        sys.exit(EXIT_NO_EBPF)
    live = not batch and sys.stdout.isatty()
    try:
        sample = run_top(host, reason, live, sort, delay, iterations, rows)
    except BrokenPipeError:  # `irqtune top | head`: the reader is gone; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except OSError as err:
        if not (live and err.errno == errno.EIO):
            raise
        # the terminal hung up under the screen: the probe is detached, nobody is left to tell
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
        sys.exit(0)
    sys.exit(_report(sample))


def run_top(host, reason: str | None, live: bool, sort: str, delay: float, iterations: int | None,
            rows: int | None) -> Sample | None:  # fmt: skip
    """The view until q, --iterations, Ctrl-C, SIGTERM or SIGHUP; the last sample (for its problems). A stop
    signal unwinds through the screen, the terminal settings and the probe session, and the stop signals are
    ignored from then on (and from the end of the view on), so that the cleanup runs to its end; the previous
    handlers are back afterwards. `reason`: why the probe cannot run (None: load it)."""
    from rich.console import Console  # rich loads with this command only

    from ..top.loop import Keys, run_live, run_plain

    def progress(message: str) -> None:
        if not live and sys.stderr.isatty():
            click.echo(f"irqtune: {message}...", err=True)

    samplers: list[Sampler] = []  # the one started, for its last sample's problems
    try:
        with catch_signals(stop=STOP_SIGNALS, raise_on_stop=True, hold_on_stop=True) as signals, ExitStack() as stack:

            def start() -> Sampler:
                """Load the probe (seconds: bcc compiles it) and take the first reading."""
                session, why = None, reason or ""
                if reason is None:
                    progress("loading the hardirq probe")
                    try:
                        session = stack.enter_context(ProbeSession(host, PROBES))
                    except EbpfUnavailable as err:
                        why = str(err)
                samplers.append(Sampler(host, session, why))
                return samplers[-1]

            if live:  # the stack undoes cbreak after the screen is left and the probe detached
                keys = stack.enter_context(Keys())
                loading = "loading the hardirq probe (eBPF)..." if reason is None else f"not measured: {reason}"
                run_live(start, sort, delay, iterations, rows, Console(highlight=False), keys, loading)
            else:
                run_plain(start(), sort, delay, iterations, rows, lambda s: click.echo(s, nl=False))
            signals.hold()  # q or --iterations: leave the screen, restore the terminal, detach, uninterrupted
    except (Stopped, KeyboardInterrupt):
        pass
    return samplers[0].last if samplers else None


COMMANDS = (top,)
