"""In the guest: NVMe queue IRQs are kernel-managed. A write of their affinity is refused by the kernel
(EIO on 6.1, EPERM since irq_set_affinity's managed check changed), irqtune learns it, `status` shows it,
and it is never written again. debugfs is not mounted in the guest, so irqtune cannot know beforehand:
the refusal is the only teacher."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import cli
from guest import irq_named

pytestmark = pytest.mark.vm


def test_managed_irq_write_is_refused_learned_shown_and_never_retried(tmp_path, record):
    assert not Path("/sys/kernel/debug/irq").exists(), "debugfs would tell irqtune beforehand"
    ctrl = sorted(os.listdir("/sys/class/nvme"))[0]
    irq = irq_named(f"{ctrl}q1")
    before = Path(f"/proc/irq/{irq}/smp_affinity_list").read_text().strip()
    target = "0" if before != "0" else "1"
    code, out, err = cli("set", f"irq/{irq}/affinity", target, "--json", state=tmp_path)
    assert code == 3, out + err
    (result,) = json.loads(out)["results"]
    assert result["outcome"] == "managed", result
    errno_name = "EIO" if os.uname().release.startswith("6.1.") else "EPERM"
    assert errno_name in result["message"], result
    assert Path(f"/proc/irq/{irq}/smp_affinity_list").read_text().strip() == before
    record(f"{os.uname().release} managed refusal", {"irq": irq, "errno": errno_name, "message": result["message"]})

    code, out, err = cli("status", "--no-probe", "--json", "-i", "0.2", state=tmp_path)
    rows = [q for d in json.loads(out)["devices"] for q in d["irqs"] if q["irq"] == irq]
    assert rows and rows[0]["managed"] == "yes", rows

    code, out, err = cli("set", f"irq/{irq}/affinity", target, "--json", state=tmp_path)
    assert code == 3
    (again,) = json.loads(out)["results"]
    assert again["outcome"] == "managed" and "never written" in again["message"], again  # no second attempt
    assert errno_name not in again["message"], again
