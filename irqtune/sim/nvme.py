"""One NVMe queue pair and the core that owns it: interrupts vs polling (docs/physics.md §4, §9.4).

Device: a command waits for the controller's start gate (at most max_iops starts per second, a gap
g = 1/max_iops), then takes D ~ lognormal(mean, cv) in parallel with all others: an M/G/∞ device
behind a deterministic rate cap. Core: one FIFO server running the submission (c_sub) and the
completion path. How the application thread learns of a completion:

    irq     device IRQ + handler (t_irq). If the core was idle it first pays the C-state exit
            (`cstate`, wall time, not CPU) and the thread's wake-up/context switch (t_wake): the
            setup time of a queue with setup. At QD1 the core idles through every I/O and always
            pays; at high QD completions find it busy and rarely do (p0 comes from the queue).
    poll    the thread spins while any I/O is outstanding and reaps in δ: no IRQ, wake or exit.
    hybrid  an I/O submitted into an empty system makes the thread sleep τ = ½ the mean device time;
            an hrtimer wakes it (t_wake, plus the exit of a state the governor can pick knowing τ);
            then it spins. With other I/O outstanding it spins at once (the model's simplification).

QD1 is §9.4 term by term: L = c_sub + D + [cstate + t_wake] + t_irq, c_sub + D + δ, or
c_sub + max(D, τ + exit + t_wake) + δ. Beyond it:
- closed loop (rate 0, fio at iodepth N; each completion resubmits, job s = t_irq|δ + c_sub): core
  and gate are deterministic FIFO servers in tandem, which delay a stream exactly as one server of
  the slower (m = max(s, g)) plus a constant, so the loop is a finite-source queue M/D/1//N whose
  think time is the device. Without setup: MVA with the deterministic residual m/2; with setup: a
  Markov chain at departures (think times taken as exponential), or, when the setup is long enough
  that all N wait it out together, the batch cycle. Exact at QD1 and in saturation.
- open loop (Poisson `rate`): the core is an M/G/1 fed by submissions and completions, completions
  carrying the setup (mean work by renewal reward, PASTA); M/D/1 at the gate; the poller spins
  while the system is not empty (M/G/∞: 1 − e^{−λL}); hybrid sleeps when an I/O finds it empty.
  `iodepth` caps outstanding I/O: an M/G/c queue of waiting submissions (Allen–Cunneen), exact
  M/G/1 at iodepth 1; beyond capacity the result is the closed loop's, flagged saturated.
Times in seconds. `simulate_nvme` replays the mechanism I/O by I/O: percentiles and validation.
Agreement with it (tests/sim/test_sim_nvme.py), exits ≤ 2 µs: 2 % on IOPS/CPU and 5 % on latency, closed
loop at QD 1/4/16/32 and open loop, except: Optane IRQ at the core's knee (QD3–6) up to 3.6 % (the
grid's QD4: 2.4 %), the poller's open-loop CPU on a busy core 2 %+ and hybrid's 4 %. Deeper exits are
exact at QD1, in saturation and when all I/O batch (NAND C6 to QD16); where setup ≈ N·s the loop turns
bistable and the closed form errs: IRQ IOPS +11 % (Optane C1E QD4), +32 % (Optane C6 QD4), +37 %
(NAND C6 QD32); Optane's open loop at C1E / C6: latency −10 % / ±50 %.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Media:
    mean: float  # seconds, mean device service time D
    cv: float  # coefficient of variation of D (lognormal)
    max_iops: float  # commands the controller can start per second


MEDIA = {
    # Optane P4800X class: μ_D 8–10 µs, 550k IOPS at QD16 [S: AnandTech]; cv 0.5 puts the QD1 p99.999 of
    # D at 54 µs, ≈ 60 µs end to end as published [D].
    "optane": Media(8e-6, 0.5, 550e3),
    # TLC NAND reads μ_D 70–100 µs [R]; cv 0.3 (p99 ≈ 150 µs) and 700k IOPS (a PCIe 4 data-centre drive) [R].
    "nand": Media(80e-6, 0.3, 700e3),
}
SKX_CSTATES = ((2e-6, 2e-6), (10e-6, 20e-6), (133e-6, 600e-6))  # (exit, target residency) intel_idle.c skx_cstates
MODES = ("irq", "poll", "hybrid")
IRQ_COST, WAKE_COST, SUBMIT_COST = 1.5e-6, 3e-6, 1e-6  # t_irq with its handler, t_wake, c_sub (§9.4)


@dataclass(frozen=True)
class NvmeResult:
    iops: float  # completed I/O per second
    mean_latency: float  # seconds, submit to the application seeing the completion
    cpu: float  # CPUs used by the I/O path: submission + IRQ + wake-ups, or the polling spin
    irq_rate: float  # device interrupts per second (0 when polled; hybrid's hrtimer is not the device's)
    saturated: bool = False  # at the core's or the device's cap, or offered more than iodepth carries


@dataclass(frozen=True)
class NvmeEvents:
    iops: float
    mean_latency: float
    p50: float
    p99: float
    p999: float
    cpu: float
    irq_rate: float
    samples: tuple[float, ...] = ()  # every I/O's latency, when asked for (to pool percentiles across runs)


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def _lognormal(media: Media) -> tuple[float, float]:
    s2 = math.log1p(media.cv * media.cv)
    return math.log(media.mean) - s2 / 2, math.sqrt(s2)


def mean_max(media: Media, a: float, power: int = 1) -> float:
    """E[max(D, a)^power] for lognormal D: a hybrid poller awake at a finds D done, or spins until it is."""
    if a <= 0:
        return media.mean if power == 1 else media.mean**2 * (1 + media.cv**2)
    mu, sigma = _lognormal(media)
    z = (math.log(a) - mu) / sigma
    return a**power * _phi(z) + math.exp(power * mu + (power * sigma) ** 2 / 2) * _phi(power * sigma - z)


def timer_exit(cstate: float, sleep: float) -> float:
    """Exit latency of a timed sleep: the governor knows the hrtimer, so it never picks a state whose
    target residency exceeds the sleep. An IRQ wait gives it no such bound: that pays `cstate`."""
    deepest = 0.0
    for exit_, residency in SKX_CSTATES:
        deepest = exit_ if residency <= sleep else deepest
    return min(cstate, deepest)


def nvme_queue(
    mode: str,
    media: Media,
    *,
    iodepth: int,
    rate: float = 0.0,
    cstate: float = 0.0,
    irq_cost: float = IRQ_COST,
    wake_cost: float = WAKE_COST,
    poll_delta: float = 0.3e-6,
    submit_cost: float = SUBMIT_COST,
) -> NvmeResult:
    """Closed form: rate 0 = closed loop at `iodepth`, rate > 0 = Poisson IOPS with at most `iodepth`
    outstanding. Defaults from §9.4: t_irq 1–2 µs, t_wake 2–5 µs, δ_poll 0.2–0.5 µs, c_sub 1–2 µs."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {MODES}")
    g, done = 1.0 / media.max_iops, irq_cost if mode == "irq" else poll_delta
    setup, hybrid = (cstate + wake_cost if mode == "irq" else 0.0), mode == "hybrid"

    def closed(depth: int, saturated: bool = False) -> NvmeResult:
        if hybrid and depth == 1:  # the only case where hybrid sleeps in a closed loop
            tau = media.mean / 2
            window = tau + timer_exit(cstate, tau) + wake_cost
            latency = submit_cost + mean_max(media, window) + poll_delta
            busy = submit_cost + wake_cost + mean_max(media, window) - window + poll_delta  # wake + spin
            return NvmeResult(1 / latency, latency, busy / latency, 0.0, saturated)
        m = max(submit_cost + done, g)
        x, idle = _finite_source(depth, m, setup, media.mean + submit_cost + done - m)
        batch = _batch_cycle(media, depth, m, setup) if setup else 0.0
        if batch and depth / batch < x:
            x, idle = depth / batch, 1 / depth
        cpu = x * (submit_cost + done + idle * wake_cost) if mode == "irq" else 1.0
        return NvmeResult(x, depth / x, cpu, x if mode == "irq" else 0.0, saturated or x * m >= 0.99)

    if rate <= 0:
        return closed(iodepth)
    spread, lam, rho = media.cv * media.mean, rate, rate * (submit_cost + done)
    if iodepth == 1:  # each I/O runs the QD1 cycle alone, later ones wait for the slot: M/G/1
        one = closed(1)
        hold = one.mean_latency
        if lam * hold >= 1:
            return closed(1, True)
        if hybrid:  # the cycle is c_sub + max(D, window) + δ: less spread than D's
            window = media.mean / 2 + timer_exit(cstate, media.mean / 2) + wake_cost
            spread = math.sqrt(max(0.0, mean_max(media, window, 2) - mean_max(media, window) ** 2))
        wait = lam * (hold * hold + spread * spread) / (2 * (1 - lam * hold))  # Pollaczek–Khinchine
        return NvmeResult(lam, hold + wait, lam * one.cpu / one.iops, lam if mode == "irq" else 0.0)
    if rho >= 1 or lam * g >= 1:
        return closed(iodepth, True)
    wait_g = lam * g * g / (2 * (1 - lam * g))  # M/D/1 at the gate
    idle = (1 - rho) / (1 + lam * setup)  # P(core idle): busy = ρ + λ·idle·setup
    work = lam * (submit_cost**2 + (1 - idle) * done**2 + idle * (done + setup) ** 2) / (2 * (1 - rho))
    latency = 2 * work + submit_cost + done + idle * setup + wait_g + media.mean  # both jobs wait `work`
    cpu = lam * (submit_cost + done + idle * wake_cost)
    if mode != "irq":
        tau = (media.mean + wait_g) / 2
        exit_ = timer_exit(cstate, tau) if hybrid else 0.0
        wake = exit_ + wake_cost if hybrid else 0.0
        window = tau + wake  # a sleeper's submission to its wake
        own = mean_max(media, window) - media.mean if hybrid else 0.0
        others = _early(media, window, submit_cost) if hybrid else 0.0
        alone = 1.0
        for _ in range(30):  # fixed point in P(alone); wakes are core work the submissions queue behind
            rate_w = lam * alone * hybrid
            rho_w = rho + rate_w * wake
            # both jobs wait the queued work; submissions also a wake in progress (completions: `others`)
            waits = (2 * lam * (submit_cost**2 + done**2) + rate_w * wake * wake) / (2 * (1 - rho_w))
            latency = waits + submit_cost + done + wait_g + media.mean + alone * own + rate_w * window * others
            alone = _slots(lam, latency - done, spread, iodepth)[1]  # from arrival until its completion is posted
        sleep = lam * alone * hybrid * (tau + exit_) * (1 - lam * submit_cost)
        cpu = 1 - _slots(lam, latency, spread, iodepth)[1] - sleep  # spin while any I/O is in the system
    wait = _slots(lam, latency, spread, iodepth)[0]
    if math.isinf(wait):
        return closed(iodepth, True)
    return NvmeResult(lam, latency + wait, cpu, lam if mode == "irq" else 0.0)


