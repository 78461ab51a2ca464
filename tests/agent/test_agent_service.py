"""agent/service.py in-process: the service of `irqtune run` on a simulated host, with the simulated clock (a sleep
steps the simulation), a fake signal source, a fake link watcher, a recording notifier and output: no subprocess,
no real signal, no wall-clock wait."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import require

from irqtune.agent.notify import Notifier
from irqtune.agent.service import Service, ServiceError, load_for_host, lock
from irqtune.agent.signals import Signals
from irqtune.config import ConfigError
from irqtune.sim.kernel import SimulatedKernel
from irqtune.sim.machine import SimMachine
from irqtune.sim.scenario import load_scenario

SCENARIO = """
[host]
cpus = 4

[[nic]]
name = "eth1"
queues = 2
rx_usecs = 64
rx_frames = 256

[[phase]]
seconds = 600
nic = "eth1"
rate_pps = 1400000
"""

TUNE = 'mode = "tune"\ninterval = 1.0\n[limits]\ndwell = 0\n'


class Lines:
    """The output writer: stdout and stderr lines kept apart."""

    def __init__(self) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.flushes = 0

    def out(self, text: str) -> None:
        self.stdout.append(text)

    def err(self, text: str) -> None:
        self.stderr.append(text)

    def flush(self) -> None:
        self.flushes += 1


class Recorder(Notifier):
    """systemd's side of the notify socket: every datagram, in order."""

    def __init__(self, watchdog: float | None = None) -> None:
        super().__init__(environ={})
        self.watchdog = watchdog
        self.sent: list[tuple[str, ...]] = []

    def send(self, *fields: str) -> bool:
        self.sent.append(fields)
        return True


class Script:
    """Time for the service: the clock is the simulation's, a sleep steps it; what the test wants done after pass N
    runs in the first sleep after that pass (as a signal or an event would arrive between passes)."""

    def __init__(self, sim: SimMachine) -> None:
        self.sim = sim
        self.at: dict[int, Callable[[], None]] = {}
        self.service: Service | None = None

    def clock(self) -> float:
        return self.sim.clock

    def sleep(self, seconds: float) -> None:
        self.act()
        self.step(seconds)

    def act(self) -> None:
        """What arrives now: the action the test set for after this pass, once."""
        assert self.service is not None
        action = self.at.pop(self.service.done, None)
        if action:
            action()

    def step(self, seconds: float) -> None:
        self.sim.step(seconds, self.sim.sc.phases[0])

    def signalled(self) -> bool:
        assert self.service is not None
        return self.service.signals.stop or self.service.signals.reload


class FakeWatcher:
    """A link watcher with a socket: what the test queues is reported at the next wait."""

    def __init__(self, script: Script) -> None:
        self.script, self.pending, self.closed = script, [], False
        self.waits: list[float] = []  # the timeout of each wait

    def fileno(self) -> int | None:
        return None if self.closed else 99

    def wait(self, timeout: float, wake: int | None = None) -> bool:
        """As select() on the link socket and the signals' descriptor: what arrives now (a link message, a signal)
        ends the wait at once; else the whole timeout passes."""
        self.waits.append(timeout)
        self.script.act()
        if self.pending:
            return True
        if wake is not None and self.script.signalled():
            return False
        self.script.step(timeout)
        return False

    def drain(self) -> list[str]:
        out, self.pending = self.pending, []
        return out

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def sim(tmp_path) -> SimMachine:
    return SimMachine(load_scenario("s.toml", SCENARIO), str(tmp_path / "tree"), seed=2)


def make(sim: SimMachine, tmp_path: Path, config: str, *, passes: int = 0, watcher: bool = False, **kwargs):
    path = tmp_path / "c.toml"
    path.write_text(config)
    host = SimulatedKernel.for_root(sim.root)
    script, lines = Script(sim), Lines()
    signals = Signals(stop=(signal.SIGTERM, signal.SIGINT), reload=(signal.SIGHUP,))
    fake = FakeWatcher(script) if watcher else None
    kwargs.setdefault("notifier", Recorder())
    service = Service(host, lambda: load_for_host(str(path), None, None, host), str(tmp_path / "state"), lines,
                      signals, clock=script.clock, sleep=script.sleep, watch_links=lambda: fake, passes=passes,
                      **kwargs)  # fmt: skip
    script.service = service
    return service, script, lines, signals, path, fake


