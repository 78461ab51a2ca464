"""`irqtune export`: the Prometheus exporter as a command (measure-only, never writes)."""

from __future__ import annotations

import logging
import signal
import ssl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click
from prometheus_client import generate_latest

from ..agent.signals import catch_signals
from ..export import (
    DEFAULT_LISTEN,
    DEFAULT_MAX_SERIES,
    AuthFileError,
    BasicAuth,
    ExportOptions,
    Filters,
    IrqtuneCollector,
    TlsConfig,
    make_registry,
    serve,
)
from ..export.probes import EXPORT_PROBES, ProbeSource
from ..export.server import parse_listen
from ..measure.snapshot import take_snapshot
from ..probe.runner import EbpfUnavailable
from .common import EXIT_NO_EBPF, EXIT_OK, EXIT_PARTIAL

log = logging.getLogger(__name__)

ONCE_PROBE_WINDOW = 1.0

EXPORT_EXIT = """
\b
Exit status:
  0  stopped by SIGTERM or SIGINT (--once: the exposition was printed)
  1  error: cannot listen on ADDR:PORT (in use, not permitted), the TLS or
     basic-auth file is unusable, or nothing to measure under --root
  2  usage error (unknown option, bad ADDR:PORT or pattern)
  3  --once: some input was malformed; those rows were skipped (log with -v)
  4  --probes: eBPF cannot run here (no bcc, not root, tracefs not mounted,
     --root not /); the message says which
"""


def _listen(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_listen(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    return value


def _filters(include: tuple[str, ...], exclude: tuple[str, ...]) -> Filters:
    try:
        return Filters.parse(include, exclude)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--include/--exclude") from None


def _nothing_to_measure(host) -> str | None:
    snap = take_snapshot(host, with_affinity=False)
    if snap.interrupts is None:
        missing = ", ".join(f"{path} ({why})" for path, why in snap.unavailable.items()) or "/proc/interrupts"
        return f"nothing to measure under {host.root}: {missing}"
    return None


@click.command("export", epilog=EXPORT_EXIT)
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, callback=_listen, metavar="ADDR:PORT",
              help="Where to serve /metrics: ADDR:PORT, [IPv6]:PORT, or :PORT for every address. "
              "0.0.0.0 (or :PORT) exposes the interrupt counters to every host that can reach this one: "
              "use a firewall, TLS and basic auth then. Port 0 picks a free port.")  # fmt: skip
@click.option("--per-cpu", is_flag=True, help="Also export every IRQ per CPU that served it "
              "(irqtune_irq_cpu_interrupts_total); within the series budget.")  # fmt: skip
@click.option("--include", multiple=True, metavar="PATTERN", help="Only these IRQs (repeatable): an IRQ "
              "number or range (41, 40-63) or a glob on device or action name (eth*, nvme0q*). Globs also "
              "select /proc/net/dev interfaces.")  # fmt: skip
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Leave these IRQs (and interfaces, by glob) "
              "out (repeatable); wins over --include.")  # fmt: skip
@click.option("--max-series", type=click.IntRange(0), default=DEFAULT_MAX_SERIES, show_default=True,
              help="Series budget of one scrape (irqtune_*; the process's six process_* come on top); 0: none. "
              "Over it, per-CPU families are summed over CPUs and "
              "the least busy IRQs are left out (irqtune_exporter_series_dropped says how many).")  # fmt: skip
@click.option("--probes/--no-probes", default=False, show_default=True,
              help=f"Attach eBPF probes ({', '.join(EXPORT_PROBES)}) for the exporter's life and export "
              "handler-time, softirq and block latency histograms, IPI, TLB and NAPI counts. Needs root and "
              "bcc; costs a little on every interrupt, so it is off unless asked for.")  # fmt: skip
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS with this "
              "certificate (PEM; may hold the key too).")  # fmt: skip
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="The certificate's private key "
              "(PEM). Default: --tls-cert.")  # fmt: skip
@click.option("--tls-client-ca", type=click.Path(exists=True, dir_okay=False), help="Require client "
              "certificates signed by this CA (mutual TLS).")  # fmt: skip
@click.option("--basic-auth-file", type=click.Path(exists=True, dir_okay=False), help="Require HTTP basic "
              "auth; one USER:HASH per line, HASH bcrypt ($2b$...), SHA-crypt ($5$/$6$, openssl passwd -5) "
              "or sha256:HEX (printf %s PASS | sha256sum). Use with TLS.")  # fmt: skip
