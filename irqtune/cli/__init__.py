"""The `irqtune` command line."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass

import click

from .. import __version__
from ..host import Host, PathEscape
from ..parse.common import format_cpulist
from .common import EXIT_ERROR, EXIT_NO_EBPF, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, FiniteRange, report_problems
from .lazy import LazyGroup

# The other commands, imported when one of them runs (`irqtune --version` or `get` never loads the agent,
# the exporter's prometheus_client, top's rich or pyroute2). Each module's COMMANDS are these.
LAZY = {
    **{name: f".act:{attr}" for name, attr in (("set", "set_"), ("get", "get"), ("restore", "restore"),
                                               ("verify", "verify"), ("plan", "plan"), ("apply", "apply"))},
    "simulate": ".sim:simulate", "run": ".run:run", "export": ".export:export", "top": ".top:top",
    "probe": ".probe:probe", "completion": ".docs:completion", "manpage": ".docs:manpage", "diff": ".diff:diff",
    "import-tuned": ".tuned:import_tuned",
}  # fmt: skip

EXIT_CODES_HELP = f"""
\b
Exit status:
  {EXIT_OK}  success
  {EXIT_ERROR}  error: nothing could be measured (no counter file readable
     under --root) or a path was refused
  {EXIT_USAGE}  usage error (unknown option, bad value, --root not a directory)
  {EXIT_PARTIAL}  partial: some input was malformed; those rows were skipped,
     named on stderr as FILE:LINE: what was expected, and the rest printed
     (probe: some probes could not run; the others' data is printed)
  {EXIT_NO_EBPF}  probe, status --probe: eBPF cannot run here (no bcc, not root,
     tracefs not mounted, --root not /, status -i 0); the message says which
     (status still prints its report)
"""

log = logging.getLogger("irqtune")


@dataclass(slots=True)
class Ctx:
    host: Host
    state_dir: str


def _require_something(snap) -> None:
    if not any((snap.interrupts, snap.softirqs, snap.softnet, snap.stat)):
        missing = ", ".join(snap.unavailable) or "every file"
        raise click.ClickException(f"nothing to measure under {snap.root}: {missing} unavailable")


def _dump(data: dict) -> None:
    click.echo(json.dumps(data, indent=1, sort_keys=False))


@click.group(cls=LazyGroup, lazy=LAZY, epilog=EXIT_CODES_HELP,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})  # fmt: skip
@click.option(
    "--root",
    envvar="IRQTUNE_ROOT",
    default="/",
    show_default=True,
    type=click.Path(exists=True, file_okay=False),
    help="Directory holding the proc/ and sys/ trees to read: / for this host, or a fixture or simulator "
    "tree. Env: IRQTUNE_ROOT.",
)
@click.option(
    "--state-dir",
    envvar="IRQTUNE_STATE_DIR",
    type=click.Path(file_okay=False),
    help="Where irqtune keeps what it learned (managed IRQs, journal). Default: ROOT/var/lib/irqtune. "
    "Env: IRQTUNE_STATE_DIR.",
)
@click.option("-v", "--verbose", count=True, help="More log detail on stderr (-vv for debug).")
@click.version_option(__version__, "-V", "--version", prog_name="irqtune")
@click.pass_context
def main(ctx: click.Context, root: str, state_dir: str | None, verbose: int) -> None:
    """Measure and tune Linux interrupt handling: IRQ affinity, NIC coalescing, NAPI and NVMe polling.

    Read commands (status, snapshot) never change the host and work without root.
    Every path is read below --root, so the same commands run against a fake /proc
    and /sys for tests and the simulator.
    """
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2), format="irqtune: %(levelname)s: %(message)s", stream=sys.stderr
    )
    from ..sim.kernel import SimTreeError, SimulatedKernel
    from ..statedir import default_state_dir

    try:
        host = SimulatedKernel.for_root(root) or Host(root)
    except SimTreeError as err:
        raise click.ClickException(f"{err}; not a simulated tree irqtune can use") from None
    ctx.obj = Ctx(host=host, state_dir=state_dir or default_state_dir(host))


@main.command(epilog=EXIT_CODES_HELP)
@click.option(
    "-i", "--interval", type=FiniteRange(0, 3600), default=1.0, show_default=True,
    help="Seconds between the two readings that rates are computed from. 0: no window, show counts since boot.",
)  # fmt: skip
@click.option(
    "-n", "--top", type=click.IntRange(1, 10_000), default=10, show_default=True,
    help="Busiest IRQs shown (those that took interrupts), and eBPF handler-latency rows.",
)  # fmt: skip
@click.option(
    "--all", "show_all", is_flag=True,
    help="Also show the idle config/admin vectors (IRQs that took no interrupt and serve no device queue) that the "
    "DEVICES table otherwise folds into one line. --json always has them (idle_vectors).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (schema 1) instead of text.")
@click.option(
    "--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
    help="Colour the text: auto = only on a terminal and when NO_COLOR is unset.",
)  # fmt: skip
@click.option(
    "--probe/--no-probe", default=None,
    help="Also run the hardirq, ipi, tlb, block and timer eBPF probes over the window (handler latency, IPI and TLB "
    "sources, block completion latency for NVMe advice, who keeps a nohz_full tick). Needs root, bcc and --root /. "
    "Off unless asked for: bcc compiles them for a few seconds before the window starts.",
)  # fmt: skip
@click.pass_obj
def status(obj: Ctx, interval: float, top: int, show_all: bool, as_json: bool, color: str, probe: bool | None) -> None:
    """One screen about interrupts on this host.

    \b
    Shows, first, a header (time, window, topology and isolation, the eBPF
    probes that ran) and the findings and advice, most severe first: "all
    queue IRQs of eth0 land on CPU 0", IRQs on isolated CPUs or remote NUMA
    nodes, interrupt storms, softnet and interface rx drops, interrupt
    remapping off. Then the busiest IRQs in the window with their device and
    queue, rate, per-CPU spread, requested/effective affinity and whether the
    kernel manages them; timer (LOC), rescheduling (RES), function-call (CAL)
    and TLB-shootdown rates per CPU (IPIn rows on ARM); softirq and softnet
    rates; every NIC, NVMe and block device with its queue IRQs (idle
    config/admin vectors folded into one line unless --all).

    \b
    Managed: yes/no from debugfs (/sys/kernel/debug/irq/irqs/N) when mounted, or
    as learned by a refused affinity write; "unknown" otherwise. Never writes.
    """

    from ..render import render_status
    from ..status import build_report, collect
    from ..table import Style

    def progress(message: str) -> None:
        if sys.stderr.isatty() and not as_json:
            click.echo(f"irqtune: {message}...", err=True)

    try:
        collected = collect(obj.host, interval, obj.state_dir, progress, probe=probe)
    except PathEscape as err:
        raise click.ClickException(str(err)) from None
    _require_something(collected.after)
    report = build_report(collected, top=top)
    if as_json:
        _dump(report)
    else:
        click.echo(render_status(report, Style.auto(color), show_all), nl=False)
    code = report_problems(collected.problems)
    if probe and collected.probe_reason is not None:  # asked for, as `probe` is: its exit status too
        click.echo(f"irqtune: eBPF unavailable: {collected.probe_reason}", err=True)
        code = EXIT_NO_EBPF
    sys.exit(code)


@main.command(epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the whole snapshot as JSON (schema 1).")
@click.option("--no-affinity", is_flag=True, help="Skip reading /proc/irq/N/* (faster on hosts with many IRQs).")
@click.pass_obj
def snapshot(obj: Ctx, as_json: bool, no_affinity: bool) -> None:
    """Read every interrupt counter once, raw, as since boot.

    \b
    JSON fields (schema 1; full description in docs/snapshot-schema.md):
      interrupts.cpus        online CPU ids from the /proc/interrupts header
      interrupts.cpu_totals  per CPU id, the sum of all per-CPU rows
      interrupts.rows.KEY    per row: counts {cpu id: n} (zeros omitted), total,
                             chip/hwirq/trigger/flow/actions or description
      softirqs               possible CPU ids and counts per vector
      softnet                one entry per CPU: processed, dropped, time_squeeze...
      stat                   irq/softirq seconds per CPU and totals from /proc/stat
      affinity.IRQ           requested, effective, hint CPU lists and NUMA node
      unavailable            files that could not be read, and why
      problems               malformed input: file, line, message

    A root that holds only some of the files works: the rest are listed under
    "unavailable" and the exit status stays 0.
    """
    from ..measure.reading import refused_problems
    from ..measure.snapshot import read_identity, take_snapshot, to_json

    try:
        snap = take_snapshot(obj.host, with_affinity=not no_affinity, with_memory=True)
        read_identity(obj.host, snap)
    except PathEscape as err:
        raise click.ClickException(str(err)) from None
    _require_something(snap)
    snap.problems.extend(refused_problems(obj.host))
    if as_json:
        _dump(to_json(snap))
    else:
        _print_snapshot_summary(snap)
    for path, why in snap.unavailable.items():
        log.info("%s unavailable: %s", path, why)
    sys.exit(report_problems(snap.problems))


def _print_snapshot_summary(snap) -> None:
    from ..table import table

    lines = [f"snapshot of {snap.root}: online CPUs {format_cpulist(snap.cpus) or '-'}"]
    if snap.interrupts:
        table_ = snap.interrupts
        numbered = sum(1 for r in table_.rows.values() if r.irq is not None)
        lines.append(f"/proc/interrupts: {len(table_.rows)} rows ({numbered} numbered IRQs)")
        totals = table_.cpu_totals()
        busiest = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:8]
        lines += table(("CPU", "ALL-ROWS-TOTAL"), busiest)
    if snap.softirqs:
        lines.append(f"/proc/softirqs: {len(snap.softirqs.vectors)} vectors on {len(snap.softirqs.cpus)} possible CPUs")
    if snap.softnet:
        lines.append(f"/proc/net/softnet_stat: {len(snap.softnet.rows)} CPUs (ids from {snap.softnet.cpu_source})")
    for path, why in snap.unavailable.items():
        lines.append(f"{path}: unavailable ({why})")
    lines.append("(use --json for every counter)")
    click.echo("\n".join(lines))


@main.command(epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def nvme(obj: Ctx, as_json: bool) -> None:
    """NVMe: poll queues, hardware queues per controller, and what can change at run time."""
    from ..measure.nvme import read_nvme_queues

    report = read_nvme_queues(obj.host)
    if as_json:
        _dump(report.to_json())
        return
    click.echo(f"nvme.poll_queues {report.poll_queues or '-'}  nvme.write_queues {report.write_queues or '-'}")
    for c in report.controllers:
        maps = "; ".join(f"hctx{q}: {format_cpulist(cpus)}{_served(c, q)}" for q, cpus in sorted(c.queue_cpus.items()))
        namespaces = ", ".join(c.namespaces) or "-"
        click.echo(f"{c.name}: namespaces {namespaces}; {c.hw_queues} hardware queues ({maps or '-'});")
        click.echo(
            f"  io_poll {c.io_poll or '-'}, io_poll_delay {c.io_poll_delay or '-'}"
            + (f"; admin queue IRQ {c.admin_irq}" if c.admin_irq is not None else "")
            + (f"; polled: {', '.join(f'hctx{q}' for q in c.poll_queues)}" if c.poll_queues else "")
        )
    if not report.controllers:
        click.echo("no NVMe controllers")
    for note in report.notes:
        click.echo(f"note: {note}")


def _served(ctrl, hctx: int) -> str:
    if hctx not in ctrl.queue_irqs:
        return ""
    irq = ctrl.queue_irqs[hctx]
    return " poll" if irq is None else f" IRQ {irq}"
