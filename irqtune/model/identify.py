"""Which moderation a NIC queue really does, fitted to what was measured, starting from its driver's prior.

A driver's name says how its hardware usually reads rx-usecs (`coalesce.DRIVER_FLAVOUR`), but the same
driver can work otherwise: mlx5 in CQE mode restarts its timer on every completion (docs/physics.md §1.6),
firmware and virtual NICs differ. Each window the agent measures one queue's packet rate and interrupt rate
under the setting it holds; every flavour of the queueing model (model/queue.py) predicts that interrupt rate
for the same packets, setting and costs, and the flavour whose predictions stay closest to the measurements
(mean absolute log-ratio over the recent windows) is the one in use. The prior keeps the device unless another
flavour fits clearly better (by IDENTIFY_MARGIN), and windows where the flavours cannot differ (no coalescing
window, no load, deferral on, an overloaded queue) teach nothing about the flavour.

Two more numbers of the device's response are then fitted to every window, rx-usecs 0 included
(docs/physics.md §9.7): the timer scale, the real delay per rx-usecs unit (a device or emulator whose timer
ticks in other units than the driver converts for: QEMU's e1000e keeps 0.79 µs per unit), and the interrupt
floor, a minimum gap the device or platform keeps between interrupts whatever the setting (Intel's ITR floor
of 128 µs while throttling is on, 82574 datasheet §10.2.4.2, which QEMU emulates; a hypervisor that delivers
interrupts in batches). Both start at "none" (scale 1, no floor) and move only where that fits the windows
clearly better (by FIT_MARGIN). Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

from .queue import nic_queue

FLAVOURS = ("timer-from-first", "timer-restart", "min-gap")
IDENTIFY_MARGIN = 0.3  # log-ratio: another flavour must fit about 35 % better than the prior to replace it
MIN_SPREAD = 0.2  # log-ratio between the flavours' predictions below which a window cannot tell them apart
MIN_WINDOWS = 2  # informative windows needed before the prior can be replaced
COST_SPREAD = 2.0  # interrupts per packet must differ this much across windows to tell the two costs apart
COST_WINDOWS = 3  # windows with CPU time needed for a cost fit
COST_RANGE = (0.05, 100.0)  # µs: fitted costs outside it are taken for noise (the config's are used)
FIT_MARGIN = 0.1  # log-ratio: a timer scale or an interrupt floor must cut the mean error by this much
SCALES = (0.25, 4.0)  # the timer scales believed: beyond them the window is more likely something else
TIMER_BOUND = 0.9  # a minimum gap sets a window's interrupt rate when predicted rate x rx-usecs is at least this
FLOOR_BOUND = 0.5  # ... a window timer (it adds its length to every cycle) from this; below, a floor might


@dataclass(frozen=True)
class Window:
    """One measured window of a queue: packets/s and interrupts/s, under rx-usecs/rx-frames, with the per-packet
    and per-interrupt costs (µs) estimated for it."""

    packets: float
    interrupts: float
    rx_usecs: int
    rx_frames: int
    service_us: float
    irq_cost_us: float
    busy: float = 0.0  # the queue's CPU: fraction of it in hard-IRQ and softirq context ...
    cpu_packets: float = 0.0  # ... packets/s processed there ...
    cpu_irqs: float = 0.0  # ... and device interrupts/s there: what the costs are fitted to (`fit_costs`)


@dataclass(frozen=True)
class Response:
    """How a queue turns its setting into interrupts: the flavour, the real delay per rx-usecs unit and the
    minimum gap (µs) it keeps between interrupts (0: none)."""

    flavour: str = "timer-from-first"
    scale: float = 1.0
    floor_us: float = 0.0
    floor_per_kpps: float = 0.0  # µs the floor grows per 1,000 packets/s (a CPU busier with the load answers later)

    def floor_at(self, packets: float) -> float:
        """The minimum gap (µs) at `packets` per second."""
        return self.floor_us + self.floor_per_kpps * packets / 1000.0

    def to_json(self) -> dict:
        return {"flavour": self.flavour, "timer_scale": round(self.scale, 3), "floor_us": round(self.floor_us, 1),
                "floor_us_per_kpps": round(self.floor_per_kpps, 3)}  # fmt: skip


@dataclass(frozen=True)
class Identified:
    flavour: str
    prior: str
    windows: int  # informative windows behind it
    errors: dict[str, float]  # flavour -> mean |log(predicted / measured)| interrupt rate
    scale: float = 1.0  # the real delay per rx-usecs unit
    floor_us: float = 0.0  # the minimum gap between interrupts the device keeps (0: none seen) ...
    floor_per_kpps: float = 0.0  # ... or, where it grows with the load, µs per 1,000 packets/s
    fitted: int = 0  # windows the scale and floor were fitted to
    error: float = 0.0  # mean |log(predicted / measured)| of the whole response over those windows
    costs: tuple[float, float] | None = None  # (µs per packet, µs per interrupt) fitted (`fit_costs`), if they could be

    @property
    def response(self) -> Response:
        return Response(self.flavour, self.scale, self.floor_us, self.floor_per_kpps)

    def to_json(self) -> dict:
        costs = {"packet_us": round(self.costs[0], 3), "interrupt_us": round(self.costs[1], 3)} if self.costs else {}
        return {**self.response.to_json(), "prior": self.prior, "flavour_windows": self.windows,
                "windows": self.fitted, "error": round(math.expm1(self.error), 3), **costs}  # fmt: skip

    def describe(self) -> str:
        if not self.windows:
            flavour = f"{self.flavour} (the driver's usual; no window yet tells the flavours apart)"
        elif self.flavour == self.prior:
            own = f"interrupt-rate error {math.expm1(self.errors[self.flavour]):.0%}"
            flavour = f"{self.flavour} (the driver's usual, confirmed by {self.windows} windows: {own})"
        else:
            own = f"interrupt-rate error {math.expm1(self.errors[self.flavour]):.0%}"
            flavour = (f"{self.flavour} (identified from {self.windows} windows: {own}, against "
                       f"{math.expm1(self.errors[self.prior]):.0%} for the driver's usual {self.prior})")  # fmt: skip
        extra = []
        if self.scale != 1.0:
            extra.append(f"timer {self.scale:.2f} µs per rx-usecs unit")
        if self.floor_us:
            extra.append(f"at most one interrupt per {self.floor_us:.0f} µs")
        if self.floor_per_kpps:
            extra.append(f"at most one interrupt per {self.floor_per_kpps:.1f} µs per 1,000 packets/s")
        if extra:
            flavour += f"; {', '.join(extra)} (fitted to {self.fitted} windows, error {math.expm1(self.error):.0%})"
        if self.costs:
            flavour += f"; {self.costs[1]:.2f} µs per interrupt, {self.costs[0]:.2f} per packet (fitted)"
        return flavour


@lru_cache(maxsize=4096)  # a window is fitted again every pass it stays among the recent ones
def predicted_interrupts(window: Window, flavour: str) -> float | None:
    """The model's interrupt rate for this window under `flavour`; None where it has none (overload)."""
    result = nic_queue(window.packets, window.service_us * 1e-6, window.irq_cost_us * 1e-6, window.rx_usecs * 1e-6,
                       window.rx_frames, flavour)  # fmt: skip
    return None if result.overloaded or result.irq_rate <= 0 else result.irq_rate


