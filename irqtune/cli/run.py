"""`irqtune run`: the agent, as a service or in a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time

import click

from ..act import engine
from ..act.journal import Journal, JournalError
from ..act.known import known_names
from ..agent.events import LinkWatcher
from ..agent.loop import Agent, PassReport
from ..agent.notify import Notifier
from ..config import MODES, Config, ConfigError, check_host, load_config
from ..export import AgentStats, AuthFileError, serve_agent
from ..host import Host
from ..parse.common import printable
from ..state import boot_id

DEFAULT_CONFIG = "/etc/irqtune/irqtune.toml"
LOCK_FILE = "agent.lock"
SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}

RUN_EXIT = """
\b
Exit status:
  0  stopped by SIGTERM/SIGINT, or --passes done
  1  the config has an error (FILE:LINE: key: what), another agent holds the
     state directory, or the journal cannot be opened
  2  usage error
"""


class _Signals:
    def __init__(self) -> None:
        self.stop = self.reload = False
        self.events: list[str] = []

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._reload)

    def _stop(self, signum, frame) -> None:
        self.stop = True

    def _reload(self, signum, frame) -> None:
        self.reload = True


def _load(path: str | None, mode: str | None, interval: float | None, host: Host) -> Config:
    """The config, checked against this host: a device or CPU it lacks (a typo) is refused, not ignored."""
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    config = load_config(path) if path else Config()
    problems = check_host(config, known_names(host))
    if problems:
        raise ConfigError("\n".join(problems))
    if mode:
        config.mode = mode
    if interval:
        config.interval = interval
    return config


def _lock(state_dir: str) -> int:
    """One agent per state directory (per host): an flock held for the agent's life."""
    os.makedirs(state_dir, mode=0o755, exist_ok=True)
    fd = os.open(os.path.join(state_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise click.ClickException(f"another irqtune run holds {state_dir}/{LOCK_FILE}") from None
    return fd


def _summary(report: PassReport, mode: str) -> str:
    applied = sum(d.outcome == engine.APPLIED for d in report.decisions)
    recommended = sum(d.outcome == "recommended" for d in report.decisions)
    warnings = sum(f["severity"] != "info" for f in report.findings)
    return (f"pass {report.number} ({mode}): {len(report.findings)} findings ({warnings} warnings), {recommended} "
            f"recommended, {applied} applied, "
            f"{len(report.rollbacks)} rolled back")  # fmt: skip


def finding_lines(report: PassReport, shown: set[tuple]) -> list[str]:
    """One line per finding and advice, with its numbers: warnings and worse every pass (the journal shows they
    persist), info when it first appears (`shown` remembers which did)."""
    lines = []
    for f in sorted(report.findings, key=lambda f: SEVERITY_ORDER.get(f["severity"], 0), reverse=True):
        key = (f["code"], f.get("device"), f.get("irq"), f.get("cpu"))
        if f["severity"] == "info" and key in shown:
            continue
        shown.add(key)
        lines.append(f"  {f['severity']} {f['code']}: {f['message']}")
    return lines


def register(main: click.Group, ctx_type) -> None:
    pass_obj = click.make_pass_decorator(ctx_type)

    @main.command(epilog=RUN_EXIT)
    @click.option("--config", "config_path", type=click.Path(dir_okay=False), help=f"Config file (TOML). "
                  f"Default: {DEFAULT_CONFIG} if it exists, else built-in defaults (observe mode).")  # fmt: skip
    @click.option("--mode", type=click.Choice(MODES), help="Override the config: observe (recommend, write "
                  "nothing) or tune (apply through the journal).")  # fmt: skip
    @click.option("--interval", type=click.FloatRange(0.5, 3600), help="Seconds between passes (overrides config).")
    @click.option("--passes", type=click.IntRange(0), default=0, show_default=True,
                  help="Stop after this many passes (0: run until SIGTERM).")  # fmt: skip
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per pass on stdout.")
    @click.option("--listen", metavar="ADDR:PORT", help="Serve Prometheus metrics here (overrides [exporter] listen; "
                  "e.g. 127.0.0.1:9731): what `irqtune export` serves, plus the agent's passes, changes by "
                  "outcome, journal entries and knob values.")  # fmt: skip
    @pass_obj
    def run(obj, config_path: str | None, mode: str | None, interval: float | None, passes: int,
            as_json: bool, listen: str | None) -> None:  # fmt: skip
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
        packet with it, the traffic stopped, the device left) it is rolled back too.

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
        try:
            config = _load(config_path, mode, interval, obj.host)
        except ConfigError as err:
            raise click.ClickException(str(err)) from None
        if listen:
            config.exporter.listen = listen
        lock = _lock(obj.state_dir)
        stats, server, journal = AgentStats(), None, None
        try:
            if config.exporter.listen:
                try:
                    server = serve_agent(obj.host, config.exporter, stats)
                except (OSError, ValueError, AuthFileError) as err:
                    raise click.ClickException(f"cannot serve metrics on {config.exporter.listen}: {err}") from None
                click.echo(f"irqtune: serving metrics on {server.url}", err=True)
            if config.mode == "tune":
                try:
                    journal = Journal.open(obj.state_dir, boot_id(obj.host), wait=False)
                except JournalError as err:
                    raise click.ClickException(str(err)) from None
        except click.ClickException:
            if server is not None:
                server.close()
            os.close(lock)
            raise
        signals, notifier = _Signals(), Notifier()
        signals.install()
        agent = Agent(obj.host, config, obj.state_dir, clock=time.monotonic, journal=journal)
        watcher = LinkWatcher() if obj.host.root == "/" else None
        online = None
        done = 0
        shown: set[tuple] = set()  # info findings already printed
        try:
            while not signals.stop:
                cpus = obj.host.text("sys", "devices", "system", "cpu", "online")
                if online is not None and cpus != online:
                    signals.events.append(f"CPUs online {online.strip()} -> {(cpus or '?').strip()}")
                online = cpus
                if signals.events:  # links flapped, devices or CPUs came or went: place again now
                    click.echo(f"irqtune: event: {'; '.join(signals.events)}", err=True)
                    signals.events.clear()
                    agent.placed = False
                started = time.monotonic()
                report = agent.run_pass()
                done += 1
                record(stats, report, agent, journal, time.monotonic() - started)
                line = _summary(report, config.mode)
                if as_json:
                    click.echo(json.dumps(report.to_json()))
                else:
                    click.echo(line)
                    for text in finding_lines(report, shown):
                        click.echo(printable(text))
                    for d in (*report.decisions, *report.rollbacks):
                        note = f" ({d.note})" if d.note else ""
                        click.echo(printable(f"  {d.outcome}: {d.knob} {d.current} -> {d.target}: {d.reason}{note}"))
                sys.stdout.flush()
                if done == 1:
                    notifier.ready(line)
                else:
                    notifier.status(line)
                notifier.ping()
                if passes and done >= passes:
                    break
                _sleep(config.interval, signals, notifier, watcher)
                if signals.reload:
                    signals.reload = False
                    notifier.send("RELOADING=1")
                    try:
                        reloaded = _load(config_path, mode, interval, obj.host)
                        if reloaded.mode == "tune" and journal is None:  # observe -> tune: writes need the journal
                            journal = agent.journal = Journal.open(obj.state_dir, boot_id(obj.host), wait=False)
                        agent.config = config = reloaded
                        agent.placed = False  # the rules or the mode may have changed: place again
                        click.echo(f"irqtune: reloaded {agent.config.path} ({config.mode} mode)", err=True)
                    except (ConfigError, JournalError) as err:
                        click.echo(f"irqtune: reload refused, keeping the running config: {err}", err=True)
                    notifier.send("READY=1")
        finally:
            notifier.send("STOPPING=1")
            if server is not None:
                server.close()
            if watcher:
                watcher.close()
            if journal is not None:
                if config.restore_on_exit:
                    for result in engine.restore(obj.host, journal, obj.state_dir):
                        click.echo(f"restore: {result}", err=True)
                journal.close()
            os.close(lock)


def record(stats: AgentStats, report: PassReport, agent: Agent, journal: Journal | None, seconds: float) -> None:
    """What the exporter shows about the agent, after each pass (the loop is the only writer)."""
    stats.record_pass(seconds)
    for d in (*report.decisions, *report.rollbacks):
        stats.record_change(d.outcome.replace("-", "_"), d.knob)
    stats.journal_entries = len(journal.entries) if journal is not None else None
    if journal is not None:
        stats.drifted_knobs = sum(r.outcome == engine.DRIFTED for r in engine.verify(agent.host, journal))
    stats.knob_values = dict(agent.proposer.seen)


def _sleep(seconds: float, signals: _Signals, notifier: Notifier, watcher: LinkWatcher | None = None) -> None:
    """Sleep in short slices: signals and link events end it promptly; the watchdog is pinged at half its
    period."""
    end = time.monotonic() + seconds
    ping_every = notifier.watchdog / 2 if notifier.watchdog else None
    next_ping = time.monotonic() + ping_every if ping_every else None
    while not signals.stop and not signals.reload:
        now = time.monotonic()
        if now >= end:
            return
        if next_ping and now >= next_ping:
            notifier.ping()
            next_ping = now + ping_every
        if watcher and watcher.wait(min(0.2, end - now)):
            signals.events += watcher.drain()
            if signals.events:
                return
        elif not watcher or watcher.fileno() is None:
            time.sleep(min(0.2, end - now))
