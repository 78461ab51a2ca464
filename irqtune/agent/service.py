"""The agent as a service (`irqtune run`): what runs around the loop's passes.

One agent per state directory (an flock held for the service's life); a pass every `interval` seconds,
or at once when a link goes up or down, a device comes or goes (the link watcher) or the set of online
CPUs changes, with placement again; SIGHUP reloads the config (a config with an error is refused and the
running one kept; observe -> tune opens the journal); the systemd notify protocol (READY after the first
pass, STATUS after each, WATCHDOG from the loop, RELOADING/READY around a reload, STOPPING at the end);
the metrics server for the service's life; and on the way out, what this agent changed is put back when
restore_on_exit is set.

Everything it touches comes in: the host, the config loader, the state directory, the clock and the
sleep, the output writer, the notifier, the link watcher, the signal source and the metrics server. So
the same service runs in a terminal, under systemd, and in-process in a test on a simulated host with a
simulated clock. It never exits the process: a failure to start is a ServiceError (the command's exit 1).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from typing import Protocol

from .. import DEFAULT_CONFIG
from ..act import engine
from ..act.journal import Journal, JournalError
from ..config import Config, ConfigError, check_host, load_config
from ..export import AgentStats, serve_agent  # the package loads its server and prometheus_client when serving
from ..findings import SEVERITY_ORDER
from ..host import Host
from ..measure.known import known_names
from ..parse.common import brief_text, printable
from ..statedir import StateDirError, boot_id, open_lock
from .events import LinkWatcher
from .loop import Agent, PassReport
from .notify import Notifier

LOCK_FILE = "agent.lock"
SLICE = 0.2  # seconds: how promptly a wait without a link watcher (sleeping) sees a signal
MAX_PROBLEMS = 20  # lines of a config's problems with this host: the first ones, then how many more


class ServiceError(Exception):
    """The service cannot start: the config has an error, another agent holds the state directory, the
    metrics server or the journal cannot be opened. Nothing is left open."""


class LockHeld(ServiceError):
    """Another agent holds the state directory's lock."""


class Output(Protocol):
    """Where the service's lines go: each pass on stdout (`out`), events, reloads and restores on stderr."""

    def out(self, text: str) -> None: ...

    def err(self, text: str) -> None: ...

    def flush(self) -> None: ...


class SignalSource(Protocol):
    """What arrived (agent.signals.Signals): a stop, a reload the loop takes once."""

    reload: bool  # asked for and not taken yet

    @property
    def stop(self) -> bool: ...

    def take_reload(self) -> bool: ...

    def wake_fd(self) -> int: ...  # readable once a signal arrived (for select)

    def clear_wake(self) -> None: ...


def load_for_host(path: str | None, mode: str | None, interval: float | None, host: Host) -> Config:
    """The config, checked against this host: a device or CPU it lacks (a typo) is refused, not ignored.
    `mode` and `interval` (the command line's) override the file's."""
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    config = load_config(path) if path else Config()
    problems = check_host(config, known_names(host))
    if problems:
        more = [f"... and {len(problems) - MAX_PROBLEMS} more"] if len(problems) > MAX_PROBLEMS else []
        raise ConfigError("\n".join(problems[:MAX_PROBLEMS] + more))
    if mode:
        config.mode = mode
    if interval:
        config.interval = interval
    return config


