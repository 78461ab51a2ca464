"""One pass of the agent: measure → assess → decide → check → act → verify (keep or roll back).

The loop holds no policy of its own: placement comes from `decide/placement.py`, the rest of
the proposals (storm guard, moderation, NAPI) from `propose.py`, findings and advice from
`findings.py` and `decide/advice/`. What it adds is the safety around
them: at most `max_changes` per pass, a knob holds for `dwell` seconds before it may change
again, a knob that flips back and forth is frozen, and a change after which the device got
worse (more drops or time_squeeze on its CPUs or in its own counters, beyond noise) is rolled back and that knob
backs off (a change is on probation for PROBATION_PASSES passes). In `observe` mode every decision
is a recommendation and nothing is written.
The clock is injected, so the same loop runs on a real host and on a simulated one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..act.engine import APPLIED, FAILED, change, prepare, read_quietly
from ..act.journal import Journal
from ..act.knobs import KnobError, make_knob
from ..config import Config
from ..decide.advice import advise, supersede
from ..decide.placement import placement_inputs, placement_plan
from ..findings import Measurements, find_all
from ..host import Host
from ..measure.nvme import read_nvme
from ..measure.rates import Rates, compute_rates
from ..measure.snapshot import Snapshot, take_snapshot
from .propose import Decision, Proposer

log = logging.getLogger("irqtune.agent")

NOISE = 0.10  # relative change of a health counter that counts as real
NOISE_FLOOR = 50.0  # per second: below this, drops and squeezes are noise
BACKOFF_PASSES = 10  # a rolled-back knob is left alone this many passes
LOAD_CHANGE = 0.25  # relative rise of the offered load that voids a before/after comparison
PROBATION_PASSES = 3  # a change is checked against its device's health before it for this many passes


@dataclass
class PassReport:
    number: int
    at: float
    findings: list[dict] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    rollbacks: list[Decision] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"pass": self.number, "at": self.at, "findings": self.findings,
                "decisions": [d.to_json() for d in self.decisions],
                "rollbacks": [d.to_json() for d in self.rollbacks]}  # fmt: skip


@dataclass
class _Applied:
    decision: Decision
    at: float
    health: float  # drops + squeezes per second on the device's CPUs before the change
    offered: float  # packets per second offered to the device then (delivered + dropped)
    checked: int = 0  # passes that found the device healthy since


class Agent:
    def __init__(self, host: Host, config: Config, state_dir: str, clock: Callable[[], float],
                 journal: Journal | None = None) -> None:  # fmt: skip
        self.host, self.config, self.state_dir, self.clock = host, config, state_dir, clock
        self.journal = journal  # needed in tune mode
        self.before: Snapshot | None = None
        self.passes = 0
        self.last_change: dict[str, float] = {}  # knob -> when it last changed
        self.flips: dict[str, list[float]] = {}
        self.frozen: dict[str, str] = {}  # knob -> why
        self.backoff: dict[str, int] = {}  # knob -> passes left
        self.pending: list[_Applied] = []
        self.rounded: dict[tuple[str, str], str] = {}  # (knob, target) -> what the driver read back instead
        self.placed = False
        self.inventory = None
        self.rates: Rates | None = None
        self.proposer = Proposer(host)

    @property
    def tuning(self) -> bool:
        return self.config.mode == "tune"

    def run_pass(self) -> PassReport:
        now = self.clock()
        self.passes += 1
        report = PassReport(self.passes, now)
        snap = take_snapshot(self.host)
        snap.monotonic = now
        before, self.before = self.before, snap
        rates = compute_rates(before, snap) if before and now > before.monotonic else None
        self.rates = rates
        inventory, topology, _ = placement_inputs(self.host, self.state_dir, **self._rule_args())
        self.inventory = inventory
        measured = Measurements(topology, inventory, rates)
        findings = find_all(measured)
        if rates is not None:  # advice (NVMe polling, TLB/IPI on isolated CPUs) from /proc rates; no probes here
            findings = supersede(findings, advise(measured, None, read_nvme(self.host), cpu_idle=rates.idle_time))
        report.findings = [f.to_json() for f in findings]
        if rates is not None:
            report.rollbacks = self._verify(rates, now)
        placement = [] if self.placed else self._placement()
        proposals = list(placement)
        if rates is not None:
            proposed, advice = self.proposer.propose(self.config, inventory, rates, findings)
            proposals += proposed
            report.findings += [f.to_json() for f in advice]
        budget = self.config.limits.max_changes
        proposals = [d for d in (self._bounded(p) for p in proposals) if d is not None]
        for decision in proposals:
            held = self._held(decision.knob, now)
            rounded = self.rounded.get((decision.knob, decision.target))
            if decision.outcome == "refused":
                pass
            elif rounded == decision.current:  # the driver cannot do better than what it has
                decision.outcome, decision.note = "unchanged", f"the driver rounds {decision.target} to {rounded}"
            elif held:
                decision.outcome, decision.note = "held", held
            elif budget <= 0:
                decision.outcome, decision.note = "held", "max_changes reached this pass"
            elif self.tuning:
                self._apply(decision, now, rates)
                budget -= decision.outcome == APPLIED
            report.decisions.append(decision)
        if self.tuning and any(d.outcome == "held" for d in placement):
            self.placed = False  # max_changes or dwell held some of it: place again next pass
        for knob in list(self.backoff):
            self.backoff[knob] -= 1
            if self.backoff[knob] <= 0:
                del self.backoff[knob]
        return report

    # -- decide ------------------------------------------------------------------
    def _rule_args(self) -> dict:
        unmanaged = frozenset(rule.name for rule in self.config.devices if rule.name and not rule.manage)
        banned = self.config.cpus.cpus("banned") | self.config.cpus.cpus("critical")
        return {"banned": banned, "exclude": unmanaged, "device_cpus": self.config.device_cpus()}

    def _placement(self) -> list[Decision]:
        self.placed = True
        plan, _ = placement_plan(self.host, self.state_dir, colocate=self.config.colocations(),
                                 steer=self.config.steered(), **self._rule_args())  # fmt: skip
        decisions = []
        for c in plan.changes:
            broken = [v for v in plan.violations if v.startswith(c.knob + ":")]
            decision = Decision(c.knob, c.current, c.target, c.reason, c.device)
            if broken:  # never applied: the checks are the last word
                decision.outcome, decision.note = "refused", "; ".join(broken)
            decisions.append(decision)
        return decisions

    # -- check -------------------------------------------------------------------
    def _bounded(self, decision: Decision) -> Decision | None:
        """The decision with its target clamped into the config's bounds; None if that leaves nothing to do."""
        bound = self.config.bound(decision.knob)
        if bound is None or not decision.target.isdigit():
            return decision
        low, high = bound
        target = min(high, max(low, int(decision.target)))
        if str(target) == decision.current:
            return None
        if str(target) != decision.target:
            decision.reason += f" (wanted {decision.target}, held to the config's bounds {low}..{high})"
            decision.target = str(target)
        return decision

    def _held(self, knob: str, now: float) -> str | None:
        if knob in self.frozen:
            return f"frozen: {self.frozen[knob]}"
        if knob in self.backoff:
            return f"backing off after a rollback ({self.backoff[knob]} passes left)"
        last = self.last_change.get(knob)
        if last is not None and now - last < self.config.limits.dwell:
            return f"dwell: changed {now - last:g} s ago (minimum {self.config.limits.dwell:g} s)"
        return None

    # -- act ---------------------------------------------------------------------
    def _apply(self, decision: Decision, now: float, rates: Rates | None, verify: bool = True) -> None:
        """Write through the engine and journal; `verify`: check its effect next pass (not for rollbacks)."""
        try:
            knob = make_knob(self.host, decision.knob)
            prepare(knob, self.host, self.state_dir)
            result = change(knob, decision.target, self.journal, self.state_dir)
        except KnobError as err:
            decision.outcome, decision.note = "refused", str(err)
            return
        decision.outcome, decision.note = result.outcome, result.message
        if result.outcome == FAILED and result.after not in (None, result.before):
            # the host changed, to another value than asked: the driver rounded it (when a second read agrees),
            # or something else wrote meanwhile. Either way it counts as a change of this knob, checked as one.
            if read_quietly(knob) == result.after:
                self.rounded[(decision.knob, decision.target)] = result.after
            decision.outcome, decision.note = APPLIED, f"the device holds {result.after} for {decision.target}"
        if decision.outcome != APPLIED:
            return
        log.info("%s: %s -> %s: %s", decision.knob, decision.current, decision.target, decision.reason)
        if decision.knob in self.proposer.seen and decision.target.isdigit():
            self.proposer.seen[decision.knob] = int(decision.target)  # what the knob holds now
        flips = [t for t in self.flips.get(decision.knob, []) if now - t < 2 * self.config.limits.dwell]
        self.flips[decision.knob] = [*flips, now]
        if len(self.flips[decision.knob]) >= 3:
            self.frozen[decision.knob] = f"changed 3 times within {2 * self.config.limits.dwell:g} s"
        self.last_change[decision.knob] = now
        self.pending = [p for p in self.pending if p.decision.knob != decision.knob]  # superseded
        if verify:
            self.pending.append(
                _Applied(
                    decision,
                    now,
                    device_health(rates, self._irqs(decision.device), decision.device),
                    device_load(rates, self._irqs(decision.device), decision.device),
                )
            )

    def _irqs(self, device: str | None) -> list[int]:
        found = self.inventory.device(device) if device and self.inventory else None
        return [q.irq for q in found.irqs] if found else []

    # -- verify ------------------------------------------------------------------
    def _verify(self, rates: Rates, now: float) -> list[Decision]:
        """Each change on probation (applied within the last PROBATION_PASSES passes): if its device's drops or
        squeezes rose beyond noise, undo the device's latest changes (one pass's batch; older ones stay on
        probation) and back off those knobs; a change that stays healthy is kept. When the offered load rose
        by more than LOAD_CHANGE meanwhile, the comparison says nothing about the change: its baseline is
        taken again (a burst's drops are not the change's)."""
        undone, pending, self.pending = [], self.pending, []
        latest: dict[str | None, float] = {}
        for applied in pending:
            latest[applied.decision.device] = max(applied.at, latest.get(applied.decision.device, applied.at))
        for applied in pending:
            d = applied.decision
            after = device_health(rates, self._irqs(d.device), d.device)
            offered = device_load(rates, self._irqs(d.device), d.device)
            if offered > applied.offered * (1 + LOAD_CHANGE) + NOISE_FLOOR:
                applied.health, applied.offered = after, offered
                self.pending.append(applied)
                continue
            if after <= max(NOISE_FLOOR, applied.health * (1 + NOISE)):
                applied.checked += 1
                if applied.checked < PROBATION_PASSES:
                    self.pending.append(applied)
                continue
            if applied.at < latest[d.device]:  # a later change on this device is the likelier cause
                self.pending.append(applied)
                continue
            back = Decision(d.knob, d.target, d.current, f"rolled back: drops+squeezes {applied.health:,.0f}/s -> "
                            f"{after:,.0f}/s after {d.knob} {d.current} -> {d.target}", d.device)  # fmt: skip
            self._apply(back, now, None, verify=False)
            back.outcome = "rolled-back" if back.outcome == APPLIED else back.outcome
            self.backoff[d.knob] = BACKOFF_PASSES
            undone.append(back)
        return undone


