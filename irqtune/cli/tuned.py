"""`irqtune import-tuned`: a TuneD profile as an irqtune config (plan/tuned.py), leftovers named on stderr."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ..config import ConfigError, load_config
from ..plan.tuned import TunedError, import_profile

if TYPE_CHECKING:
    from . import Ctx

TUNED_EXIT = """
\b
Exit status:
  0  the config was written (leftovers, if any, on stderr or in the JSON)
  1  the profile (or one it includes) cannot be found or read
  2  usage error
"""


@click.command("import-tuned", epilog=TUNED_EXIT)
@click.argument("profile")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the config here "
              "(default: stdout).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the config and the leftovers as one JSON object.")
@click.pass_obj
def import_tuned(obj: Ctx, profile: str, output: str | None, as_json: bool) -> None:
    """Turn a TuneD profile into an irqtune config.

    PROFILE is a path to a tuned.conf, or a profile name looked up in ROOT/etc/tuned and ROOT/usr/lib/tuned;
    include= is followed. Carried over as [pin]: [sysctl] net.core.* keys irqtune has as knobs, [net] coalesce=
    and channels= (ethtool -C/-L option strings, for the devices= glob); [scheduler] or cpu-partitioning
    isolated_cores become [cpus] critical. Every other key is named on stderr, FILE:LINE with its section. The
    config is in observe mode: set mode = "tune" to apply the pins.
    """
    try:
        imported = import_profile(profile, obj.host.root)
    except TunedError as err:
        raise click.ClickException(str(err)) from None
    text = imported.toml()
    try:
        load_config(output or "(import-tuned)", text)  # what irqtune writes, its own loader takes
    except ConfigError as err:
        raise click.ClickException(f"the imported config does not load: {err}") from None
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    if as_json:
        click.echo(json.dumps(imported.to_json(), indent=1))
        return
    if not output:
        click.echo(text, nl=False)
    for line in imported.leftover_lines():
        click.echo(f"not carried over: {line}", err=True)


COMMANDS = (import_tuned,)
