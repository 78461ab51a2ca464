"""What every command shares: exit codes and how malformed input is reported (one line per problem)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import click

EXIT_OK = 0
EXIT_ERROR = 1  # also what click.ClickException exits with
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_NO_EBPF = 4
EXIT_DRIFT = 5
MAX_PROBLEM_LINES = 20


def report_problems(problems: Iterable[object]) -> int:
    """Each distinct problem once on stderr (FILE:LINE: what), at most MAX_PROBLEM_LINES; EXIT_PARTIAL if any."""
    shown = list(dict.fromkeys(str(p) for p in problems))
    for problem in shown[:MAX_PROBLEM_LINES]:
        click.echo(f"irqtune: warning: {problem}", err=True)
    if len(shown) > MAX_PROBLEM_LINES:
        click.echo(f"irqtune: warning: ... and {len(shown) - MAX_PROBLEM_LINES} more problems", err=True)
    return EXIT_PARTIAL if shown else EXIT_OK


class FiniteRange(click.FloatRange):
    """click.FloatRange without nan (every comparison with nan is false, so the range let it through: an
    interval of nan seconds never ended) or infinity, whatever the bounds."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number", param, ctx)
        return number