def affinity(sim: SimMachine, irq: int) -> str:
    return Path(sim.root, f"proc/irq/{irq}/smp_affinity_list").read_text().strip()


def applied(lines: list[str], knob: str) -> list[str]:
    return [line for line in lines if line.startswith(f"  applied: {knob} ")]


def passes(lines: Lines) -> list[str]:
    return [line for line in lines.stdout if line.startswith("pass ")]


def test_sighup_with_a_bad_config_keeps_the_running_config(sim, tmp_path):
    service, script, lines, signals, path, _ = make(sim, tmp_path, "interval = 1.0\n")

    def break_and_reload() -> None:
        path.write_text('mode = "tune"\n[limits]\ndwel = 3\n')
        signals.deliver(signal.SIGHUP)

    script.at[2] = break_and_reload
    script.at[4] = lambda: signals.deliver(signal.SIGTERM)
    service.run()
    assert service.done == 4 and len(passes(lines)) == 4
    assert all("(observe)" in line for line in passes(lines))
    refused = [line for line in lines.stderr if line.startswith("irqtune: reload refused, keeping the running config")]
    assert len(refused) == 1 and "c.toml:3: limits.dwel: unknown key" in refused[0]
    assert service.config.mode == "observe" and service.config.interval == 1.0
    assert service.agent.config is service.config
    assert not os.path.exists(tmp_path / "state" / "journal.json")  # still observing: nothing was opened
    sent = service.notifier.sent
    reloading = sent.index(("RELOADING=1",))
    assert sent[reloading - 2][0].startswith("STATUS=pass 2") and sent[reloading - 1] == ("WATCHDOG=1",)
    assert sent[reloading + 1] == ("READY=1",) and sent[reloading + 2][0].startswith("STATUS=pass 3")


def test_sighup_from_observe_to_tune_opens_the_journal_and_places_again(sim, tmp_path):
    service, script, lines, signals, path, _ = make(sim, tmp_path, "interval = 1.0\n[limits]\ndwell = 0\n")

    def tune() -> None:
        path.write_text("restore_on_exit = false\n" + TUNE)
        signals.deliver(signal.SIGHUP)

    script.at[2] = tune
    script.at[4] = lambda: signals.deliver(signal.SIGTERM)
    service.run()
    assert [line.split(" (")[1].split(")")[0] for line in passes(lines)] == ["observe"] * 2 + ["tune"] * 2
    assert f"irqtune: reloaded {path} (tune mode)" in lines.stderr
    assert applied(lines.stdout, "irq/101/affinity")  # placement again, now written
    journal = json.loads((tmp_path / "state" / "journal.json").read_text())
    assert "irq/101/affinity" in journal["entries"]
    assert not any(line.startswith("restore:") for line in lines.stderr)  # restore_on_exit is off


@pytest.mark.parametrize("restore", [True, False])
def test_a_stop_ends_the_loop_and_restores_when_restore_on_exit(sim, tmp_path, restore):
    original = affinity(sim, 101)
    config = f"restore_on_exit = {str(restore).lower()}\n" + TUNE
    service, script, lines, signals, _, _ = make(sim, tmp_path, config)
    script.at[2] = lambda: signals.deliver(signal.SIGTERM)
    service.run()
    assert service.done == 2  # the stop ended the wait after pass 2; no third pass
    assert applied(lines.stdout, "irq/101/affinity")
    restored = [line for line in lines.stderr if line.startswith("restore:")]
    if restore:
        assert restored and affinity(sim, 101) == original
    else:
        assert not restored and affinity(sim, 101) != original
        assert json.loads((tmp_path / "state" / "journal.json").read_text())["entries"]
    assert service.notifier.sent[-1] == ("STOPPING=1",)
    os.close(lock(str(tmp_path / "state")))  # the lock was let go


