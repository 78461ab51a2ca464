"""NAPI policies: the budget when polls run out of it, whether a busy-polling application takes the
packets, threaded NAPI when softirq time starves the CPU.

Budget (Documentation/admin-guide/sysctl/net.rst; docs/physics.md §2): `time_squeeze` counts the
net_rx_action rounds that stopped with work left, because `netdev_budget` packets or
`netdev_budget_usecs` ran out. Squeezes alone are fine (the rest runs in the next round or in
ksoftirqd); squeezes *with* drops mean the backlog or the rings overflowed while NAPI was held
back. Then both limits are doubled, up to BUDGET_MAX packets and BUDGET_USECS_MAX µs, one step
per pass; the loop's probation rolls the step back if the device gets worse.

Busy polling (6.13 IRQ suspension, docs/physics.md §2.7, Karsten & Damato): when sockets take a real
share of the received packets by busy polling (TcpExt BusyPollRxPackets against the interfaces'
rx_packets), an epoll application with prefer_busy_poll is polling. `busy_polling` says so; the
moderation chooser (decide/moderation.py) then predicts every candidate with that application
polling and weighs IRQ suspension (irq-suspend-timeout 20 ms, deferral as its safety net) among
them, so suspension is set only where the model says it pays.

Threaded NAPI (advice only): a CPU serving a NIC's IRQs that spends over half its time in softirq
while NAPI is squeezed hands packet work to ksoftirqd, where it competes with applications at
normal priority. `threaded = 1` moves each NAPI into its own kernel thread ("napi/DEV-ID") that the
scheduler can place and that can be pinned next to its IRQ; the agent recommends it rather than
doing it, because the threads' placement is the operator's decision.

Pure: rates and current values in, proposals with reasons out.
"""

from __future__ import annotations

from ..findings import Finding
from ..measure.rates import Rates
from ..plan import Change

SQUEEZE_PER_S = 1.0  # docs/physics.md §10.4: time_squeeze below 1/s per CPU is healthy
BUDGET_MAX = 2400  # packets per net_rx_action round (default 300)
BUDGET_USECS_MAX = 8000  # µs per round (default 2000)
BUSY_POLL_SHARE = 0.2  # of received packets taken by busy polling: an application polls
BUSY_POLL_MIN_PPS = 1000.0  # below this, busy polling is too rare to plan around
SOFTIRQ_STARVING = 0.5  # share of a CPU in softirq that leaves applications too little


def squeezed_with_drops(rates: Rates) -> tuple[float, float]:
    """(worst time_squeeze per s on one CPU, drops per s anywhere: backlog plus the interfaces' rx drops)."""
    squeeze = max((c.get("time_squeeze", 0.0) for c in rates.softnet.values()), default=0.0)
    drops = sum(c.get("dropped", 0.0) for c in rates.softnet.values())
    drops += sum(d.get("rx_drop", 0.0) + d.get("rx_fifo", 0.0) for name, d in rates.netdev.items() if name != "lo")
    return squeeze, drops


def budget(rates: Rates, current: int, current_usecs: int) -> list[Change]:
    """Double netdev_budget and netdev_budget_usecs when NAPI is squeezed and packets are dropped."""
    squeeze, drops = squeezed_with_drops(rates)
    if squeeze < SQUEEZE_PER_S or drops <= 0:
        return []
    why = f"time_squeeze {squeeze:,.0f}/s on a CPU with {drops:,.0f} drops/s: NAPI rounds end with work left"
    out = []
    if current < BUDGET_MAX:
        target = min(BUDGET_MAX, current * 2)
        out.append(Change("sysctl/net.core.netdev_budget", str(current), str(target), why))
    if current_usecs < BUDGET_USECS_MAX:
        target = min(BUDGET_USECS_MAX, current_usecs * 2)
        out.append(Change("sysctl/net.core.netdev_budget_usecs", str(current_usecs), str(target), why))
    return out


def busy_polling(rates: Rates, devices: list[str]) -> float | None:
    """The share of these interfaces' received packets that busy polling took, when an application polls."""
    received = sum(rates.netdev.get(name, {}).get("rx_packets", 0.0) for name in devices)
    polled = rates.busy_poll_rx or 0.0
    if received <= 0 or polled < BUSY_POLL_MIN_PPS:
        return None
    share = min(1.0, polled / received)
    return share if share >= BUSY_POLL_SHARE else None


def threaded_advice(rates: Rates, device: str, cpus: set[int], threaded: bool) -> list[Finding]:
    """Recommend threaded NAPI when a CPU serving `device` is starved by softirq work and squeezed."""
    if threaded:
        return []
    out = []
    for cpu in sorted(cpus):
        share = rates.softirq_time.get(cpu, 0.0)
        squeeze = rates.softnet.get(cpu, {}).get("time_squeeze", 0.0)
        if share > SOFTIRQ_STARVING and squeeze >= SQUEEZE_PER_S:
            out.append(Finding(
                "warning", "napi-threaded-advised",
                f"CPU {cpu} spends {share:.0%} in softirq serving {device} with {squeeze:,.0f} squeezes/s: packet "
                f"work spills to ksoftirqd. Consider threaded NAPI (irqtune set net/{device}/threaded 1) and pin "
                f"the napi/{device}-* threads next to the IRQ's CPU",
                device=device, cpu=cpu,
            ))  # fmt: skip
    return out