def serving_cpus(rates: Rates, irqs: list[int]) -> set[int]:
    """CPUs that took these IRQs in the window; every CPU with softnet counters if none is known."""
    serving = set()
    for irq in irqs:
        row = rates.interrupts.get(str(irq))
        if row:
            serving |= {c for c, r in row.per_cpu.items() if r > 0}
    return serving or set(rates.softnet)


def device_load(rates: Rates | None, irqs: list[int], device: str | None = None) -> float:
    """Packets per second offered to the device: its /proc/net/dev received + dropped, else what the CPUs
    serving its IRQs processed and dropped."""
    if rates is None:
        return 0.0
    own = rates.netdev.get(device) if device else None
    if own is not None:
        return own.get("rx_packets", 0.0) + own.get("rx_drop", 0.0) + own.get("rx_fifo", 0.0)
    return sum(rates.softnet[c].get("processed", 0.0) + rates.softnet[c].get("dropped", 0.0)
               for c in serving_cpus(rates, irqs) if c in rates.softnet)  # fmt: skip


def device_health(rates: Rates | None, irqs: list[int], device: str | None = None) -> float:
    """Drops + time_squeeze per second on the CPUs serving these IRQs (every CPU if none is known), plus the
    device's own receive drops (ring overflows: /proc/net/dev `drop` and `fifo`)."""
    if rates is None:
        return 0.0
    cpus = serving_cpus(rates, irqs)
    own = rates.netdev.get(device, {}) if device else {}
    return own.get("rx_drop", 0.0) + own.get("rx_fifo", 0.0) + sum(
        rates.softnet[c].get("dropped", 0.0) + rates.softnet[c].get("time_squeeze", 0.0)
        for c in cpus if c in rates.softnet)  # fmt: skip
