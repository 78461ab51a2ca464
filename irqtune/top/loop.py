"""The refresh loops of `irqtune top`: plain blocks for pipes, a rich Live screen with keys for terminals.

Keys are read without blocking: stdin in cbreak mode (no echo, no line buffering,
Ctrl-C still a signal) and `select` with the time left until the next reading as
timeout, so a key redraws at once and readings stay one delay apart. The terminal's
settings are restored in a `finally`, whatever ends the loop.
"""

from __future__ import annotations

import itertools
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable
from contextlib import suppress
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live

from .model import SORT_KEYS
from .render import plain_block, rich_frame
from .sample import Banner, Sample, Sampler

QUIT_KEYS = frozenset("qQ")


class Keys:
    """Single key presses from a terminal on stdin; without one, waiting is just sleeping."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = stream or sys.stdin
        self.fd = stream.fileno() if stream.isatty() else None  # None once input ends
        self._tty = self.fd
        self._saved: list | None = None
        self.hung_up = False  # the terminal went away: nobody is left to watch

    def __enter__(self) -> Keys:
        if self._tty is not None:
            self._saved = termios.tcgetattr(self._tty)
            tty.setcbreak(self._tty, termios.TCSANOW)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            with suppress(termios.error, OSError):  # the terminal went away (SIGHUP): nothing left to restore
                termios.tcsetattr(self._tty, termios.TCSADRAIN, self._saved)
            self._saved = None

    def wait(self, timeout: float) -> str:
        """Keys pressed within `timeout` seconds ('' when none); returns at the first press."""
        if self.fd is None:
            time.sleep(max(0.0, timeout))
            return ""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return ""
        data = os.read(self.fd, 64)
        if not data:  # end of input on a terminal in cbreak mode (Ctrl-D is a plain key here): a hang-up
            self.fd, self.hung_up = None, True
            return ""
        text = data.decode("utf-8", "replace")
        return "" if text.startswith("\x1b") else text  # arrows, function keys: escape sequences, ignored


def run_plain(sampler: Sampler, sort: str, delay: float, iterations: int | None, top: int | None,
              write: Callable[[str], None]) -> None:  # fmt: skip
    """Print one block per reading until `iterations` (forever when None)."""
    for _ in range(iterations) if iterations else itertools.count():
        time.sleep(max(0.0, sampler.due(delay) - time.monotonic()))
        write(plain_block(sampler.banner, sampler.sample(), sort, top))


def run_live(start: Callable[[], Sampler], sort: str, delay: float, iterations: int | None, top: int | None,
             console: Console, keys: Keys, loading: str) -> None:  # fmt: skip
    """The terminal screen until q (or `iterations`); `start` loads the probe behind a "loading" screen."""
    banner = Banner("-", "-", loading)
    sample: Sample | None = None

    def frame() -> RenderableType:
        return rich_frame(banner, sample, sort, console.size.height, top)

    with Live(frame(), console=console, screen=True, auto_refresh=False, redirect_stdout=False,
              redirect_stderr=False) as live:  # fmt: skip
        live.refresh()
        sampler = start()
        banner = sampler.banner
        live.update(frame(), refresh=True)
        count = 0
        while iterations is None or count < iterations:
            pressed = keys.wait(sampler.due(delay) - time.monotonic())
            if keys.hung_up or QUIT_KEYS & set(pressed):
                break
            for key in pressed:
                sort = SORT_KEYS.get(key.lower(), sort)
            if time.monotonic() >= sampler.due(delay):
                sample = sampler.sample()
                count += 1
            live.update(frame(), refresh=True)
