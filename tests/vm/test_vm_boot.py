"""The VM bench (tests/vm/bench.py): boot each kernel of the matrix with real e1000e and NVMe drivers and run
the guest tests (tests/vm/guest_*.py) there. A failing guest test fails this test, with the guest's output;
under CI a skipped guest test fails it too. Measurements the guest recorded are printed and kept in
.vm-bench/BOOT.json."""

from __future__ import annotations

import json

import pytest
from conftest import IN_CI, REPO, require

import bench

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.root]


def _tail(text: str, lines: int = 150) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.parametrize("boot", bench.BOOTS, ids=lambda b: b.name)
def test_guest_suite_on_real_drivers(boot, tmp_path, capsys):
    why = bench.missing()
    require(why is None, why or "")
    result = bench.run(boot, tmp_path / boot.name)
    summary = {
        "boot": boot.name, "kernel": result.kernel, "accel": result.accel, "seconds": round(result.seconds, 1),
        "boot_seconds": result.boot_seconds and round(result.boot_seconds, 1),
        "tests": {t["name"]: [t["outcome"], round(t["seconds"], 1)] for t in result.tests},
        "measurements": result.measurements,
    }  # fmt: skip
    keep = REPO / ".vm-bench"
    keep.mkdir(exist_ok=True)
    (keep / f"{boot.name}.json").write_text(json.dumps(summary, indent=1))
    (keep / f"{boot.name}.log").write_text(result.log)
    with capsys.disabled():
        print(f"\nVM bench {boot.name}: {json.dumps(summary, indent=1)}")
    assert result.returncode is not None, f"the guest never finished its tests:\n{_tail(result.log)}"
    assert result.tests, f"no guest test ran:\n{_tail(result.log)}"
    failed = result.failed()
    assert not failed, "guest tests failed: " + ", ".join(t["name"] for t in failed) + "\n" + _tail(result.log, 400)
    if IN_CI:
        assert not result.skipped(), "skipped in the guest under CI: " + "; ".join(
            f"{t['name']}: {t['message'].strip()}" for t in result.skipped()
        )
    assert result.returncode == 0, _tail(result.log)