def informative(window: Window) -> dict[str, float] | None:
    """Each flavour's predicted interrupt rate, when the flavours predict differently enough for a measurement to
    choose between them; None otherwise."""
    if window.rx_usecs <= 0 or window.packets <= 0 or window.interrupts <= 0:
        return None
    predicted = {f: predicted_interrupts(window, f) for f in FLAVOURS}
    if any(p is None for p in predicted.values()):
        return None
    logs = [math.log(p) for p in predicted.values()]
    return predicted if max(logs) - min(logs) >= MIN_SPREAD else None  # type: ignore[return-value]


def identify(windows: list[Window], prior: str) -> Identified:
    """The flavour that explains the measured interrupt rates best, the prior unless another is clearly better;
    each flavour is weighed with its own fitted constant floor, so a floor is not mistaken for a flavour (not with
    a fitted scale or a floor that grows with the load: those would let the flavours imitate each other); they are
    fitted to the one chosen."""
    informed = [(w, p) for w in windows if (p := informative(w)) is not None]
    if not informed:
        return Identified(prior, prior, 0, {}, *fit_response(windows, prior), costs=fit_costs(windows))
    fits = {f: fit_response(windows, f, scaled=False, per_load=False) for f in FLAVOURS}
    errors = {f: 0.0 for f in FLAVOURS}
    for window, predicted in informed:
        for flavour, rate in predicted.items():
            scale, floor_us, per_kpps = fits[flavour][:3]
            rate = _floored(_scaled(rate, window.rx_usecs, scale), floor_us + per_kpps * window.packets / 1000)
            errors[flavour] += abs(math.log(rate / window.interrupts)) / len(informed)
    best = min(errors, key=errors.get)
    if len(informed) < MIN_WINDOWS or prior not in errors or errors[prior] - errors[best] <= IDENTIFY_MARGIN:
        best = prior if prior in errors else best
    return Identified(best, prior, len(informed), errors, *fit_response(windows, best), costs=fit_costs(windows))


