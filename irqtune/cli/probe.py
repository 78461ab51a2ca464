"""`irqtune probe`: options, the probe window's signals (Ctrl-C, SIGTERM), output and exit status."""

from __future__ import annotations

import json
import signal
import sys
from typing import TYPE_CHECKING

import click

from ..agent.signals import Stopped, catch_signals
from ..probe.base import PROBE_NAMES
from ..probe.runner import EbpfUnavailable, jsonable
from ..probe.text import render_probes
from ..probe.window import ProbeWindow, run_window
from ..table import Style
from .common import EXIT_NO_EBPF, EXIT_OK, EXIT_PARTIAL, FiniteRange

if TYPE_CHECKING:
    from . import Ctx

EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM

PROBE_EXIT = f"""
\b
Exit status:
  0    every probe ran for the whole window
  2    usage error (unknown option or probe, bad value, --root not a directory)
  3    partial: some probes could not run; the others' data is printed
  4    eBPF cannot run here (no bcc, not root, tracefs not mounted, --root not
       /); the message says which
  {EXIT_INTERRUPTED}  Ctrl-C (SIGINT): what was counted until then is printed, with the
       real window length and the /proc deltas of that same window; the probes
       are detached. Not 0, so a script can tell a shortened window from a
       whole one (128 + SIGINT, as shells report a Ctrl-C); a second Ctrl-C
       while reading the maps stops without output
  {EXIT_TERMINATED}  SIGTERM: the probes are detached, nothing is printed
"""


def _parse_only(only: str) -> list[str]:
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROBE_NAMES]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown probe {', '.join(unknown) or '(none)'}; choose from {', '.join(PROBE_NAMES)}"
        )
    return names


def _measure(obj: Ctx, names: list[str], duration: float, as_json: bool) -> ProbeWindow:
    """The window with SIGTERM and Ctrl-C turned into exceptions (also when the shell started us with
    SIGINT ignored); both detach the probes on their way out."""

    def progress(message: str) -> None:
        if sys.stderr.isatty() and not as_json:
            click.echo(f"irqtune: {message}...", err=True)

    try:  # SIGTERM raises Stopped, Ctrl-C KeyboardInterrupt: either unwinds through the session (detached)
        with catch_signals(stop=(signal.SIGTERM,), interrupt=(signal.SIGINT,), raise_on_stop=True):
            return run_window(obj.host, names, duration, progress)
    except EbpfUnavailable as err:
        click.echo(f"irqtune: eBPF unavailable: {err}", err=True)
        sys.exit(EXIT_NO_EBPF)
    except Stopped:
        click.echo("irqtune: terminated; probes detached", err=True)
        sys.exit(EXIT_TERMINATED)
    except KeyboardInterrupt:  # while loading or reading the probes: there is no whole window to show
        click.echo("irqtune: interrupted before the window was read; probes detached", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _as_json(window: ProbeWindow, asked: float) -> dict:
    return {
        "schema": 1,
        "duration": window.duration,
        "duration_asked": asked,
        "interrupted": window.interrupted,
        "compile_seconds": window.compile_seconds,
        "probes": jsonable(window.results),
        "proc": jsonable(window.proc),
        "proc_seconds": window.proc_seconds,
        "proc_inner": jsonable(window.proc_inner),
    }


def _exit_status(window: ProbeWindow) -> int:
    failed = [r for r in window.results.values() if r.status != "ok"]
    for result in failed:
        click.echo(f"irqtune: warning: probe {result.name} {result.status}: {result.reason}", err=True)
    if window.interrupted:
        click.echo(
            f"irqtune: interrupted after {window.duration:.1f} s; printed that window; probes detached", err=True
        )
        return EXIT_INTERRUPTED
    return EXIT_PARTIAL if failed else EXIT_OK


@click.command(epilog=PROBE_EXIT)
@click.option(
    "-d", "--duration", type=FiniteRange(0.1, 3600), default=5.0, show_default=True,
    help="Seconds to measure; Ctrl-C ends the window early and prints it.",
)  # fmt: skip
@click.option(
    "--only", metavar="PROBE[,PROBE...]", default=",".join(PROBE_NAMES), show_default=True,
    help="Probes to load: " + ", ".join(PROBE_NAMES) + ".",
)  # fmt: skip
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print the results as JSON (schema 1), histograms in seconds: duration (the probes' counting window), "
    "interrupted, compile_seconds (building and attaching the probes, before the window), proc (the /proc "
    "deltas of that window) and proc_seconds (their span), proc_inner (a delta "
    "read inside the window, a lower bound).",
)  # fmt: skip
@click.pass_obj
def probe(obj: Ctx, duration: float, only: str, as_json: bool) -> None:
    """Measure with eBPF: how long interrupts take and who causes them.

    \b
    Probes (tracepoints only, loaded through the system bcc, detached on exit):
      hardirq  time in hard-IRQ handlers per IRQ, log2 histogram (IRQ_NONE excluded)
      softirq  run time per vector and CPU, and the wait from raise to run
      ipi      IPIs sent per callsite/callback and target CPU; x86 receive counts
      tlb      TLB flushes per CPU by reason, pages, shootdown senders (x86)
      napi     NAPI polls, packets, budget exhaustion per device
      timer    local timer interrupts per CPU (x86)
      block    block I/O completion latency per device and hardware queue

    \b
    A probe the kernel cannot support is reported with the reason and the rest
    run. Beside the hard-IRQ counts (column PROC-SAME-WINDOW) and the TLB, CAL
    and RES counts are the /proc/interrupts deltas of the same window: read
    just before the maps are zeroed and just after they are read, so a count
    can fall short of its delta by those milliseconds' events, never exceed
    it. Needs root.
    """
    names = _parse_only(only)
    window = _measure(obj, names, duration, as_json)
    if as_json:
        click.echo(json.dumps(_as_json(window, duration), indent=1))
    else:
        click.echo(render_probes(window, Style.auto(), asked=duration), nl=False)
    sys.exit(_exit_status(window))


COMMANDS = (probe,)
