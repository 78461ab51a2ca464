"""agent/signals.py: the one signal set-up of run, export, top, probe and simulate, in-process (real signals sent
to this process with signal.raise_signal; SIGUSR1/SIGUSR2 where the meaning does not matter)."""

from __future__ import annotations

import signal
import threading

import pytest

from irqtune.agent.signals import Signals, Stopped, catch_signals


def handlers(*sigs: int) -> list:
    return [signal.getsignal(sig) for sig in sigs]


@pytest.fixture
def previous():
    """SIGUSR1/SIGUSR2 with recognisable handlers of the test's own, put back after it."""
    mine = {signal.SIGUSR1: lambda *_: None, signal.SIGUSR2: signal.SIG_IGN}
    saved = {sig: signal.signal(sig, handler) for sig, handler in mine.items()}
    yield mine
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_stop_sets_the_flag_and_the_event_and_the_handlers_come_back(previous):
    with catch_signals(stop=(signal.SIGUSR1,), reload=(signal.SIGUSR2,)) as signals:
        assert handlers(signal.SIGUSR1, signal.SIGUSR2) == [signals.deliver, signals.deliver]
        assert not signals.stop and not signals.wait(0)
        signal.raise_signal(signal.SIGUSR1)
        assert signals.stop and signals.wait(0) and signals.received == [signal.SIGUSR1]
        assert not signals.reload
    assert handlers(signal.SIGUSR1, signal.SIGUSR2) == list(previous.values())


def test_a_reload_is_taken_once(previous):
    with catch_signals(stop=(signal.SIGUSR1,), reload=(signal.SIGUSR2,)) as signals:
        signal.raise_signal(signal.SIGUSR2)
        assert not signals.stop
        assert signals.take_reload() and not signals.take_reload()
        signal.raise_signal(signal.SIGUSR2)
        assert signals.reload and signals.received == [signal.SIGUSR2, signal.SIGUSR2]


def test_handlers_come_back_after_an_exception(previous):
    with pytest.raises(RuntimeError), catch_signals(stop=(signal.SIGUSR1,), reload=(signal.SIGUSR2,)):
        raise RuntimeError("the command failed")
    assert handlers(signal.SIGUSR1, signal.SIGUSR2) == list(previous.values())


def test_raise_on_stop_unwinds_and_hold_ignores_a_second_signal(previous):
    cleaned = []
    both = (signal.SIGUSR1, signal.SIGUSR2)
    with pytest.raises(Stopped) as stopped, catch_signals(stop=both, raise_on_stop=True, hold_on_stop=True) as signals:
        try:
            signal.raise_signal(signal.SIGUSR1)
        finally:
            assert handlers(signal.SIGUSR1, signal.SIGUSR2) == [signal.SIG_IGN, signal.SIG_IGN]  # held
            signal.raise_signal(signal.SIGUSR2)  # ignored: the cleanup runs to its end
            cleaned.append(True)
    assert stopped.value.signum == signal.SIGUSR1 and cleaned and signals.received == [signal.SIGUSR1]
    assert handlers(signal.SIGUSR1, signal.SIGUSR2) == list(previous.values())


def test_hold_ignores_the_handled_signals_until_the_end(previous):
    with catch_signals(stop=(signal.SIGUSR1,), raise_on_stop=True) as signals:
        signals.hold()
        signal.raise_signal(signal.SIGUSR1)  # would raise Stopped without the hold
        assert signals.received == []
    assert handlers(signal.SIGUSR1) == [previous[signal.SIGUSR1]]


def test_an_interrupt_signal_raises_keyboard_interrupt_even_when_it_was_ignored(previous):
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # as a shell starts a background job's SIGINT
    with pytest.raises(KeyboardInterrupt), catch_signals(stop=(signal.SIGUSR1,), interrupt=(signal.SIGUSR2,)):
        signal.raise_signal(signal.SIGUSR2)
    assert handlers(signal.SIGUSR2) == [signal.SIG_IGN]


def test_sigint_as_a_stop_is_not_keyboard_interrupt(previous):
    before = signal.getsignal(signal.SIGINT)
    with catch_signals(stop=(signal.SIGINT, signal.SIGTERM)) as signals:
        signal.raise_signal(signal.SIGINT)
        assert signals.stop
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_the_main_thread_nothing_is_installed(previous):
    seen = {}

    def body() -> None:
        with catch_signals(stop=(signal.SIGUSR1,), raise_on_stop=True) as signals:
            seen["handler"] = signal.getsignal(signal.SIGUSR1)
            seen["installed"] = signals.installed

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == {"handler": previous[signal.SIGUSR1], "installed": False}


def test_deliver_is_a_fake_signal_source():
    """What the service's tests use: no handler installed, the same meaning."""
    signals = Signals(stop=(signal.SIGTERM,), reload=(signal.SIGHUP,))
    signals.deliver(signal.SIGHUP)
    assert signals.reload and not signals.stop
    signals.deliver(signal.SIGTERM)
    assert signals.stop and signals.received == [signal.SIGHUP, signal.SIGTERM]
    signals.hold()  # nothing installed: nothing to ignore
    assert signal.getsignal(signal.SIGTERM) is not signals.deliver
