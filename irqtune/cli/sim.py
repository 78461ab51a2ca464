"""`irqtune simulate`: run a scenario on simulated hardware under a policy."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click

from ..agent.signals import Stopped, catch_signals
from ..parse.common import brief
from ..sim.scenario import library
from ..table import table

POLICY_HELP = (
    "How the simulated NICs and NVMe devices are tuned: defaults (the driver's), static:SPEC "
    "(latency, throughput, dumazet, suspend20, or key=value,... with rx-usecs, rx-frames, defer, "
    "gro-flush, suspend), dim, aim, always-poll, oracle (best setting per phase, knowing the "
    "future), oracle-static, irqtune."
)


def _duration(text: str) -> float:
    """--duration: seconds (60s) or minutes (2m), finite, from a millisecond to MAX_SECONDS (a scenario's own)."""
    from ..sim.scenario import MAX_SECONDS

    value = text.strip().lower()
    scale = 60.0 if value.endswith("m") else 1.0
    value = value.rstrip("sm")
    try:
        seconds = float(value) * scale
    except ValueError:
        raise click.BadParameter(
            f"expected a duration like 60s or 2m, got {brief(text)}", param_hint="--duration"
        ) from None
    if not 0.001 <= seconds <= MAX_SECONDS:  # nan too
        raise click.BadParameter(f"expected 1ms to {MAX_SECONDS:,.0f}s, got {brief(text)}", param_hint="--duration")
    return seconds


def _check_output(path: str | None) -> None:
    """--output's directory exists and takes a new file: checked before a run of minutes, not after it."""
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise click.BadParameter(f"{directory}: no such directory", param_hint="--output")
    try:  # a file made and gone at once: access() says yes to root, where /proc or a read-only mount says no
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise click.BadParameter(f"{directory}: cannot write there ({err.strerror})", param_hint="--output") from None


EXIT_HELP = """
\b
Exit status:
  0  the scenario ran
  1  the scenario file has an error (FILE:LINE: key: what), the policy is unknown,
     or --tree is not a new or empty directory or a simulated tree, or a file in it
     is not the simulator's (a symlink or hard link planted there is never followed)
  2  usage error (unknown option, bad --duration or --speed, an --output
     directory that does not exist or cannot be written: checked before the run)
  143  stopped by SIGTERM (the temporary tree removed)
"""


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While a simulation runs, SIGTERM unwinds through the cleanup (the temporary tree is removed: the default
    action would not) and exits 128 + SIGTERM."""
    try:
        with catch_signals(stop=(signal.SIGTERM,), raise_on_stop=True):
            yield
    except Stopped:
        click.echo("irqtune: terminated", err=True)
        sys.exit(128 + signal.SIGTERM)


@contextmanager
def _sim_tree(tree: str | None) -> Iterator[str]:
    """Where the simulated host is rendered: `--tree` is kept; a temporary tree is removed on every exit
    (done, an error, Ctrl-C, SIGTERM), else each run leaves its /proc and /sys behind in /tmp."""
    if tree:
        yield tree
        return
    directory = tempfile.mkdtemp(prefix="irqtune-sim-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@click.command(epilog=EXIT_HELP)
@click.argument("scenarios", nargs=-1, metavar="SCENARIO")
@click.option("--score", is_flag=True, help="The scorecard: run the SCENARIOs (default: the whole library) "
              "under defaults, dim, aim, oracle-static, oracle and irqtune, and print the worst phase's settled "
              "and whole p99, CPU, interrupts/s, drops and the normalised score (1 = dynamic oracle, "
              "0 = defaults).")  # fmt: skip
@click.option("--policy", default="defaults", show_default=True, metavar="POLICY", help=POLICY_HELP)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed for arrivals and counter noise: "
              "same seed, same result.")  # fmt: skip
@click.option("--duration", metavar="TIME", help="Stretch or shrink the phases to this much simulated time "
              "in all (e.g. 60s, 2m). Default: the scenario's own.")  # fmt: skip
@click.option("--speed", default="max", show_default=True, metavar="max|N",
              help="max: as fast as possible; N: N simulated seconds per wall-clock second (watch it with "
              "irqtune --root TREE status).")  # fmt: skip
@click.option("--tree", type=click.Path(file_okay=False), help="Where to render the simulated /proc and /sys "
              "(point irqtune --root at it): a new or empty directory, or one a simulation rendered before. "
              "Default: a temporary directory, removed when the run ends (also on an error, Ctrl-C or "
              "SIGTERM).")  # fmt: skip
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Also write the full result (JSON, with "
              "every interval and every change) to this file.")  # fmt: skip
@click.option("--progress/--no-progress", default=None, help="One line per simulated second on stderr "
              "(default: when stderr is a terminal).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def simulate(scenarios: tuple[str, ...], score: bool, policy: str, seed: int, duration: str | None, speed: str,
             tree: str | None, output: str | None, progress: bool | None, as_json: bool) -> None:  # fmt: skip
    """Run SCENARIO (a TOML file, or a library name) on simulated hardware and time.

    With --score, run the scorecard instead (see --score).

    The simulated host's /proc and /sys are rendered under --tree in the kernel's formats
    and step through the scenario's phases on a simulated clock, one control interval
    (1 s) at a time; the policy acts through irqtune's knobs and journal before each.
    Prints, per phase: offered and delivered packets/s, interrupts/s, CPUs spent on
    interrupt handling, mean and p99/p99.9 latency (µs), the settled p99 (from the
    policy's first change in the phase, else its second interval), drops, time_squeeze;
    NVMe devices on their own lines; under --policy irqtune, what the agent reported
    (findings and advice, the probe-based ones from the simulated probes), each when it
    first appeared. An error in the scenario file is refused with the file, line and key
    (exit 1).

    \b
    Library (irqtune/sim/scenarios):
    """
    _check_output(output)
    if score:
        _scorecard(scenarios, seed, _duration(duration) if duration else None, output, as_json)
        return
    if len(scenarios) != 1:
        raise click.UsageError("give one SCENARIO (or --score for several)")
    from ..sim.run import to_json

    spec, chosen = _scenario_and_policy(scenarios[0], policy, duration)
    pace = _pace(speed)
    show = sys.stderr.isatty() if progress is None else progress
    results, trace, changes = run_simulation(spec, chosen, seed, tree, pace, show)
    full = {**to_json(results, seed, chosen.name, trace, changes), "scenario": spec.path, "tree": tree}
    if chosen.findings:  # the agent's findings and advice, each when it first appeared
        full["findings"] = list(chosen.findings)
    if output:
        _write_json(output, full)
    if as_json:
        click.echo(json.dumps({k: v for k, v in full.items() if k != "intervals"}, indent=1))
        return
    _print_phases(spec, chosen.name, seed, results)
    for line in chosen.findings:
        click.echo(f"reported: {line}")
    click.echo(f"changes: {len(changes)}; tree: {tree or 'removed (keep one with --tree DIR)'}")


def _scenario_and_policy(scenario: str, policy: str, duration: str | None):
    """The scenario (its phases stretched to --duration) and the policy; an error in either is exit 1."""
    from ..sim.policy import PolicyError, make_policy
    from ..sim.scenario import ScenarioError, load_scenario, resolve

    try:
        spec = load_scenario(resolve(scenario))
        chosen = make_policy(policy)
    except (ScenarioError, PolicyError) as err:
        raise click.ClickException(str(err)) from None
    if duration:
        scale = _duration(duration) / spec.seconds
        for phase in spec.phases:
            phase.seconds *= scale
        if min(phase.seconds for phase in spec.phases) < 0.001:
            raise click.BadParameter("a phase would last under a millisecond", param_hint="--duration")
    return spec, chosen


def run_simulation(spec, chosen, seed: int, tree: str | None, pace: float | None, show: bool):
    """The scenario on its own tree (removed afterwards unless --tree, SIGTERM included), paced to `pace`
    simulated seconds per second (None: as fast as possible), a progress line per interval when `show`.
    Returns run_scenario's (results, trace, changes)."""
    from ..sim.run import run_scenario

    started = time.monotonic()

    def on_interval(record) -> None:
        if pace:
            ahead = record.t / pace - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        if show:
            settings = " ".join(f"{k}={v}" for k, v in record.settings.items())
            click.echo(f"t={record.t:6.1f}s {record.phase:<14} offered {record.offered_pps:12,.0f}/s  "
                       f"irq {record.irq_rate:10,.0f}/s  cpu {record.cpu:5.2f}  mean "
                       f"{record.mean_latency_us:9.1f} us  {settings}", err=True)  # fmt: skip

    from ..sim.tree import TreeError

    with _sigterm_unwinds(), _sim_tree(tree) as directory:
        try:
            return run_scenario(spec, directory, seed=seed, policy=chosen, on_interval=on_interval,
                                state_dir=os.path.join(directory, ".irqtune-state"))  # fmt: skip
        except TreeError as err:
            raise click.ClickException(err.strerror) from None


def _print_phases(spec, policy: str, seed: int, results) -> None:
    from ..sim.objective import nic_weights, scenario_cost

    rows = [(r.name, f"{r.seconds:g}", f"{r.offered_pps:,.0f}", f"{r.delivered_pps:,.0f}", f"{r.irq_rate:,.0f}",
             f"{r.cpu:.2f}", _us(r.mean_latency_us), _us(r.p99_us), _us(r.settled_p99_us), _us(r.p999_us),
             f"{r.dropped_pps:,.0f}", f"{r.time_squeeze:,.0f}") for r in results]  # fmt: skip
    header = ("PHASE", "SECONDS", "OFFERED/s", "DELIVERED/s", "IRQ/s", "CPU", "MEAN-us", "P99-us", "SETTLED-P99-us",
              "P99.9-us", "DROPPED/s", "SQUEEZE/s")  # fmt: skip
    objective = scenario_cost(results, weights=nic_weights(spec))
    click.echo(f"policy {policy}, seed {seed}, objective {objective:,.1f} (mean µs + each NIC goal's "
               "price of a CPU, 100 µs when balanced, + drops; lower is better)")  # fmt: skip
    if spec.nics:
        click.echo("\n".join(table(header, rows)))
    nvme = [(r.name, dev, v["mode"], f"{v['iops']:,.0f}", _us(v["mean_latency_us"]), _us(v["p99_us"]),
             _us(v.get("settled_p99_us", v["p99_us"])), f"{v['cpu']:.2f}", f"{v['irq_rate']:,.0f}")
            for r in results for dev, v in r.nvme.items()]  # fmt: skip
    if nvme:
        click.echo("\n".join(table(("PHASE", "NVME", "MODE", "IOPS", "MEAN-us", "P99-us", "SETTLED-P99-us", "CPU",
                                     "IRQ/s"), nvme)))  # fmt: skip
    click.echo("SETTLED-P99: from the policy's first change in the phase (else its second interval) on")


simulate.help += "\n    " + ", ".join(library()) + "."


def _scorecard(names: tuple[str, ...], seed: int, duration: float | None, output: str | None, as_json: bool) -> None:
    from ..sim.scenario import ScenarioError, library, load_scenario, resolve
    from ..sim.score import scorecard

    try:
        for name in names:
            load_scenario(resolve(name))  # every file checked before the first of many runs
    except ScenarioError as err:
        raise click.ClickException(str(err)) from None
    show = sys.stderr.isatty()

    def progress(cell) -> None:
        if show:
            click.echo(f"{cell.scenario} / {cell.policy}: J {cell.cost:,.1f}", err=True)

    try:
        with _sigterm_unwinds():
            cells = scorecard(list(names) or sorted(library()), seed=seed, duration=duration, progress=progress)
    except ScenarioError as err:  # a file changed under the runs
        raise click.ClickException(str(err)) from None
    data = {"schema": 1, "seed": seed, "cells": [c.__dict__ for c in cells]}
    if output:
        _write_json(output, data)
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    rows = [(c.scenario, c.policy, _us(c.settled_p99_us), _us(c.p99_us), f"{c.cpu:.2f}", f"{c.irq_rate:,.0f}",
             f"{c.dropped_pps:,.0f}", f"{c.cost:,.1f}", f"{c.score:.2f}") for c in cells]  # fmt: skip
    header = ("SCENARIO", "POLICY", "SETTLED-P99-us", "P99-us", "CPU", "IRQ/s", "DROPS/s", "J", "SCORE")
    click.echo("\n".join(table(header, rows)))
    click.echo("P99: the worst phase's, whole; SETTLED-P99: the worst phase's from the policy's first change in it")


def _write_json(path: str, data: dict) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
    except OSError as err:
        raise click.ClickException(f"{path}: cannot write: {err.strerror or err}") from None


def _pace(speed: str) -> float | None:
    if speed == "max":
        return None
    try:
        value = float(speed)
    except ValueError:
        raise click.BadParameter(f"expected max or a number, got {brief(speed)}", param_hint="--speed") from None
    if not 0 < value < math.inf:  # nan too
        raise click.BadParameter(f"expected max or a positive number, got {brief(speed)}", param_hint="--speed")
    return value


def _us(value: float) -> str:
    return "inf" if value == float("inf") else f"{value:,.1f}"


COMMANDS = (simulate,)