def test_a_link_event_makes_the_next_pass_place_again(sim, tmp_path):
    """eth1 flaps and its driver resets IRQ 100's affinity: the watcher's report wakes the wait early and the next
    pass places again; without the event, tune mode does not re-place (it placed once)."""
    placed = {}
    for event in (False, True):
        tree = tmp_path / f"event-{event}"
        sim = SimMachine(load_scenario("s.toml", SCENARIO), str(tree / "tree"), seed=2)
        service, script, lines, signals, _, watcher = make(sim, tree, TUNE.replace("1.0", "5.0"), watcher=True)
        woke = {}

        def flap(sim=sim, watcher=watcher, event=event, woke=woke) -> None:
            Path(sim.root, "proc/irq/100/smp_affinity_list").write_text("0-3\n")  # what a link reset does
            woke["at"] = sim.clock
            if event:
                watcher.pending.append("'eth1' down")

        script.at[1] = flap
        script.at[2] = lambda signals=signals: signals.deliver(signal.SIGTERM)
        service.run()
        assert watcher.closed
        second = next(i for i, line in enumerate(lines.stdout) if line.startswith("pass 2 "))
        placed[event] = applied(lines.stdout[second:], "irq/100/affinity")
        if event:
            assert "irqtune: event: 'eth1' down" in lines.stderr
            assert sim.clock - woke["at"] < 1.0  # pass 2 came at once, not after the 5 s interval
        else:
            assert not any("event:" in line for line in lines.stderr)
    assert placed[True] and not placed[False]


def test_cpus_going_offline_are_an_event_once(sim, tmp_path):
    service, script, lines, signals, _, _ = make(sim, tmp_path, "interval = 1.0\n")

    def offline() -> None:
        Path(sim.root, "sys/devices/system/cpu/online").write_text("0-2\n")

    script.at[1] = offline
    script.at[3] = lambda: signals.deliver(signal.SIGTERM)
    service.run()
    assert lines.stderr.count("irqtune: event: CPUs online 0-3 -> 0-2") == 1  # once: pass 3 sees no change


def test_notify_messages_in_order(sim, tmp_path):
    service, _, lines, _, _, _ = make(sim, tmp_path, "interval = 1.0\n", passes=3)
    service.run()
    sent = service.notifier.sent
    assert sent[0][0] == "READY=1" and sent[0][1] == f"STATUS={passes(lines)[0]}" and sent[0][2].startswith("MAINPID=")
    assert sent[1:] == [("WATCHDOG=1",), (f"STATUS={passes(lines)[1]}",), ("WATCHDOG=1",),
                        (f"STATUS={passes(lines)[2]}",), ("WATCHDOG=1",), ("STOPPING=1",)]  # fmt: skip
    assert passes(lines)[0].startswith("pass 1 (observe)") and lines.flushes == 3


def test_the_watchdog_is_pinged_from_the_wait(sim, tmp_path):
    service, _, _, _, _, _ = make(sim, tmp_path, "interval = 3.0\n", passes=2, notifier=Recorder(watchdog=1.0))
    service.run()
    sent = service.notifier.sent
    between = sent[sent.index(("WATCHDOG=1",)) + 1 : next(i for i, m in enumerate(sent) if m[0].startswith("STATUS="))]
    assert len(between) >= 4 and set(between) == {("WATCHDOG=1",)}  # every half period of 1 s over a 3 s wait


def test_json_passes_one_object_a_line(sim, tmp_path):
    service, _, lines, _, _, _ = make(sim, tmp_path, "interval = 1.0\n", passes=2, as_json=True)
    service.run()
    assert [json.loads(line)["pass"] for line in lines.stdout] == [1, 2]


def test_one_service_per_state_directory(sim, tmp_path):
    first, script, _, _, _, _ = make(sim, tmp_path, "interval = 1.0\n", passes=2)
    second, _, _, _, _, _ = make(sim, tmp_path, "interval = 1.0\n", passes=1)
    refused = []

    def try_second() -> None:
        with pytest.raises(ServiceError, match=r"another irqtune run holds .*/agent\.lock") as err:
            second.run()
        refused.append(err.value)

    script.at[1] = try_second
    first.run()
    assert refused and second.done == 0 and first.done == 2
    second.run()  # the first one let go
    assert second.done == 1