def lock(state_dir: str) -> int:
    """One agent per state directory (per host): an flock held for the agent's life (close the fd to let go).
    A directory that cannot be made or written (not root, read-only) is a ServiceError saying so."""
    try:
        fd = open_lock(state_dir, LOCK_FILE)
    except StateDirError as err:
        if err.errno == errno.ELOOP:  # a symlink: the lock would be at its target
            raise ServiceError(err.strerror) from None
        raise ServiceError(f"cannot lock {state_dir}/{LOCK_FILE}: {os.strerror(err.errno)} (root needed?)") from None
    except OSError as err:
        raise ServiceError(f"cannot lock {state_dir}/{LOCK_FILE}: {err.strerror or err} (root needed?)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockHeld(f"another irqtune run holds {state_dir}/{LOCK_FILE}") from None
    return fd


def summary(report: PassReport, mode: str) -> str:
    """A pass in one line (also the STATUS= systemd shows)."""
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
    for f in sorted(report.findings, key=lambda f: SEVERITY_ORDER.get(f["severity"], len(SEVERITY_ORDER))):
        key = (f["code"], f.get("device"), f.get("irq"), f.get("cpu"))
        if f["severity"] == "info" and key in shown:
            continue
        shown.add(key)
        lines.append(f"  {f['severity']} {f['code']}: {f['message']}")
    return lines


def record(stats: AgentStats, report: PassReport, agent: Agent, journal: Journal | None, seconds: float) -> None:
    """What the exporter shows about the agent, after each pass (the loop is the only writer)."""
    stats.record_pass(seconds)
    for d in (*report.decisions, *report.rollbacks):
        stats.record_change(d.outcome.replace("-", "_"), d.knob)
    stats.journal_entries = len(journal.entries) if journal is not None else None
    if journal is not None:
        stats.drifted_knobs = sum(r.outcome == engine.DRIFTED for r in engine.verify(agent.host, journal))
    stats.knob_values = dict(agent.proposer.seen)
    for check in report.checks:
        stats.predictions[check["knob"]] = check
        if check.get("miss") and check.get("device"):
            stats.misses[check["device"]] = stats.misses.get(check["device"], 0) + 1
    stats.models = {device: agent.proposer.model_json(device) for device in agent.proposer.models}


class Service:
    """`run()` once: start (config, lock, metrics server, journal), passes until a stop (or `passes` done), stop
    (notify, close, restore, unlock)."""

    def __init__(
        self,
        host: Host,
        load: Callable[[], Config],
        state_dir: str,
        output: Output,
        signals: SignalSource,
        *,
        notifier: Notifier | None = None,
        watch_links: Callable[[], LinkWatcher | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        serve_metrics: Callable = serve_agent,
        passes: int = 0,
        as_json: bool = False,
    ) -> None:
        self.host, self.load, self.state_dir, self.output, self.signals = host, load, state_dir, output, signals
        self.notifier = notifier if notifier is not None else Notifier()
        self.watch_links, self.clock, self.sleep, self.serve_metrics = watch_links, clock, sleep, serve_metrics
        self.passes, self.as_json = passes, as_json
        self.config = Config()
        self.agent: Agent | None = None
        self.journal: Journal | None = None
        self.watcher: LinkWatcher | None = None
        self.server = None
        self.stats = AgentStats()
        self.done = 0  # passes run
        self.events: list[str] = []  # what happened since the last pass (links, devices, CPUs)
        self.online: str | None = None  # the online CPUs at the last pass
        self.shown: set[tuple] = set()  # info findings already printed
        self.warned: set[str] = set()  # malformed input already named (once a run: a pass every few seconds)
        self.malformed = False  # some pass met malformed input (run --passes exits 3, as status does)
        self._lock: int | None = None

    def run(self) -> None:
        self.start()
        try:
            while not self.signals.stop:
                self.run_pass()
                if self.passes and self.done >= self.passes:
                    break
                self.wait(self.config.interval)
                if self.signals.take_reload():
                    self.reload()
        finally:
            self.stop()

    def start(self) -> None:
        """The config, the lock, the metrics server, the journal (tune mode): a ServiceError leaves none open."""
        try:
            self.config = self.load()
        except ConfigError as err:
            raise ServiceError(str(err)) from None
        self._lock = self._take_lock(self.config.mode)
        try:
            if self.config.exporter.listen:
                from ..export import AuthFileError

                try:
                    self.server = self.serve_metrics(self.host, self.config.exporter, self.stats, self.state_dir)
                except (OSError, ValueError, AuthFileError) as err:
                    raise ServiceError(f"cannot serve metrics on {self.config.exporter.listen}: {err}") from None
                self.output.err(f"irqtune: serving metrics on {self.server.url}")
            if self.config.mode == "tune":
                self.journal = self._open_journal()
            self.agent = Agent(self.host, self.config, self.state_dir, clock=self.clock, journal=self.journal)
            self.watcher = self.watch_links()
        except BaseException:
            self._close()
            raise

    def run_pass(self) -> PassReport:
        """One pass (placement again first when something happened), printed, recorded and notified."""
        assert self.agent is not None, "start() first"
        self._note_cpus()
        if self.events:  # links flapped, devices or CPUs came or went: place again now
            self.output.err(f"irqtune: event: {'; '.join(self.events)}")
            self.events.clear()
            self.agent.placed = False
        started = self.clock()
        report = self.agent.run_pass()
        self.done += 1
        record(self.stats, report, self.agent, self.journal, self.clock() - started)
        line = summary(report, self.config.mode)
        self._warn(report)
        self._print(report, line)
        if self.done == 1:
            self.notifier.ready(line)
        else:
            self.notifier.status(line)
        self.notifier.ping()
        return report

    def wait(self, seconds: float) -> None:
        """Until the next pass. With a link watcher it sleeps in select() on the link socket and the signals'
        descriptor until the next thing due (the pass, a sub-sample, the watchdog's ping at half its period), so
        a signal or a link event ends it at once and an idle agent wakes only when there is work; without one
        (no rtnetlink) in SLICE-long sleeps."""
        end = self.clock() + seconds
        ping_every = self.notifier.watchdog / 2 if self.notifier.watchdog else None
        next_ping = self.clock() + ping_every if ping_every else None
        watching = self.watcher is not None and self.watcher.fileno() is not None
        wake = self.signals.wake_fd() if watching else None
        while not self.signals.stop and not self.signals.reload:
            now = self.clock()
            if now >= end:
                return
            if next_ping and now >= next_ping:
                self.notifier.ping()
                next_ping = now + ping_every
            if self.agent is not None:
                self.agent.sample()
            due = self.agent.next_sample if self.agent is not None else None
            step = end - now if watching else min(SLICE, end - now)
            for at in (due, next_ping):
                if at is not None:
                    step = min(step, max(0.0, at - now))
            if watching:
                self.signals.clear_wake()
                if self.watcher.wait(step, wake=wake):
                    self.events += self.watcher.drain()
                    if self.events:
                        return
            else:
                self.sleep(step)

    def reload(self) -> bool:
        """SIGHUP: the config read again; one with an error is refused and the running one kept. True if taken."""
        assert self.agent is not None, "start() first"
        self.notifier.send("RELOADING=1")
        taken = False
        try:
            reloaded = self.load()
            if reloaded.mode == "tune" and self._lock is None:  # observing without the lock: tuning needs it
                self._lock = lock(self.state_dir)
            if reloaded.mode == "tune" and self.journal is None:  # observe -> tune: writes need the journal
                self.journal = self.agent.journal = Journal.open(self.state_dir, boot_id(self.host), wait=False)
            self.agent.config = self.config = reloaded
            self.agent.placed = False  # the rules or the mode may have changed: place again
            self.output.err(f"irqtune: reloaded {self.config.path} ({self.config.mode} mode)")
            taken = True
        except (ConfigError, JournalError, ServiceError) as err:
            self.output.err(f"irqtune: reload refused, keeping the running config: {err}")
        except Exception as err:  # whatever else a reload meets, the running agent goes on
            why = f"{type(err).__name__}: {brief_text(str(err), 200)}"
            self.output.err(f"irqtune: reload refused, keeping the running config: {why}")
        self.notifier.send("READY=1")
        return taken

    def stop(self) -> None:
        """STOPPING, then the server and the watcher closed, what this agent changed put back (restore_on_exit),
        the journal closed and the lock let go."""
        self.notifier.send("STOPPING=1")
        self._close(restore=self.config.restore_on_exit)

    def _close(self, restore: bool = False) -> None:
        try:
            if self.server is not None:
                self.server.close()
                self.server = None
            if self.watcher is not None:
                self.watcher.close()
                self.watcher = None
            if self.journal is not None:
                if restore:
                    for result in engine.restore(self.host, self.journal, self.state_dir):
                        self.output.err(f"restore: {result}")
                self.journal.close()
                self.journal = None
        finally:
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None

    def _take_lock(self, mode: str) -> int | None:
        """The state directory's lock; in observe mode, which writes nothing, a directory this user cannot write
        (not root, read-only) is said once and the agent observes without it (None). Another agent holding it
        stops this one whatever the mode."""
        try:
            return lock(self.state_dir)
        except ServiceError as err:
            if mode != "observe" or isinstance(err, LockHeld):
                raise
            self.output.err(f"irqtune: warning: {err}; observing without it (tune mode will need it)")
            return None

    def _open_journal(self) -> Journal:
        try:
            return Journal.open(self.state_dir, boot_id(self.host), wait=False)
        except JournalError as err:
            raise ServiceError(str(err)) from None

    def _note_cpus(self) -> None:
        cpus = self.host.text("sys", "devices", "system", "cpu", "online")
        if self.online is not None and cpus != self.online:
            self.events.append(f"CPUs online {self.online.strip()} -> {(cpus or '?').strip()}")
        self.online = cpus

    def _warn(self, report: PassReport) -> None:
        """Malformed input on stderr as `status` names it, each problem once a run."""
        self.malformed = self.malformed or bool(report.problems)
        fresh = [text for text in dict.fromkeys(str(p) for p in report.problems) if text not in self.warned]
        for text in fresh[:MAX_PROBLEMS]:
            self.output.err(f"irqtune: warning: {printable(text)}")
        if len(fresh) > MAX_PROBLEMS:
            self.output.err(f"irqtune: warning: ... and {len(fresh) - MAX_PROBLEMS} more problems")
        self.warned.update(fresh)

    def _print(self, report: PassReport, line: str) -> None:
        if self.as_json:
            self.output.out(json.dumps(report.to_json()))
        else:
            self.output.out(line)
            for text in finding_lines(report, self.shown):
                self.output.out(printable(text))
            for d in (*report.pins, *report.decisions, *report.rollbacks):
                note = f" ({d.note})" if d.note else ""
                self.output.out(printable(f"  {d.outcome}: {d.knob} {d.current} -> {d.target}: {d.reason}{note}"))
        self.output.flush()
