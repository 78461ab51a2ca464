"""Who else tunes IRQ affinity here: irqbalance rewrites it every 10 s, TuneD on profile changes.

irqtune does not fight them: `apply` refuses while one runs, and says how to hand
over, unless told to take over.
"""

from __future__ import annotations

from ..host import Host

RIVALS = {
    "irqbalance": "irqbalance rewrites IRQ affinity every 10 s: stop it (systemctl stop irqbalance) or ban the "
    "IRQs irqtune manages (IRQBALANCE_BANNED_CPUS / --banirq), or pass --take-over",
    "tuned": "TuneD may set IRQ affinity from its profile (irqbalance/scheduler plugins): disable those plugins "
    "or pass --take-over",
}


def rivals(host: Host) -> dict[str, str]:
    """Running processes that also own IRQ affinity, by name -> how to hand over."""
    found = {}
    for pid in host.entries(host.proc()):
        if not pid.isdigit():
            continue
        comm = host.text("proc", pid, "comm")
        if comm in RIVALS:
            found[comm] = RIVALS[comm]
    return found