def test_a_config_error_at_start_opens_nothing(sim, tmp_path):
    service, _, lines, _, _, _ = make(sim, tmp_path, 'mode = "tune"\n[[device]]\nname = "eht1"\n')
    with pytest.raises(ServiceError, match=r"c.toml:3: device\[0\].name: no device 'eht1'"):
        service.run()
    assert service.done == 0 and not lines.stdout and service.notifier.sent == []
    assert not (tmp_path / "state" / "agent.lock").exists()


def test_the_metrics_server_lives_as_long_as_the_service(sim, tmp_path):
    events = []

    class Server:
        url = "http://127.0.0.1:9/metrics"

        def close(self) -> None:
            events.append("closed")

    def serve(host, exporter, stats, state_dir):
        events.append(exporter.listen)
        assert state_dir == str(tmp_path / "state")  # the pods' held CPUs are read from there
        return Server()

    service, _, lines, _, _, _ = make(sim, tmp_path, 'interval = 1.0\n[exporter]\nlisten = "127.0.0.1:9"\n', passes=2,
                                      serve_metrics=serve)  # fmt: skip
    service.run()
    assert events == ["127.0.0.1:9", "closed"] and lines.stderr[0] == "irqtune: serving metrics on " + Server.url
    assert service.stats.passes == 2


def test_a_metrics_server_that_cannot_start_lets_the_lock_go(sim, tmp_path):
    def serve(host, exporter, stats, state_dir):
        raise OSError(98, "Address already in use")

    service, _, _, _, _, _ = make(sim, tmp_path, TUNE + '[exporter]\nlisten = "127.0.0.1:9"\n', serve_metrics=serve)
    with pytest.raises(ServiceError, match=r"cannot serve metrics on 127\.0\.0\.1:9: .*Address already in use"):
        service.run()
    os.close(lock(str(tmp_path / "state")))
    assert not (tmp_path / "state" / "journal.json").exists()


def test_the_wait_takes_the_agents_sub_samples_when_due(sim, tmp_path):
    """samples = 4 over a 2 s interval: the wait sleeps to each due time (not a slice past it) and the agent reads
    there, so the second pass sees four sub-intervals of 0.5 s."""
    service, _, _, _, _, _ = make(sim, tmp_path, "interval = 2.0\nsamples = 4\n", passes=2)
    service.run()
    burst = service.agent.bursts["eth1"]
    assert [seconds for seconds, _ in burst.parts] == pytest.approx([0.5] * 4)
    assert burst.mean_pps == pytest.approx(1_400_000, rel=0.01) and not burst.bursty


def test_sighup_with_a_config_nested_5000_deep_keeps_the_agent_running(sim, tmp_path):
    """Issue 16.7: a SIGHUP with a table 5,000 deep where a string belongs killed the agent (RecursionError while
    quoting the value in the message)."""
    service, script, lines, signals, path, _ = make(sim, tmp_path, "interval = 1.0\n")

    def nest_and_reload() -> None:
        path.write_text("interval = 1.0\nmode" + ".a" * 5000 + " = 1\n")
        signals.deliver(signal.SIGHUP)

    script.at[1] = nest_and_reload
    script.at[3] = lambda: signals.deliver(signal.SIGTERM)
    service.run()
    assert service.done == 3 and service.config.mode == "observe"
    [refused] = [line for line in lines.stderr if line.startswith("irqtune: reload refused")]
    assert "c.toml:2: mode: expected str, got {'a': {'a': {'a': {...}}}}" in refused


def test_a_reload_never_kills_the_running_agent(sim, tmp_path):
    """Issue 16.7: whatever a reload meets beyond a config error, it is refused and the agent goes on."""
    service, script, lines, signals, _, _ = make(sim, tmp_path, "interval = 1.0\n")
    first = service.load

    def load():
        if service.done:
            raise MemoryError("a config of 3.5 GB")
        return first()

    service.load = load
    script.at[1] = lambda: signals.deliver(signal.SIGHUP)
    script.at[2] = lambda: signals.deliver(signal.SIGTERM)
    service.run()
    assert service.done == 2
    assert "irqtune: reload refused, keeping the running config: MemoryError: a config of 3.5 GB" in lines.stderr


