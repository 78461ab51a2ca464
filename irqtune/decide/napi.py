"""NAPI policies: the budget when polls run out of it, whether a busy-polling application takes the
packets, threaded NAPI when softirq time starves the CPU.

Budget (Documentation/admin-guide/sysctl/net.rst; docs/physics.md §2): `time_squeeze` counts the
net_rx_action rounds that stopped with work left, because `netdev_budget` packets or
`netdev_budget_usecs` ran out. Squeezes alone are fine (the rest runs in the next round or in
ksoftirqd); squeezes *with* drops mean the backlog or the rings overflowed while NAPI was held
back. Then both limits are doubled, up to BUDGET_MAX packets and BUDGET_USECS_MAX µs, one step
per pass; the loop's probation rolls the step back if the device gets worse, and after it keeps the step only
if it paid (`budget_paid`): more packets delivered, or fewer dropped, beyond noise. A squeeze that merely
fell does not count: a bigger budget makes fewer, longer rounds, so the squeeze moves without a packet more.

CPU-bound overload (`cpu_bound_advice`): when the CPUs serving a NIC spend nearly all their time in softirq
and hard IRQ (SATURATED) and still squeeze, no budget buys packets; the CPUs are the limit. Then the budget is
not raised, and the agent names the ways to more CPUs instead (advice, not applied): more channels where the
NIC has fewer queues than CPUs available to it and the driver allows more, RPS to named idle CPUs, threaded
NAPI (docs/physics.md §2.4, §7.1).

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

from typing import NamedTuple

from ..findings import Finding
from ..measure.rates import Rates
from ..parse.common import format_cpulist
from ..plan import Change

SQUEEZE_PER_S = 1.0  # docs/physics.md §10.4: time_squeeze below 1/s per CPU is healthy
BUDGET_MAX = 2400  # packets per net_rx_action round (default 300)
BUDGET_USECS_MAX = 8000  # µs per round (default 2000)
BUSY_POLL_SHARE = 0.2  # of received packets taken by busy polling: an application polls
BUSY_POLL_MIN_PPS = 1000.0  # below this, busy polling is too rare to plan around
SOFTIRQ_STARVING = 0.5  # share of a CPU in softirq that leaves applications too little
SATURATED = 0.9  # share of a CPU in softirq + hard IRQ: no time left that a budget could give packets
BUDGET_NOISE = 0.05  # relative change of delivered packets or drops that a budget step must beat
BUDGET_FLOOR = 50.0  # packets/s: a smaller change is noise
IDLE_CPU = 0.5  # share of a CPU idle that makes it a target worth naming for RPS
BUDGET_KNOBS = ("sysctl/net.core.netdev_budget", "sysctl/net.core.netdev_budget_usecs")


class Delivery(NamedTuple):
    """Per second over the whole host: what a budget step is judged by."""

    delivered: float  # packets the CPUs processed (softnet `processed`)
    dropped: float  # backlog drops plus the interfaces' rx drops (lo excluded)
    squeeze: float  # time_squeeze, all CPUs


def squeezed_with_drops(rates: Rates) -> tuple[float, float]:
    """(worst time_squeeze per s on one CPU, drops per s anywhere: backlog plus the interfaces' rx drops)."""
    squeeze = max((c.get("time_squeeze", 0.0) for c in rates.softnet.values()), default=0.0)
    drops = sum(c.get("dropped", 0.0) for c in rates.softnet.values())
    drops += sum(d.get("rx_drop", 0.0) + d.get("rx_fifo", 0.0) for name, d in rates.netdev.items() if name != "lo")
    return squeeze, drops


def busy_share(rates: Rates, cpu: int) -> float:
    """Share of the CPU in softirq and hard-IRQ context."""
    return rates.softirq_time.get(cpu, 0.0) + rates.irq_time.get(cpu, 0.0)


def budget(rates: Rates, current: int, current_usecs: int) -> list[Change]:
    """Double netdev_budget and netdev_budget_usecs when NAPI is squeezed and packets are dropped, on a CPU
    with time to spare: on a saturated one a bigger budget buys no packet (`cpu_bound_advice` says why)."""
    _, drops = squeezed_with_drops(rates)
    squeeze = max((c.get("time_squeeze", 0.0) for cpu, c in rates.softnet.items()
                   if busy_share(rates, cpu) < SATURATED), default=0.0)  # fmt: skip
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


def delivery(rates: Rates) -> Delivery:
    """Delivered packets, drops and time_squeeze per second over every CPU and interface."""
    _, drops = squeezed_with_drops(rates)
    delivered = sum(c.get("processed", 0.0) for c in rates.softnet.values())
    return Delivery(delivered, drops, sum(c.get("time_squeeze", 0.0) for c in rates.softnet.values()))


def _noise(before: float) -> float:
    return max(BUDGET_FLOOR, before * BUDGET_NOISE)


def budget_paid(before: Delivery, after: Delivery) -> tuple[bool, str]:
    """(paid, the numbers): a budget step pays when more packets got delivered, or fewer were dropped while
    no less was offered, beyond noise. A fall of time_squeeze alone is not a gain (the squeeze just moved)."""
    offered, offered_after = before.delivered + before.dropped, after.delivered + after.dropped
    numbers = (f"delivered {before.delivered:,.0f} -> {after.delivered:,.0f} packets/s, drops {before.dropped:,.0f}"
               f" -> {after.dropped:,.0f}/s, time_squeeze {before.squeeze:,.0f} -> {after.squeeze:,.0f}/s")  # fmt: skip
    if after.delivered > before.delivered + _noise(before.delivered):
        return True, f"more delivered: {numbers}"
    if after.dropped < before.dropped - _noise(before.dropped) and offered_after >= offered - _noise(offered):
        return True, f"fewer dropped: {numbers}"
    moved = "; time_squeeze fell alone: the squeeze only moved" if after.squeeze < before.squeeze else ""
    return False, f"paid nothing: {numbers}{moved}"


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


def saturated_cpus(rates: Rates, cpus: set[int]) -> list[int]:
    """Those of `cpus` that are saturated in softirq + hard IRQ and still squeezed: CPU-bound overload."""
    return sorted(cpu for cpu in cpus if busy_share(rates, cpu) >= SATURATED
                  and rates.softnet.get(cpu, {}).get("time_squeeze", 0.0) >= SQUEEZE_PER_S)  # fmt: skip


def cpu_bound_advice(rates: Rates, device: str, serving: set[int], available: set[int], queues: int,
                     channels: tuple[str, int] | None = None, threaded: bool | None = None,
                     ) -> list[Finding]:  # fmt: skip
    """CPU-bound overload: CPUs serving `device` saturated in softirq + hard IRQ and squeezed. One finding with
    the numbers and the ways to more CPUs for its packets: more channels where it has fewer `queues` than
    `available` CPUs (`channels`: the driver's kind, combined or rx, and its maximum; None: unreadable), RPS to
    the idle available CPUs, threaded NAPI (`threaded` False; None: the kernel cannot say)."""
    hot = saturated_cpus(rates, serving)
    if not hot:
        return []
    own = rates.netdev.get(device, {})
    drops = own.get("rx_drop", 0.0) + own.get("rx_fifo", 0.0) + sum(rates.softnet[c].get("dropped", 0.0) for c in hot)
    squeeze = sum(rates.softnet[c]["time_squeeze"] for c in hot)
    shares = ", ".join(f"CPU {cpu} {busy_share(rates, cpu):.0%}" for cpu in hot)
    options = _more_cpus(rates, device, serving, available, queues, channels, threaded)
    ways = "; ".join(options) or (
        "none left: every available CPU serves it already and the driver allows no "
        "more channels, so the offered load exceeds this host"
    )
    return [Finding(
        "warning", "napi-cpu-bound",
        f"{device}: {shares} in softirq+irq serving its {queues} queue(s) with {squeeze:,.0f} squeezes/s and "
        f"{drops:,.0f} drops/s: CPU-bound, a larger netdev_budget would only move the squeeze. More CPUs for its "
        f"packets: {ways}",
        device=device, cpu=hot[0],
    )]  # fmt: skip


def _more_cpus(rates: Rates, device: str, serving: set[int], available: set[int], queues: int,
               channels: tuple[str, int] | None, threaded: bool | None) -> list[str]:  # fmt: skip
    """The ways to spread `device`'s packet work over more CPUs that this host offers, with their numbers."""
    out = []
    if channels is not None and queues < len(available) and channels[1] > queues:
        kind, target = channels[0], min(len(available), channels[1])
        out.append(f"more channels, {queues} -> {target} (irqtune set net/{device}/channels/{kind} {target}; "
                   f"{len(available)} CPUs available, the driver allows {channels[1]})")  # fmt: skip
    idle = sorted(c for c in available - serving if rates.idle_time.get(c, 0.0) >= IDLE_CPU)
    if idle:
        shown = ", ".join(f"CPU {c} {rates.idle_time[c]:.0%} idle" for c in idle)
        out.append(f"RPS to idle CPUs {format_cpulist(idle)} ({shown}; irqtune set net/{device}/rx-N/rps-cpus "
                   f"{format_cpulist(idle)} on each rx queue)")  # fmt: skip
    if threaded is False:
        out.append(f"threaded NAPI (irqtune set net/{device}/threaded 1), so the scheduler can move the packet "
                   "work off the saturated CPUs")  # fmt: skip
    return out