def _early(media: Media, window: float, submit: float) -> float:
    """Mean wait of an I/O submitted at a uniform point of a sleeper's window whose completion comes
    before the sleeper wakes: (1/T)∫ E[(v − c_sub − D)⁺] dv over the time v left (midpoint rule)."""
    steps = 16
    vs = ((k + 0.5) / steps * window - submit for k in range(steps))
    return sum(mean_max(media, v) - media.mean for v in vs if v > 0) / steps


def _slots(lam: float, hold: float, spread: float, slots: int) -> tuple[float, float]:
    """`slots` outstanding-I/O slots as an M/G/c queue: the mean wait (Erlang C × (1 + c_s²)/2, Allen–Cunneen)
    and P(no I/O in the system) (M/M/c; the M/G/∞'s e^{−a} when slots ≫ a = λ·hold)."""
    a = lam * hold
    if a >= slots:
        return math.inf, 0.0
    b = 1.0  # Erlang B by recursion
    for k in range(1, slots + 1):
        b = a * b / (k + a * b)
    rho = a / slots
    pmf = math.exp(slots * math.log(a) - math.lgamma(slots + 1) - a) if a > 0 else 0.0  # P[Pois(a) = slots]
    empty = math.exp(-a) / (pmf * (1 / b - 1 + 1 / (1 - rho))) if pmf > 0 else math.exp(-a)
    return b / (1 - rho * (1 - b)) * (1 + (spread / hold) ** 2) / 2 * hold / (slots - a), empty


