"""`irqtune run`: the agent, as a service or in a terminal (the service itself: agent/service.py)."""

from __future__ import annotations

import signal
import sys

import click

from .. import DEFAULT_CONFIG
from ..agent.events import LinkWatcher
from ..agent.service import Service, ServiceError, load_for_host
from ..agent.signals import catch_signals
from ..config import MODES
from .common import EXIT_OK, EXIT_PARTIAL, FiniteRange

RUN_EXIT = """
\b
Exit status:
  0  stopped by SIGTERM/SIGINT (whatever the input), or --passes done
  1  the config has an error (FILE:LINE: key: what), another agent holds the
     state directory, tune mode cannot lock it (observe mode goes on
     without the lock, saying so), or the journal cannot be opened
  2  usage error
  3  --passes done, and some pass met malformed input: each problem named
     once on stderr as FILE:LINE: what was expected (as status does)
"""


class ClickOutput:
    """The service's lines through click (stdout, stderr), stdout flushed after each pass."""

    def out(self, text: str) -> None:
        click.echo(text)

    def err(self, text: str) -> None:
        click.echo(text, err=True)

    def flush(self) -> None:
        sys.stdout.flush()


@click.command(epilog=RUN_EXIT)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help=f"Config file (TOML). "
              f"Default: {DEFAULT_CONFIG} if it exists, else built-in defaults (observe mode).")  # fmt: skip
@click.option("--mode", type=click.Choice(MODES), help="Override the config: observe (recommend, write "
              "nothing) or tune (apply through the journal).")  # fmt: skip
@click.option("--interval", type=FiniteRange(0.5, 3600), help="Seconds between passes (overrides config).")
@click.option("--passes", type=click.IntRange(0), default=0, show_default=True,
              help="Stop after this many passes (0: run until SIGTERM).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One JSON object per pass on stdout.")
@click.option("--allow-host-wide", is_flag=True, help="Tune IRQ affinity even from a network namespace other than "
              "the host's (ip netns exec): it moves the host's interrupts (overrides allow_host_wide).")  # fmt: skip
@click.option("--listen", metavar="ADDR:PORT", help="Serve Prometheus metrics here (overrides [exporter] listen; "
              "e.g. 127.0.0.1:9731): what `irqtune export` serves, plus the agent's passes, changes by "
              "outcome, journal entries and knob values.")  # fmt: skip
@click.pass_obj
def run(obj, config_path: str | None, mode: str | None, interval: float | None, passes: int,
        as_json: bool, allow_host_wide: bool, listen: str | None) -> None:  # fmt: skip
    """Run the agent: measure, decide, act, check, every INTERVAL seconds.

    Each pass takes a snapshot (the same one `status` uses), reports findings and advice
    (NVMe polling, TLB shootdowns and IPIs on isolated CPUs, threaded NAPI), and decides:
    NIC queue IRQs one per core over local housekeeping CPUs (once, never onto critical or
    banned CPUs; next to a configured process's threads; RPS/XPS to match); per NIC,
    coalescing, NAPI deferral and, for busy-polled queues, IRQ suspension, predicted from the
    measured packet rate and per-packet cost toward the device's goal; netdev_budget when
    NAPI is squeezed with drops; a storming low-criticality IRQ to the irq_sink CPUs with its
    coalescing raised. In observe mode (the default) decisions are printed as
    recommendations and nothing is written. In tune mode they go through the journal (so
    `irqtune restore` undoes them, after a crash too), at most max_changes per pass, within
    [bounds]; a knob holds for `dwell` seconds, a knob that flips three times is frozen, and
    a change stays on probation until three full windows found its device healthy: when
    the device's drops or time_squeeze rose after it, it is rolled back and that knob
    backs off; when three windows could not judge it (the load rose and the loss per
    packet with it) it is rolled back too; while the traffic has stopped it waits. A
    rollback never writes over a value something else set since (drifted-kept), and a
    change whose device left is dropped unwritten (restore still has the original).

    In text mode each pass prints a summary line, then each finding and advice with its
    numbers (warnings every pass, info when it first appears), then every decision. In
    observe mode the placement it would still change is recommended on every pass.

    A link going up or down, a device appearing or leaving (rtnetlink) or a CPU going on-
    or offline starts a pass at once, with placement again; a change on probation is
    judged by the next full window, never by that pass's short one.

    With --listen (or [exporter] listen) it serves Prometheus metrics: everything
    `irqtune export` serves plus irqtune_agent_* (passes, loop duration, changes by
    outcome and knob kind, journal entries, drifted knobs) and irqtune_knob_value. The exporter's
    settings take effect at start; SIGHUP does not change them.

    \b
    Under systemd (Type=notify): READY=1 after the first pass, STATUS= after each,
    WATCHDOG=1 from the loop. SIGHUP reloads the config; SIGTERM stops (and restores
    what this agent changed when restore_on_exit is set).
    """

    def load():
        config = load_for_host(config_path, mode, interval, obj.host)
        if listen:
            config.exporter.listen = listen
        config.allow_host_wide |= allow_host_wide
        return config

    sys.exit(run_service(obj.host, obj.state_dir, load, passes=passes, as_json=as_json))


def run_service(host, state_dir: str, load, *, passes: int = 0, as_json: bool = False) -> int:
    """The service with this process's signals (SIGTERM and SIGINT stop, SIGHUP reloads; the previous handlers
    are back afterwards), systemd's notify socket, rtnetlink link events on this host (not under a fake --root),
    and its lines through click. A service that cannot start is exit 1 with its message; --passes done after
    malformed input is 3, as for status (a stop by a signal stays 0: systemd counts anything else a failure)."""
    with catch_signals(stop=(signal.SIGTERM, signal.SIGINT), reload=(signal.SIGHUP,)) as signals:
        service = Service(host, load, state_dir, ClickOutput(), signals, passes=passes, as_json=as_json,
                          watch_links=lambda: LinkWatcher() if host.root == "/" else None)  # fmt: skip
        try:
            service.run()
        except ServiceError as err:
            raise click.ClickException(str(err)) from None
    return EXIT_PARTIAL if service.malformed and not signals.stop else EXIT_OK


COMMANDS = (run,)