def fit_response(windows: list[Window], flavour: str, scaled: bool = True, per_load: bool = True,
                 ) -> tuple[float, float, float, int, float]:  # fmt: skip
    """(timer scale, interrupt floor µs, floor µs per 1,000 packets/s, windows used, mean |log error|) for `flavour`,
    fitted to every window with load and interrupts. The candidates come from the windows themselves: each timer-
    bound window's own scale (its measured cycle minus the predicted one is the timer's extra time), the
    interrupt gap of each window the timer does not bound (no or a short rx-usecs: what holds interrupts back
    there is not the timer) as a floor, constant or in proportion to the packet rate (a floor that grows with the
    load: the CPU that takes the interrupt busier in proportion), each only where MIN_WINDOWS windows offer one;
    the pair with the lowest mean error wins, and each of the two stays at "none" unless it cuts the summed error
    by FIT_MARGIN on MIN_WINDOWS windows. A scale moves the cycle, not the shape: 1/rate(k) = 1/rate(1) + (k - 1)
    U, exact for a window without a frame limit that the timer ends (docs/physics.md §9.7); the timer-restart
    flavour keeps scale 1."""
    points = []
    for w in windows:
        if w.packets <= 0 or w.interrupts <= 0:
            continue
        base = predicted_interrupts(w, flavour)
        if base is not None:
            points.append((w, base, _untimed_cycle(w)))
    if not points:
        return 1.0, 0.0, 0.0, 0, 0.0
    scales, floors = [1.0], [(0.0, 0.0)]
    for w, base, cycle in points:
        usecs = w.rx_usecs * 1e-6
        if usecs <= 0 or (scaled and base * usecs < FLOOR_BOUND):  # no timer sets this rate: a floor might (when
            # flavours are compared, only where there is no timer at all: a flavour may explain the rest)
            floors += [(round(1e6 / w.interrupts, 1), 0.0)]
            floors += [(0.0, round(1e9 / w.interrupts / w.packets, 3))] if per_load else [(0.0, 0.0)]
        elif (
            base * usecs >= (TIMER_BOUND if flavour == "min-gap" else FLOOR_BOUND)
            and scaled
            and flavour != "timer-restart"
            and (w.rx_frames == 0 or w.packets * usecs < w.rx_frames)
        ):
            k = _timer_scale(w, base, cycle, flavour)  # the timer's: its scale
            if k is not None and SCALES[0] <= k <= SCALES[1]:
                scales.append(round(k, 3))
    scales = scales if len(scales) > MIN_WINDOWS else [1.0]  # one window explains anything: two must agree
    floors = floors if len(floors) > 2 * MIN_WINDOWS else [(0.0, 0.0)]  # two per window: constant, per load
    floors += [_log_median(floors, 0), _log_median(floors, 1)]  # windows that disagree: their middle, not one's
    none = (0.0, 0.0)

    def error(scale: float, floor: tuple[float, float]) -> float:  # summed over the windows: a parameter that
        total = 0.0  # fixes two windows counts as much among eight windows as among two
        for w, base, cycle in points:
            rate = _scaled(base, w.rx_usecs, scale, flavour, cycle)
            total += abs(math.log(_floored(rate, floor[0] + floor[1] * w.packets / 1000) / w.interrupts))
        return total

    _, scale, floor = min(((error(k, f), k, f) for k in set(scales) for f in set(floors)),
                          key=lambda t: (round(t[0], 9), t[2][1] > 0, t[2], abs(t[1] - 1)))  # fmt: skip
    earn = FIT_MARGIN * MIN_WINDOWS  # each must earn its place: fix MIN_WINDOWS windows by FIT_MARGIN
    if floor != none and error(scale, none) - error(scale, floor) <= earn:
        floor = none
    if floor[1] and error(scale, floor) > min(error(scale, (f, 0.0)) for f, _ in floors) - earn:
        floor = min(((f, 0.0) for f, _ in floors), key=lambda f: error(scale, f))  # per load only where it pays
        floor = floor if error(scale, none) - error(scale, floor) > earn else none
    if scale != 1.0 and error(1.0, floor) - error(scale, floor) <= earn:
        scale = 1.0
    return scale, floor[0], floor[1], len(points), error(scale, floor) / len(points)