@click.option("--once", is_flag=True, help="Print one exposition (text format) on stdout and exit; no server. "
              f"With --probes the probes measure for {ONCE_PROBE_WINDOW:g} s first.")  # fmt: skip
@click.pass_obj
def export(obj, listen: str, per_cpu: bool, include: tuple[str, ...], exclude: tuple[str, ...],
           max_series: int, probes: bool, tls_cert: str | None, tls_key: str | None,
           tls_client_ca: str | None, basic_auth_file: str | None, once: bool) -> None:  # fmt: skip
    """Serve irqtune's measurements to Prometheus (GET /metrics).

    Every scrape takes a fresh snapshot with irqtune's own /proc readers (the same
    as `status`; concurrent scrapes share one) and answers with: interrupts per IRQ with its device, queue, role,
    chip and action (summed over CPUs; per CPU with --per-cpu); LOC/RES/CAL/TLB and
    other architecture rows, softirqs and softnet per CPU; interrupts per CPU;
    receive packets and drops per interface; each IRQ's affinity as a number of
    CPUs; with --probes, eBPF histograms and counts. Kernel counters are 32-bit:
    the exporter extends them to 64 bits across scrapes, so a wrap is not a reset.
    Names, labels and cardinality rules: docs/metrics.md.

    \b
    Never writes to the host. Kernel strings (action, chip, interface names) only
    become label values. SIGTERM or SIGINT stops it (probes are detached).
    Example scrape config:
      - job_name: irqtune
        static_configs: [{targets: ["127.0.0.1:9731"]}]
    """
    if (tls_key or tls_client_ca) and not tls_cert:
        raise click.UsageError("--tls-key and --tls-client-ca need --tls-cert")
    options = ExportOptions(per_cpu=per_cpu, filters=_filters(include, exclude), max_series=max_series)
    try:
        auth = BasicAuth.from_file(basic_auth_file) if basic_auth_file else None
    except AuthFileError as err:
        raise click.ClickException(str(err)) from None
    tls = TlsConfig(tls_cert, tls_key or tls_cert, tls_client_ca) if tls_cert else None
    problem = _nothing_to_measure(obj.host)
    if problem:
        raise click.ClickException(problem)
    sys.exit(run_exporter(obj.host, options, listen, tls, auth, probes=probes, once=once, state_dir=obj.state_dir))


def run_exporter(host, options: ExportOptions, listen: str, tls: TlsConfig | None, auth: BasicAuth | None, *,
                 probes: bool, once: bool, state_dir: str | None = None) -> int:  # fmt: skip
    """The exporter's life: the probes attached (when asked for), then one exposition on stdout (--once) or the
    server until SIGTERM or SIGINT. The probes are detached and the signal handlers put back on every exit."""
    with catch_signals(stop=(signal.SIGTERM, signal.SIGINT)) as signals, _probe_source(host, probes) as source:
        collector = IrqtuneCollector(host, options, probes=source, state_dir=state_dir)
        registry = make_registry(collector)
        if once:
            if source:
                signals.wait(ONCE_PROBE_WINDOW)
            click.echo(generate_latest(registry).decode(), nl=False)
            return EXIT_PARTIAL if collector.last_problems else EXIT_OK
        try:
            server = serve(registry, listen, tls=tls, auth=auth)
        except (OSError, ssl.SSLError) as err:
            raise click.ClickException(f"cannot serve on {listen}: {err}") from None
        click.echo(f"irqtune: serving metrics on {server.url}", err=True)
        try:
            while not signals.wait(1.0):
                pass
        finally:
            started = time.monotonic()
            server.close()
            log.info("server stopped in %.2f s", time.monotonic() - started)
        click.echo("irqtune: stopped", err=True)
        return EXIT_OK


@contextmanager
def _probe_source(host, wanted: bool) -> Iterator[ProbeSource | None]:
    """The eBPF probes for the exporter's life (exit 4 when they cannot run at all; a warning per probe that
    could not load)."""
    if not wanted:
        yield None
        return
    try:
        source = ProbeSource(host)
    except EbpfUnavailable as err:
        click.echo(f"irqtune: eBPF unavailable: {err}", err=True)
        sys.exit(EXIT_NO_EBPF)
    try:
        for result in source.session.results.values():
            if result.status != "ok":
                click.echo(f"irqtune: warning: probe {result.name} {result.status}: {result.reason}", err=True)
        yield source
    finally:
        source.close()


COMMANDS = (export,)