def _finite_source(n: int, m: float, setup: float, think: float) -> tuple[float, float]:
    """Throughput and P(a completion finds the core idle) of M/D/1//n with a setup time on idle."""
    if n > min(3 * (think + setup) / m + 8, 400):  # deep in saturation: the core never idles
        return 1 / m, 0.0
    if not setup:  # MVA; the one in service has m/2 left on average (deterministic residual)
        q = u = x = 0.0
        for k in range(1, n + 1):
            x = min(k / (m + m * max(q - u, 0.0) + u * m / 2 + think), 1 / m)
            q, u = k - x * think, x * m
        return x, 1 - u
    # Markov chain of the number queued after a departure, exponential think: arrivals in a window are binomial
    stay_busy, stay_setup = math.exp(-m / think), math.exp(-(m + setup) / think)  # P(no return in the window)

    def tail(k: int) -> list[float]:  # P[next state > j | state k], j = 0..n-1
        trials, q, low = (n - 1, stay_setup, 0) if k == 0 else (n - k, stay_busy, k - 1)
        pmf, tails, acc = [math.comb(trials, a) * (1 - q) ** a * q ** (trials - a) for a in range(trials + 1)], [], 0.0
        for j in range(n):
            acc += pmf[j - low] if 0 <= j - low <= trials else 0.0
            tails.append(max(0.0, 1 - acc))
        return tails

    pi, tails = [1.0], []
    for j in range(n - 1):  # the cut between j and j+1: flow up = flow down (one departure, no arrival)
        tails.append(tail(j))
        pi.append(sum(pi[k] * tails[k][j] for k in range(j + 1)) / stay_busy ** (n - j - 1))
        if pi[-1] > 1e100:  # the equations are homogeneous: rescale before they overflow
            pi = [v / pi[-1] for v in pi]
    p0 = pi[0] / sum(pi)
    return 1 / (p0 * (think / n + setup + m) + (1 - p0) * m), p0