def _log_median(floors: list[tuple[float, float]], part: int) -> tuple[float, float]:
    """The median in log space of the candidates' constant (`part` 0) or per-load (1) floors, the middle two's
    geometric mean where they are even in number: the gap that errs least over windows whose own gaps scatter."""
    values = sorted(f[part] for f in floors if f[part] > 0)
    if not values:
        return (0.0, 0.0)
    middle = len(values) // 2
    value = values[middle] if len(values) % 2 else math.sqrt(values[middle - 1] * values[middle])
    return (round(value, 3), 0.0) if part == 0 else (0.0, round(value, 3))


def _floored(rate: float, floor_us: float) -> float:
    """`rate` held to at most one interrupt per `floor_us` (none where it is 0)."""
    return min(rate, 1e6 / floor_us) if floor_us > 0 else rate


def _scaled(rate: float, rx_usecs: int, scale: float, flavour: str = "timer-from-first", cycle: float = 0.0) -> float:
    """The interrupt rate with the timer `scale` times as long. A window timer adds its length to the cycle, so
    the cycle grows by (scale - 1) rx-usecs; a minimum gap only counts where it is longer than the cycle the queue
    would have without it (`cycle`), so the cycle grows by max(k U, cycle) - max(U, cycle)."""
    if scale == 1.0 or rx_usecs <= 0:
        return rate
    usecs = rx_usecs * 1e-6
    shift = max(scale * usecs, cycle) - max(usecs, cycle) if flavour == "min-gap" else (scale - 1.0) * usecs
    return 1.0 / max(1e-9, 1.0 / rate + shift)


def _timer_scale(w: Window, base: float, cycle: float, flavour: str) -> float | None:
    """The scale that makes `_scaled` give this window's measured rate; None where no scale can (a minimum gap
    shorter than the queue's own cycle leaves the rate to the packets)."""
    usecs, measured = w.rx_usecs * 1e-6, 1.0 / w.interrupts
    if flavour != "min-gap":
        return 1.0 + (measured - 1.0 / base) / usecs
    gap = measured - 1.0 / base + max(usecs, cycle)  # the gap that would give the measured cycle
    return gap / usecs if gap > cycle else None


def _untimed_cycle(w: Window) -> float:
    """Seconds between interrupts the queue would have with no coalescing timer at all (every flavour agrees)."""
    rate = predicted_interrupts(replace(w, rx_usecs=0, rx_frames=1, interrupts=1.0), "timer-from-first")
    return 1.0 / rate if rate else 0.0


def fit_costs(windows: list[Window]) -> tuple[float, float] | None:
    """(µs per packet, µs per interrupt) of the queue's CPU, by least squares of busy = s·packets + c·interrupts
    over the windows that measured CPU time; None where they cannot tell the two apart (interrupts per packet
    differ by less than COST_SPREAD across them: one setting, one ratio), are too few, or give a cost outside
    COST_RANGE. Hard-IRQ time is only counted where the kernel accounts it (CONFIG_IRQ_TIME_ACCOUNTING);
    elsewhere the interrupt's cost lands in softirq and task time, and the fit finds less of it."""
    rows = [w for w in windows if w.busy > 0 and w.cpu_packets > 0 and w.cpu_irqs > 0]
    if len(rows) < COST_WINDOWS:
        return None
    ratios = [w.cpu_irqs / w.cpu_packets for w in rows]
    if max(ratios) < COST_SPREAD * min(ratios):
        return None
    spp = sum(w.cpu_packets**2 for w in rows)
    sii = sum(w.cpu_irqs**2 for w in rows)
    spi = sum(w.cpu_packets * w.cpu_irqs for w in rows)
    spb = sum(w.cpu_packets * w.busy for w in rows)
    sib = sum(w.cpu_irqs * w.busy for w in rows)
    det = spp * sii - spi * spi
    if det <= 0:
        return None
    per_packet, per_irq = (spb * sii - sib * spi) / det * 1e6, (sib * spp - spb * spi) / det * 1e6
    low, high = COST_RANGE
    if not (low <= per_packet <= high and low <= per_irq <= high):
        return None
    return per_packet, per_irq
