"""Commands start like system tools: `irqtune` imports a command's modules only when that command runs (issue 17:
`--version`, `snapshot`, `get`, `status` start to exit within 150 ms; bench/bench_cost.py times them)."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import fakehost
import pytest

from irqtune.cli import act, export, main, probe, run, sim, top

# what only the agent, the exporter, top, the simulator or eBPF need
HEAVY = ("prometheus_client", "rich", "pyroute2", "bcc", "irqtune.agent", "irqtune.export", "irqtune.top",
         "irqtune.sim.run", "irqtune.decide.moderation")  # fmt: skip
PROGRAM = """
import json, sys
from irqtune.cli import main
try:
    main(sys.argv[1:], prog_name="irqtune")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def test_every_command_is_found_by_name_and_is_the_modules_own():
    ctx = click.Context(main)
    for module in (act, export, probe, run, sim, top):
        for command in module.COMMANDS:
            assert main.get_command(ctx, command.name) is command
    assert {"status", "snapshot", "nvme", "get", "run", "export", "top", "probe", "simulate"} <= set(
        main.list_commands(ctx)
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "args", [["--version"], ["snapshot", "--json"], ["get", "irq/100/affinity"], ["status", "-i", "0"]]
)
def test_light_commands_import_nothing_heavy(tmp_path, args):
    fakehost.build(tmp_path / "root")
    argv = [] if args == ["--version"] else ["--root", str(tmp_path / "root"), "--state-dir", str(tmp_path / "st")]
    done = subprocess.run([sys.executable, "-c", PROGRAM, *argv, *args], capture_output=True, text=True, timeout=60)
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY or any(m.startswith(h) for h in HEAVY if "." in h)]
    assert done.stdout.strip(), done.stderr
    assert heavy == [], f"irqtune {' '.join(args)} imported {heavy}"