def _batch_cycle(media: Media, n: int, m: float, setup: float) -> float:
    """Cycle when all n I/O wait out one setup together, are resubmitted m apart and the core idles until
    the first is back: E[min_k(D_k − (n−1−k)m)] + setup + n·m. 0 when the first is back too early."""
    if n < 2 or (n - 1) * m >= media.mean:  # E[min] ≤ E[D] − (n−1)m
        return 0.0
    mu, sigma = _lognormal(media)
    offsets = [(n - 1 - k) * m for k in range(n)]
    start, steps = -offsets[0], 200
    dt = (media.mean * (1 + 12 * media.cv) - start) / steps
    ts = [start + (i + 0.5) * dt for i in range(steps)]
    survive = (math.prod(_phi((mu - math.log(t + a)) / sigma) if t + a > 0 else 1.0 for a in offsets) for t in ts)
    first = start + sum(survive) * dt
    return first + setup + n * m if first > 0 else 0.0


def simulate_nvme(
    mode: str,
    media: Media,
    *,
    iodepth: int,
    rate: float = 0.0,
    ios: int = 20_000,
    seed: int = 1,
    cstate: float = 0.0,
    irq_cost: float = IRQ_COST,
    wake_cost: float = WAKE_COST,
    poll_delta: float = 0.3e-6,
    submit_cost: float = SUBMIT_COST,
    samples: bool = False,
) -> NvmeEvents:
    """The mechanism of the module docstring I/O by I/O, sharing none of the closed form's queueing
    formulas. Jobs reach the core in time order, so serving them as they pop off the heap is FIFO."""
    rng = random.Random(seed)
    mu, sigma = _lognormal(media)
    g, closed = 1.0 / media.max_iops, rate <= 0
    done_cost = irq_cost if mode == "irq" else poll_delta
    start, device, latency = [0.0] * ios, [0.0] * ios, [0.0] * ios
    heap = [(0.0, 1, i) for i in range(min(iodepth, ios))]  # (time, 0 completion | 1 submission, I/O)
    if not closed:  # Poisson arrivals, merged with the heap as they come due (a short heap is a fast heap)
        t, heap = 0.0, []
        for i in range(ios):
            t += rng.expovariate(rate)
            start[i] = t
    issued = len(heap) if closed else 0
    core = gate = cpu = last = dev_sum = 0.0
    outstanding = completed = 0
    backlog: deque[int] = deque()
    sleep_until = woke = -1.0  # hybrid: the timer set for an I/O submitted into an empty system (-1: none)

    def submit(i: int, now: float) -> None:
        nonlocal gate, outstanding, sleep_until, woke
        if mode == "hybrid" and outstanding == 0:
            tau = dev_sum / max(completed, 1) / 2  # ½ the mean device time seen so far
            sleep_until, woke = now + tau, now + tau + timer_exit(cstate, tau) + wake_cost
        begin = now if now > gate else gate
        gate, outstanding = begin + g, outstanding + 1
        device[i] = begin - now + math.exp(rng.gauss(mu, sigma))  # gate wait + D (lognormal)
        heapq.heappush(heap, (now + device[i], 0, i))

    while True:
        if not closed and issued < ios and (not heap or start[issued] < heap[0][0]):
            t, kind, i, issued = start[issued], 1, issued, issued + 1
        elif heap:
            t, kind, i = heapq.heappop(heap)
        else:
            break
        if kind and not closed and outstanding >= iodepth:
            backlog.append(i)
            continue
        if sleep_until >= 0 and kind == 0 and t < woke:  # seen when the sleeper wakes; the core stays free
            heapq.heappush(heap, (woke, 0, i))
            continue
        at = t if t > core else core
        if sleep_until >= 0 and (kind == 0 or t >= sleep_until):  # the hybrid sleeper's timer has fired
            at, cpu, sleep_until = max(at, woke), cpu + wake_cost + max(0.0, t - max(woke, core)), -1.0
        elif t >= core and mode == "irq" and kind == 0:  # IRQ into an idle core: C-state exit + wake-up
            at, cpu = t + cstate + wake_cost, cpu + wake_cost
        elif t >= core and mode != "irq" and outstanding and sleep_until < 0:
            cpu += t - core  # spinning
        if kind:
            core, cpu = at + submit_cost, cpu + submit_cost
            start[i] = at if closed else start[i]
            submit(i, core)
            continue
        outstanding, completed, dev_sum = outstanding - 1, completed + 1, dev_sum + device[i]
        seen = at + done_cost
        latency[i], core, cpu, last = seen - start[i], seen, cpu + done_cost, seen
        nxt = -1
        if closed and issued < ios:
            nxt, issued = issued, issued + 1
            start[nxt] = seen
        elif not closed and backlog:
            nxt = backlog.popleft()
        if nxt >= 0:  # the thread that saw the completion submits the next I/O
            core, cpu = seen + submit_cost, cpu + submit_cost
            submit(nxt, core)
    ordered = sorted(latency)

    def pct(p: float) -> float:
        return ordered[min(ios - 1, int(p * ios))]

    irq_rate = completed / last if mode == "irq" else 0.0
    kept = tuple(latency) if samples else ()
    return NvmeEvents(ios / last, sum(latency) / ios, pct(0.5), pct(0.99), pct(0.999), cpu / last, irq_rate, kept)