def test_thousands_of_devices_this_host_lacks_are_refused_at_once(sim, tmp_path):
    """Issue 16.7: each problem was located by scanning the file from the top (3,000 [[device]] tables: about
    10 s, 20,000: minutes, a reload that starved the agent); the message keeps the first 20."""
    path = tmp_path / "c.toml"
    path.write_text("".join(f'[[device]]\nname = "eth{i + 10}"\n' for i in range(3000)))
    host = SimulatedKernel.for_root(sim.root)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_for_host(str(path), None, None, host)
    assert time.monotonic() - started < 5
    lines = str(caught.value).splitlines()
    assert len(lines) == 21 and lines[0].startswith(f"{path}:2: device[0].name: no device 'eth10'")
    assert lines[-1] == "... and 2980 more"


def test_observe_mode_runs_without_a_lock_it_cannot_take(sim, tmp_path):
    """Issue 16.8: `run --mode observe` as non-root (or on a read-only state dir) died of a PermissionError
    while taking the lock; observing writes nothing, so it says so once and observes. A reload to tune mode
    needs the lock and is refused."""
    service, script, lines, signals, path, _ = make(sim, tmp_path, "interval = 1.0\n")
    (tmp_path / "file").write_text("")
    service.state_dir = str(tmp_path / "file" / "state")  # cannot be made: as a directory root owns

    def tune() -> None:
        path.write_text(TUNE)
        signals.deliver(signal.SIGHUP)

    script.at[1] = tune
    script.at[2] = lambda: signals.deliver(signal.SIGTERM)
    service.run()
    assert service.done == 2 and service.config.mode == "observe"
    warned = [line for line in lines.stderr if line.startswith("irqtune: warning: cannot lock ")]
    assert len(warned) == 1 and "observing without it" in warned[0]
    [refused] = [line for line in lines.stderr if line.startswith("irqtune: reload refused")]
    assert "cannot lock" in refused


def test_tune_mode_needs_the_lock_and_says_why(sim, tmp_path):
    service, *_ = make(sim, tmp_path, TUNE)
    (tmp_path / "file").write_text("")
    service.state_dir = str(tmp_path / "file" / "state")
    with pytest.raises(ServiceError, match=r"cannot lock .*/file/state/agent.lock: (Not a directory|File exists)"):
        service.run()


def test_an_idle_agent_sleeps_until_the_next_thing_due_not_in_slices(sim, tmp_path):
    """With a link watcher the wait is one select() until the next pass, sub-sample or watchdog ping (a signal or
    a link message ends it at once): an agent at a 5 s interval without sub-samples wakes once an interval, not 25
    times; with a watchdog of 4 s it wakes for the ping at 2 s too."""
    config = TUNE.replace("interval = 1.0", "interval = 5.0\nsamples = 1")
    service, script, _, signals, _, watcher = make(sim, tmp_path, config, watcher=True)
    script.at[3] = lambda: signals.deliver(signal.SIGTERM)
    service.run()
    assert watcher.waits[:2] == pytest.approx([5.0, 5.0], abs=0.05)  # the whole interval each time
    (tmp_path / "w").mkdir()
    watched, script, _, signals, _, watcher = make(sim, tmp_path / "w", config, watcher=True,
                                                   notifier=Recorder(watchdog=4.0))  # fmt: skip
    script.at[2] = lambda: signals.deliver(signal.SIGTERM)
    watched.run()
    assert max(watcher.waits) == pytest.approx(2.0, abs=0.05) and len(watcher.waits) >= 3


def test_a_real_signal_ends_a_long_wait_on_the_link_socket_at_once():
    """The signals' descriptor is in the select(): a SIGHUP sent during a 5 s wait ends it within a fraction of a
    second (Python's select retries after a handler, so without the descriptor it would sleep on)."""
    from irqtune.agent.events import LinkWatcher
    from irqtune.agent.signals import catch_signals

    watcher = LinkWatcher()
    require(watcher.fileno() is not None, "no rtnetlink socket here")
    try:
        with catch_signals(stop=(signal.SIGTERM,), reload=(signal.SIGHUP,)) as signals:
            wake = signals.wake_fd()
            start = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            previous = signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGHUP))
            try:
                woke = watcher.wait(5.0, wake=wake)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            assert time.monotonic() - start < 2.0 and not woke and signals.take_reload()
            signals.clear_wake()
            assert not watcher.wait(0.0, wake=wake)  # emptied: no stale wake-up
    finally:
        watcher.close()
