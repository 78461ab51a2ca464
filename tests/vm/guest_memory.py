"""In the guest (2 GiB, no swap, disposable): anonymous memory filled step by step until a zone's free pages fall
below its low watermark, never to its min; `irqtune status` then shows the zone figures and reports the zone near
min, and once the memory is given back the finding is gone. The host itself is never pushed so (it is shared, and
its network is its lifeline): this is what the guest is for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli

pytestmark = pytest.mark.vm

STEP = 8 << 20  # bytes the child takes per step at most (less as free pages near the low watermark)
PAGE = 4096
FILLER = """
import sys
held = []
for line in sys.stdin:
    block = bytearray(int(line))
    for at in range(0, len(block), 4096):
        block[at] = 1  # resident, not just reserved
    held.append(block)
    print(len(held), flush=True)
"""


def zones() -> dict[tuple[int, str], dict[str, int]]:
    """/proc/zoneinfo read here (not irqtune's parser): (node, zone) -> pages free, min, low, high, managed. The
    guest has two NUMA nodes, each with its own DMA32 or Normal: a zone is named by both."""
    out, zone = {}, None
    for line in Path("/proc/zoneinfo").read_text().splitlines():
        words = line.split()
        if line.startswith("Node") and "zone" in words:
            zone = out.setdefault((int(words[1].rstrip(",")), words[-1]), {})
        elif zone is not None and len(words) == 2 and words[0] in ("min", "low", "high", "managed") \
                and words[1].isdigit():  # fmt: skip
            zone[words[0]] = int(words[1])
        elif zone is not None and words[:2] == ["pages", "free"]:
            zone["free"] = int(words[2])
    return {name: z for name, z in out.items() if z.get("managed")}


def _near(report: dict, zone: tuple[int, str]) -> list[dict]:
    """The near-min findings about this zone (its message names node and zone: "node 1 zone DMA32: ...")."""
    named = f"node {zone[0]} zone {zone[1]}:"
    return [f for f in report["findings"] if f.get("code") == "free-pages-near-min" and f["message"].startswith(named)]


def _shown(report: dict, zone: tuple[int, str]) -> dict:
    return next(z for z in report["memory"]["zones"] if (z["node"], z["name"]) == zone)


def test_a_zone_pushed_below_low_is_reported_near_min_and_recovers(record):
    largest = max(zones().items(), key=lambda kv: kv[1]["managed"])[0]
    child = subprocess.Popen([sys.executable, "-c", FILLER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    seen: dict = {"zone": largest, "steps": 0}
    report = None
    try:
        for _ in range(2000):  # kswapd gives page cache back as we take: step until the reading sees the zone low
            z = zones()[largest]
            if z["free"] < z["low"]:
                code, out, err = cli("status", "--no-probe", "--json", "-i", "0")  # in this process: no new one
                assert code in (0, 3), err
                report = json.loads(out)
                if _near(report, largest):
                    break
            floor = z["min"] + (z["low"] - z["min"]) // 2  # never nearer min than half-way
            pages = max(16, min(STEP // PAGE, (z["free"] - floor) // 2))
            if z["free"] - pages <= floor:
                continue  # kswapd will free some: read again
            child.stdin.write(f"{pages * PAGE}\n")
            child.stdin.flush()
            child.stdout.readline()
            seen["steps"] += 1
        seen["filled"] = zones()[largest]
        assert report is not None and _near(report, largest), seen
        shown = _shown(report, largest)
        seen["shown"], seen["finding"] = shown, _near(report, largest)
        assert shown["free"] < shown["low"] and shown["min"] > 0, shown  # the figures irqtune shows
    finally:
        child.kill()
        child.wait()
    code, out, _ = cli("status", "--no-probe", "--json", "-i", "0")
    after = json.loads(out)
    seen["released"] = _shown(after, largest)
    record(f"{os.uname().release} memory pressure", {**seen, "zone": f"node {largest[0]} zone {largest[1]}"})
    assert not _near(after, largest), after["findings"]
