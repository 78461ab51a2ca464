"""The agent costs what its mode uses (issue 17): an observing agent without a metrics server loads neither
prometheus_client nor pyroute2 (netlink reads and link events go over plain sockets, nl/raw.py) and stays
within 25 MB resident; bench/bench_cost.py measures it beside irqbalance."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import real_linux, require

PROGRAM = """
import json, sys
from irqtune.cli import main
try:
    main(sys.argv[1:], prog_name="irqtune")
except SystemExit:
    pass
with open("/proc/self/status") as f:
    rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
print(json.dumps({"modules": sorted(sys.modules), "rss_kb": rss}), file=sys.stderr)
"""


@pytest.mark.slow
def test_an_observing_agent_on_this_host_loads_no_exporter_nor_pyroute2_and_stays_under_25_mb(tmp_path):
    require(real_linux(), "needs this host's /proc and rtnetlink (observe mode: nothing is written)")
    config = tmp_path / "agent.toml"
    config.write_text("")
    argv = ["--state-dir", str(tmp_path / "state"), "run", "--config", str(config), "--mode", "observe",
            "--interval", "0.5", "--passes", "3"]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", PROGRAM, *argv], capture_output=True, text=True, timeout=120)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    tops = {m.split(".")[0] for m in report["modules"]}
    assert done.stdout.strip(), done.stderr
    assert not tops & {"prometheus_client", "pyroute2", "rich", "bcc"}, sorted(tops)
    assert report["rss_kb"] <= 25 * 1024, f"{report['rss_kb'] / 1024:.1f} MB resident"
