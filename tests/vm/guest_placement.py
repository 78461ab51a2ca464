"""In the guest booted with isolcpus=managed_irq,domain,3 nohz_full=3: a placement plan never puts an IRQ on
the isolated CPU, it is applied to the real e1000e's queue IRQs, and restore puts every affinity back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import cli
from guest import affinities, udp_load

from irqtune.parse.common import parse_cpulist

pytestmark = [pytest.mark.vm, pytest.mark.isolated]


def test_plan_avoids_the_isolated_cpu_applies_and_restores(wire, tmp_path, record):
    rx = wire.irq("rx")
    path = Path(f"/proc/irq/{rx}/smp_affinity_list")
    first = path.read_text().strip()
    path.write_text("3\n")  # as an operator (or a default) might have left it: on the isolated CPU
    try:
        original = affinities()
        code, out, err = cli("plan", "--json", state=tmp_path)
        assert code == 0, out + err
        changes = json.loads(out)["changes"]
        mine = {c["knob"]: c for c in changes}
        assert f"irq/{rx}/affinity" in mine, changes  # it must move off CPU 3
        for c in changes:
            if c["knob"].endswith("/affinity"):
                assert 3 not in parse_cpulist(c["target"]), (c, changes)
        code, out, err = cli("apply", "--yes", "--json", state=tmp_path)
        assert code in (0, 3), out + err  # 3: a managed IRQ (NVMe) was named and left alone
        applied = affinities()
        assert 3 not in parse_cpulist(applied[rx]), applied[rx]
        with udp_load(wire):  # x86 without interrupt remapping moves a vector when the IRQ next fires
            time.sleep(0.5)
        effective = Path(f"/proc/irq/{rx}/effective_affinity_list").read_text().strip()
        assert 3 not in parse_cpulist(effective)
        record("6.12 placement", {c["knob"]: [c["current"], c["target"]] for c in changes})
        code, out, err = cli("restore", state=tmp_path)
        assert code == 0, out + err
        assert affinities() == original
    finally:
        path.write_text(first + "\n")
