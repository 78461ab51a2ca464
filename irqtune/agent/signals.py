"""One way to take signals, for every long-running command (run, export, top, probe, simulate).

`catch_signals(stop=..., reload=..., interrupt=...)` installs handlers for the given signals, records
what arrived in a `Signals` object, and puts the previous handlers back on the way out, after an
exception too. What each command needs:

- a flag to poll or an Event to wait on (`signals.stop`, `signals.wait(timeout)`): the agent's loop,
  the exporter's server;
- a reload request (`signals.take_reload()`): the agent's SIGHUP;
- an exception that unwinds through the command's cleanup (`raise_on_stop`: `Stopped`), with the
  stop signals ignored from then on so that a second one cannot cut the cleanup short
  (`hold_on_stop`, or `signals.hold()` once the cleanup starts): top, probe's and simulate's SIGTERM;
- KeyboardInterrupt for the signals in `interrupt` (probe's Ctrl-C ends its window early), also when
  the shell started us with SIGINT ignored.

Handlers can only be set from the main thread: elsewhere nothing is installed and the object only
records what `deliver` is given (which is also how tests play a signal source without signals).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class Stopped(Exception):
    """A stop signal, raised where the command asked for it (raise_on_stop): unwinds through its cleanup."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """What arrived: stop (a flag and an Event), reload (a flag the loop takes), every signal in order."""

    def __init__(
        self,
        stop: Iterable[int] = (),
        reload: Iterable[int] = (),
        interrupt: Iterable[int] = (),
        *,
        raise_on_stop: bool = False,
        hold_on_stop: bool = False,
    ) -> None:
        self.stop_signals, self.reload_signals = tuple(stop), tuple(reload)
        self.interrupt_signals = tuple(interrupt)
        self.raise_on_stop, self.hold_on_stop = raise_on_stop, hold_on_stop
        self.stopped = threading.Event()
        self.reload = False
        self.received: list[int] = []
        self.installed = False
        self._wake: tuple[int, int] | None = None  # a pipe each signal writes a byte to (`wake_fd`)

    @property
    def handled(self) -> tuple[int, ...]:
        return (*self.stop_signals, *self.reload_signals, *self.interrupt_signals)

    @property
    def stop(self) -> bool:
        return self.stopped.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """True as soon as a stop signal arrived; False after `timeout` seconds without one."""
        return self.stopped.wait(timeout)

    def wake_fd(self) -> int:
        """A descriptor that becomes readable when a signal arrives: a loop can sleep in select() on it (with its
        other descriptors) for as long as it likes and still see a signal at once. Read it empty with
        `clear_wake`; closed with `close`."""
        if self._wake is None:
            self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        return self._wake[0]

    def clear_wake(self) -> None:
        if self._wake is not None:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake[0], 64):
                    pass

    def close(self) -> None:
        if self._wake is not None:
            for fd in self._wake:
                os.close(fd)
            self._wake = None

    def take_reload(self) -> bool:
        """Whether a reload was asked for since the last call."""
        asked, self.reload = self.reload, False
        return asked

    def hold(self) -> None:
        """From here on the cleanup runs to its end: the handled signals are ignored until the handlers are put
        back."""
        if self.installed:
            for sig in self.handled:
                signal.signal(sig, signal.SIG_IGN)

    def deliver(self, signum: int, frame: object = None) -> None:
        """The handler: what `signum` means here (also callable directly, as a fake signal source)."""
        self.received.append(signum)
        if self._wake is not None:
            with contextlib.suppress(OSError):  # full (a burst of signals): it is readable already
                os.write(self._wake[1], b"\0")
        if signum in self.reload_signals:
            self.reload = True
        elif signum in self.interrupt_signals:
            raise KeyboardInterrupt
        elif signum in self.stop_signals:
            self.stopped.set()
            if self.hold_on_stop:
                self.hold()
            if self.raise_on_stop:
                raise Stopped(signum)


@contextmanager
def catch_signals(
    stop: Iterable[int] = (),
    reload: Iterable[int] = (),
    interrupt: Iterable[int] = (),
    *,
    raise_on_stop: bool = False,
    hold_on_stop: bool = False,
) -> Iterator[Signals]:
    """Handlers for these signals while the block runs; the previous ones are back afterwards (also when the
    block, or a handler, raised)."""
    signals = Signals(stop, reload, interrupt, raise_on_stop=raise_on_stop, hold_on_stop=hold_on_stop)
    if threading.current_thread() is not threading.main_thread():
        try:
            yield signals  # handlers can only be set from the main thread
        finally:
            signals.close()
        return
    previous: dict[int, object] = {}
    try:
        signals.installed = True
        for sig in signals.handled:  # inside the try: a handler that raises at once still has them put back
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, signals.deliver)
        yield signals
    finally:
        signals.installed = False
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        signals.close()
