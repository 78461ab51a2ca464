"""One pass of the agent: measure → assess → decide → check → act → verify (keep or roll back).

The loop holds no policy of its own: placement comes from `decide/placement.py`, the rest of the proposals (storm
guard, moderation, NAPI) from `propose.py`, findings and advice from `findings.py` and `decide/advice/`. What it
adds is the safety around them: at most `max_changes` optimisation moves per pass, one device at a time in turn
(`round_robin`), while a violation fix (an IRQ taken off an isolated, critical or banned CPU: `violation_fixes`) is
applied in the same pass whatever the budget; a knob holds for `dwell` seconds before it may change again, a knob
that flips back and forth is frozen (FLIPS changes within 2 dwells: where it is; FLAP_RETURNS returns to an earlier
value within FLAP_DWELLS dwells, the toggle once a period of a load that alternates more slowly than the dwell: at
the safer value, `_flapping`), and a change after which the device got worse (more drops or time_squeeze on its
CPUs or in its own counters, beyond noise) is rolled back and that knob backs off. A change stays on probation
until PROBATION_PASSES full windows found the device healthy: a link event, a device change or a hotplug never ends
it, a change that cannot be judged (the load rose with the loss) is rolled back after UNJUDGED_LIMIT passes, one
whose traffic stopped waits for it, one whose device left is dropped unwritten, and a rollback never writes over a
value something else set since. A NAPI budget step must also pay by the end of its probation (more delivered or
fewer dropped, `decide/napi.py` `budget_paid`), else it is rolled back: a fall of time_squeeze alone only shows the
squeeze moved. A change that carries the model's prediction (moderation) is compared with what the first window
that judges it and ran all under it measured (`checks`; the pass's own reading precedes its writes, so on a host
where a pass takes time that is the second window). Between passes the agent reads the managed devices' cheap
counters `samples` times an interval (`sample`, measure/bursts.py): the moderation choice weighs a window whose
bursts these sub-samples saw at its rate levels, not at its mean. In `observe` mode every decision is a
recommendation and nothing is written. The clock is injected, so the same loop runs on a real host and on a
simulated one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..act.engine import APPLIED, DRIFTED_KEPT, FAILED, change, prepare, read_knob, read_quietly
from ..act.journal import Journal
from ..act.knobs import KnobError, make_knob
from ..config import MIN_SAMPLE_GAP, Config
from ..decide import napi as napi_policy
from ..decide.advice import advise, supersede
from ..decide.memory import advise_memory
from ..decide.moderation import safer
from ..decide.placement import placement_plan, placement_rules
from ..decide.spread import usable_cpus
from ..findings import Measurements, find_all, rx_dropped
from ..host import Host
from ..measure.bursts import Burst, Sample, bursts, read_sample, sample_of
from ..measure.memory import KernelLog, MemoryState, read_memory
from ..measure.nic_ethtool import read_nic_ethtool
from ..measure.nvme import read_nvme
from ..measure.rates import Rates
from ..measure.reading import ReadCache, Reading, input_problems, read_host, read_queue_masks, read_threads
from ..measure.snapshot import Snapshot
from ..model.coalesce import GOAL_WEIGHT_US, writable_usecs
from ..parse.common import CpuListError, Problem, parse_cpulist
from ..plan import Change, Rules, fixes_violation
from .critical import net_devices, rule_args
from .kube import KubeWatch
from .pins import Pinner
from .propose import Proposer

log = logging.getLogger("irqtune.agent")

NOISE = 0.10  # relative change of a health counter that counts as real
NOISE_FLOOR = 50.0  # per second: below this, drops and squeezes are noise
BACKOFF_PASSES = 10  # a rolled-back knob is left alone this many passes
MISS_BACKOFF = 1  # ... this many after the model's miss: the model has learned, its next choice is a new one
LOAD_CHANGE = 0.25  # relative change of the offered load beyond which loss is compared per packet
LOSS_FLOOR = 0.001  # loss per offered packet below this difference is noise
PROBATION_PASSES = 3  # a change is kept after this many healthy passes
UNJUDGED_LIMIT = 3  # a change that this many passes could not judge is rolled back
MIN_WINDOW = 0.5  # a window shorter than this share of the interval judges nothing (an event's early pass)
FLIPS = 3  # a knob changed this many times within 2 dwells is frozen where it is
QUIET_PPS = 1000.0  # packets/s received below which a device is not sub-sampled: its bursts cannot matter
FLAP_RETURNS = 2  # a knob that returns to a value it held before this many times ...
FLAP_DWELLS = 10  # ... within this many dwells is flapping: frozen at the safer of the two values (`safer`)


@dataclass
class PassReport:
    number: int
    at: float
    findings: list[dict] = field(default_factory=list)
    decisions: list[Change] = field(default_factory=list)
    rollbacks: list[Change] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # predictions against measurements (Proposer.check)
    tracking: list[dict] = field(default_factory=list)  # each settled window against the model fitted before it
    problems: list[Problem] = field(default_factory=list)  # malformed input, as `status` names it (FILE:LINE)
    pins: list[Change] = field(default_factory=list)  # the config's [pin]: written, would be, drifted (pins.py)

    def to_json(self) -> dict:
        return {"pass": self.number, "at": self.at, "findings": self.findings,
                "decisions": [d.to_json() for d in self.decisions],
                "rollbacks": [d.to_json() for d in self.rollbacks], "checks": self.checks,
                "tracking": self.tracking, "problems": [p.to_json() for p in self.problems],
                "pins": [p.to_json() for p in self.pins]}  # fmt: skip


@dataclass
class _Move:
    at: float
    before: str
    after: str


@dataclass
class _Applied:
    decision: Change
    at: float
    health: float  # drops + squeezes per second on the device's CPUs before the change
    offered: float  # packets per second offered to the device then (delivered + dropped)
    checked: int = 0  # passes that found the device healthy since
    unjudged: int = 0  # passes that could not tell (the load rose with the loss, the traffic stopped)
    compared: bool = False  # its prediction was compared with a measurement (once)
    written: float = 0.0  # when the write was done (the clock): a window that began before it mixes two settings
    paid_from: napi_policy.Delivery | None = None  # a budget step: the host's delivery before it
    paid_by: list[napi_policy.Delivery] = field(default_factory=list)  # and in each healthy window since


class Agent:
    def __init__(self, host: Host, config: Config, state_dir: str, clock: Callable[[], float],
                 journal: Journal | None = None,
                 probes: Callable[[], Mapping | None] | None = None) -> None:  # fmt: skip
        self.host, self.config, self.state_dir, self.clock = host, config, state_dir, clock
        self.probes = probes  # the last window's eBPF probe data for the advice, where a caller has some (the
        # simulator); `irqtune run` loads no probes itself
        self.journal = journal  # needed in tune mode
        self.before: Snapshot | None = None
        self.passes = 0
        self.last_change: dict[str, float] = {}  # knob -> when it last changed
        self.flips: dict[str, list[float]] = {}
        self.moves: dict[str, list[_Move]] = {}  # knob -> its changes within the last FLAP_DWELLS dwells
        self.frozen: dict[str, str] = {}  # knob -> why
        self.backoff: dict[str, int] = {}  # knob -> passes left
        self.pending: list[_Applied] = []
        self.rounded: dict[tuple[str, str], str] = {}  # (knob, target) -> what the driver read back instead
        self.placed = False
        self.inventory = None
        self.reading: Reading | None = None  # this pass's
        self.cache = ReadCache()  # topology and sysfs devices, read again when a CPU or a device comes or goes
        self.rates: Rates | None = None
        self.proposer = Proposer(host)
        self.proposer.load(state_dir)  # what an earlier run learned of each device's response
        self.watched: dict[str, list[int]] = {}  # device -> its IRQs, sub-sampled between passes
        self.samples: list[Sample] = []  # this window's sub-samples, the last pass's snapshot first
        self.due: list[float] = []  # when the next sub-samples are due
        self.bursts: dict[str, Burst] = {}  # the last window's, per device (measure/bursts.py)
        self.wrote: dict[str, float] = {}  # device -> when the loop last wrote one of its knobs (the clock)
        self.pinner = Pinner(host, state_dir)  # the config's [pin]: held, never moved
        self.kube = KubeWatch(host, config.kubernetes)  # opted-in pods' exclusive CPUs: critical while they run
        self.kernel_log = KernelLog(host)  # allocation failures, counted from where the last pass stopped
        self.memory: MemoryState | None = None  # the last pass's reserve (measure/memory.py)

    @property
    def tuning(self) -> bool:
        return self.config.mode == "tune"

    def _dropping_rings(self, rates: Rates | None, inventory) -> dict[str, dict[str, int]] | None:
        """The rings of the NICs that dropped received packets this window (the rx-ring-small finding): read only
        then, one ethtool GET each, so a pass without drops costs nothing more."""
        if rates is None:
            return None
        dropping = [d.name for d in inventory.devices if d.kind == "nic" and _rx_drops(rates.netdev.get(d.name))]
        rings = {name: e["rings"] for name, e in read_nic_ethtool(self.host, dropping).items() if "rings" in e}
        return rings or None

    def run_pass(self) -> PassReport:
        now = self.clock()
        self.passes += 1
        report = PassReport(self.passes, now)
        reading = read_host(self.host, self.state_dir, before=self.before, monotonic=now,
                            cache=self.cache)  # /proc once a pass; topology and devices again when changed  # fmt: skip
        self.reading, self.before = reading, reading.snapshot
        report.problems = input_problems(reading, self.host) + self._poll_kubernetes()
        rates, inventory = reading.rates, reading.inventory
        self.rates, self.inventory = rates, inventory
        self.bursts = self._close_window(reading, now)
        measured = Measurements(reading.topology, inventory, rates, rings=self._dropping_rings(rates, inventory))
        findings = find_all(measured)
        if rates is not None:  # advice (NVMe polling, TLB/IPI on isolated CPUs) from /proc rates and any probe data
            probes = self.probes() if self.probes else None
            findings = supersede(findings, advise(measured, probes, read_nvme(self.host), cpu_idle=rates.idle_time,
                                                  prices=self._nvme_prices(inventory)))  # fmt: skip
        report.findings = [f.to_json() for f in findings]
        if rates is not None:
            report.rollbacks = self._verify(rates, now, report.checks)
            began = now - rates.interval  # a device written since (a pass takes time; rollbacks just now) ran
            self.proposer.unsettled = {dev for dev, at in self.wrote.items() if at > began + 1e-6}  # two settings
        if self.config.pins or self.pinner.knobs:  # (a reload that drops the pins lets their knobs go)
            report.pins = self.pinner.run(self.config, self.journal, net_devices(reading), reading.interrupts)
        rules = placement_rules(reading, **rule_args(self.config, reading.topology.online, self.kube.cpus))
        # observe mode recommends what it would still change every pass; tune mode places once (then on events)
        placement = [] if self.placed and self.tuning else self._placement(reading, rules)
        proposals = list(placement)
        if rates is not None:
            proposed, advice = self.proposer.propose(
                self.config, inventory, rates, findings, set(usable_cpus(reading.topology, rules)), self.bursts
            )
            proposals += proposed
            report.tracking = list(self.proposer.tracking)
            report.findings += [f.to_json() for f in advice]
        proposals += self._memory(rates, report)
        fixes, moves = violation_fixes([d for d in (self._bounded(p) for p in proposals) if d is not None], rules)
        for decision in fixes:  # an opted-in pod's CPUs: the reason names the pod
            whose = self.kube.whose(_cpus_of(decision.current)) if decision.knob.startswith("irq/") else ""
            decision.reason = decision.reason.replace("; ", f" ({whose}); ", 1) if whose else decision.reason
        for decision in fixes:  # outside the budget, not outside the checks
            self._consider(decision, now, rates, budget_left=True)
        budget = self.config.limits.max_changes
        for decision in moves:
            budget -= self._consider(decision, now, rates, budget_left=budget > 0)
        report.decisions += fixes + moves
        if self.tuning and any(d.outcome == "held" for d in placement):
            self.placed = False  # max_changes or dwell held some of it: place again next pass
        for knob in list(self.backoff):
            self.backoff[knob] -= 1
            if self.backoff[knob] <= 0:
                del self.backoff[knob]
        if self.proposer.models:
            self.proposer.save(self.state_dir)
        return report

    def _poll_kubernetes(self) -> list[Problem]:
        """The kubelet's exclusive CPUs of opted-in pods (agent/kube.py); placed again when they changed, so IRQs
        leave a starting pod's CPUs and may return to an ended one's. A reloaded [kubernetes] starts a new watch."""
        if self.kube.config != self.config.kubernetes:
            self.kube = KubeWatch(self.host, self.config.kubernetes)
            self.placed = False
        changed, problems = self.kube.poll()
        if changed:
            self.placed = False
        self.kube.save(self.state_dir)
        return problems

    def _memory(self, rates: Rates | None, report: PassReport) -> list[Change]:
        """The free-page reserve RX refill draws on: findings and vm.* changes from this pass and the last."""
        memory = read_memory(self.host, self.kernel_log)
        before, self.memory = self.memory, memory
        if rates is None or before is None:
            return []
        received = sum(v.get("rx_packets", 0.0) for v in rates.netdev.values())
        advice = advise_memory(before, memory, rates.interval, received_drops(rates), rx_packets_per_s=received)
        report.findings += [f.to_json() for f in advice.findings]
        return advice.changes

    # -- sub-samples ---------------------------------------------------------------
    @property
    def next_sample(self) -> float | None:
        """When the next sub-sample is due (the agent's clock); None: none before the next pass."""
        return self.due[0] if self.due else None

    def sample(self) -> None:
        """Read the watched devices' cheap counters if a sub-sample is due (else nothing): the service calls this
        while it waits for the next pass, the simulator between the parts of an interval."""
        now = self.clock()
        if not self.due or now < self.due[0] - self._slack():
            return
        self.due = [t for t in self.due if t > now + self._slack()]
        irqs = [irq for device_irqs in self.watched.values() for irq in device_irqs]
        self.samples.append(read_sample(self.host, irqs, self.watched, now))

    def _slack(self) -> float:
        return 0.01 * self.config.interval / max(self.config.samples, 1)

    def _close_window(self, reading: Reading, now: float) -> dict[str, Burst]:
        """The window's bursts from its sub-samples, this pass's snapshot the last; then the next window: what to
        watch (the managed NICs and their IRQs, the other managed interfaces) and when to sample."""
        found = {}
        if len(self.samples) > 1:
            irqs = [irq for device_irqs in self.watched.values() for irq in device_irqs]
            found = bursts([*self.samples, sample_of(reading.snapshot, irqs, self.watched)], self.watched)
        self.samples, self.due, self.watched = [], [], {}
        if self.config.samples <= 1:
            return found
        self.watched = self._watch(reading)
        if not self.watched:  # nothing busy enough to burst: no sub-samples this window
            return found
        irqs = [irq for device_irqs in self.watched.values() for irq in device_irqs]
        self.samples = [sample_of(reading.snapshot, irqs, self.watched)]
        gap = max(self.config.interval / self.config.samples, MIN_SAMPLE_GAP)
        self.due = [now + k * gap for k in range(1, self.config.samples) if k * gap < self.config.interval]
        return found

    def _watch(self, reading: Reading) -> dict[str, list[int]]:
        """Device -> IRQs to sub-sample: the managed NICs with their IRQs, other managed interfaces (veth) without;
        only those that received at least QUIET_PPS packets/s in the window just ended (a device below it cannot
        burst enough to change a moderation choice; one that wakes up is watched from the next window on)."""
        rates = reading.rates.netdev if reading.rates else None

        def busy(name: str) -> bool:
            return rates is None or rates.get(name, {}).get("rx_packets", 0.0) >= QUIET_PPS

        watched = {d.name: [q.irq for q in d.irqs] for d in reading.inventory.devices
                   if d.kind == "nic" and self.config.manages(d.name, "nic") and busy(d.name)}  # fmt: skip
        netdev = reading.snapshot.netdev.devices if reading.snapshot.netdev else {}
        for name in netdev:
            if name != "lo" and name not in watched and self.config.manages(name, "nic") and busy(name):
                watched[name] = []
        return watched

    # -- decide ------------------------------------------------------------------
    def _nvme_prices(self, inventory) -> dict[str, float]:
        """NVMe controller -> its goal's price of a core, where the config sets one for it (by name or class):
        the polling advice then weighs a spinning poller's CPU as the moderation weighs a NIC's."""
        out = {}
        for device in inventory.devices if inventory else ():
            goal = self.config.rule(device.name, "nvme").goal if device.kind == "nvme" else ""
            if goal:
                out[device.name] = GOAL_WEIGHT_US[goal]
        return out

    def _placement(self, reading: Reading, rules: Rules) -> list[Change]:
        self.placed = True
        steered = self.config.steered()
        plan = placement_plan(reading, rules, threads=read_threads(self.host, self.config.colocations()),
                              queue_masks=read_queue_masks(self.host, steered) if steered else None)  # fmt: skip
        for proposed in plan.changes:
            broken = [v for v in plan.violations if v.startswith(proposed.knob + ":")]
            if broken:  # never applied: the checks are the last word
                proposed.outcome, proposed.note = "refused", "; ".join(broken)
        return plan.changes

    # -- check -------------------------------------------------------------------
    def _consider(self, decision: Change, now: float, rates: Rates | None, budget_left: bool) -> bool:
        """Check one decision (refused, rounded, dwell, backoff, frozen, then the budget) and apply it in tune
        mode; True when it was applied."""
        held = self._held(decision.knob, now, dwell=decision.knob not in self.proposer.remodelled)
        rounded = self.rounded.get((decision.knob, decision.target))
        if decision.outcome == "refused":
            pass
        elif pinned := self.pinner.why(decision.knob):  # the operator's value: never the agent's to move
            decision.outcome, decision.note = "held", pinned
        elif rounded == decision.current:  # the driver cannot do better than what it has
            decision.outcome, decision.note = "unchanged", f"the driver rounds {decision.target} to {rounded}"
        elif held:
            decision.outcome, decision.note = "held", held
        elif self.tuning and (flapping := self._flapping(decision, now)):
            self._freeze(decision, flapping, now, rates, budget_left)
        elif not budget_left:
            decision.outcome, decision.note = "held", "max_changes reached this pass"
        elif self.tuning:  # the reserve shows its effect in the next memory burst, not in a device's health
            self._apply(decision, now, rates, verify=not decision.knob.startswith("sysctl/vm."))
        return decision.outcome == APPLIED

    def _bounded(self, decision: Change) -> Change | None:
        """The decision with its target clamped into the config's bounds; None if that leaves nothing to do."""
        bound = self.config.bound(decision.knob)
        if bound is None or not decision.target.isdigit():
            return decision
        low, high = bound
        target = min(high, max(low, int(decision.target)))
        if decision.knob.endswith("/coalesce/rx-usecs"):  # the bound must not make a delay a driver's mode
            target = writable_usecs(self._driver(decision.device), target)
            if not low <= target <= high:
                log.info("%s: no value within the config's bounds %d..%d that the driver takes as a delay (wanted "
                         "%s); left as it is", decision.knob, low, high, decision.target)  # fmt: skip
                return None
        if str(target) == decision.current:
            return None
        if str(target) != decision.target:
            decision.reason += f" (wanted {decision.target}, held to the config's bounds {low}..{high})"
            decision.target = str(target)
        return decision

    def _driver(self, device: str | None) -> str | None:
        found = self.inventory.device(device) if device and self.inventory else None
        return found.driver if found else None

    def _held(self, knob: str, now: float, dwell: bool = True) -> str | None:
        """Why the knob may not change now; `dwell` False: a moderation correction after the NIC's flavour was
        identified, which the dwell does not hold (the change it follows rested on a flavour since ruled out)."""
        if knob in self.frozen:
            return f"frozen: {self.frozen[knob]}"
        if knob in self.backoff:
            return f"backing off after a rollback ({self.backoff[knob]} passes left)"
        last = self.last_change.get(knob)
        if dwell and last is not None and now - last < self.config.limits.dwell:
            return f"dwell: changed {now - last:g} s ago (minimum {self.config.limits.dwell:g} s)"
        return None

    # -- act ---------------------------------------------------------------------
    def _apply(self, decision: Change, now: float, rates: Rates | None, verify: bool = True) -> None:
        """Write through the engine and journal; `verify`: check its effect next pass (not for rollbacks)."""
        try:
            knob = make_knob(self.host, decision.knob, allow_host_wide=self.config.allow_host_wide)
            prepare(knob, self.host, self.state_dir, self.reading.interrupts if self.reading else None)
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
        if decision.device:
            self.wrote[decision.device] = self.clock()
        if decision.knob in self.proposer.seen and decision.target.isdigit():
            self.proposer.seen[decision.knob] = int(decision.target)  # what the knob holds now
        self._record(decision, now, rollback=not verify)
        self.last_change[decision.knob] = now
        self.pending = [p for p in self.pending if p.decision.knob != decision.knob]  # superseded
        if verify:
            self.pending.append(
                _Applied(
                    decision,
                    now,
                    device_health(rates, self._irqs(decision.device), decision.device),
                    device_load(rates, self._irqs(decision.device), decision.device),
                    paid_from=_delivery(decision, rates),
                    written=self.clock(),
                )
            )

    def _record(self, decision: Change, now: float, rollback: bool) -> None:
        """Remember an applied change for the flip guards; FLIPS changes within 2 dwells freeze the knob. A rollback
        is no move of the flapping guard: its backoff already spaces the retries, and each retry must pay anew."""
        knob, dwell = decision.knob, self.config.limits.dwell
        flips = [t for t in self.flips.get(knob, []) if now - t < 2 * dwell]
        self.flips[knob] = [*flips, now]
        if len(self.flips[knob]) >= FLIPS:
            self.frozen[knob] = f"changed {FLIPS} times within {2 * dwell:g} s"
        holds = self.rounded.get((knob, decision.target), decision.target)
        moves = [m for m in self.moves.get(knob, []) if now - m.at < FLAP_DWELLS * dwell]
        self.moves[knob] = moves if rollback else [*moves, _Move(now, decision.current, holds)]

    # -- flapping ----------------------------------------------------------------
    def _flapping(self, decision: Change, now: float) -> str | None:
        """Why applying `decision` would make its knob flap: it would be the FLAP_RETURNS-th return to a value
        the knob held before within FLAP_DWELLS dwells (A -> B -> A -> B). A load that alternates with a period
        longer than the dwell toggles a knob once a period, each change waiting out the dwell: the FLIPS rule
        never sees it. None: no flapping."""
        horizon = FLAP_DWELLS * self.config.limits.dwell
        moves = [m for m in self.moves.get(decision.knob, []) if now - m.at < horizon]
        left = [m.at for m in moves if m.before == decision.target]
        if not left:  # not a return
            return None
        proposed = [*moves, _Move(now, decision.current, decision.target)]
        returns = sum(m.after in {e.before for e in proposed[:i]} for i, m in enumerate(proposed))
        if returns < FLAP_RETURNS:
            return None
        took = max([m.at for m in moves if m.after == decision.target] or left)  # one period ago
        return (f"{returns} returns to a value held before within {horizon:g} s, this one included: "
                f"{decision.current} <-> {decision.target}, a period of about {now - took:g} s")  # fmt: skip

    def _freeze(self, decision: Change, why: str, now: float, rates: Rates | None, budget_left: bool) -> None:
        """Freeze a flapping knob at the safer of the two values it alternates between (`safer`: the lower-latency
        one for moderation; for any other knob the one it holds): held where it holds it already, else written
        first (within the budget: otherwise the next pass freezes it)."""
        safe = safer(decision.knob, decision.current, decision.target)
        where = f"the safer (lower-latency) {safe}" if safe is not None else f"{decision.current}, where it is"
        if safe in (None, decision.current):
            self.frozen[decision.knob] = f"{why}; held at {where}"
            decision.outcome, decision.note = "held", f"frozen: {self.frozen[decision.knob]}"
        elif not budget_left:
            decision.outcome, decision.note = "held", "max_changes reached this pass"
            return
        else:
            self._apply(decision, now, rates)
            if decision.outcome != APPLIED:
                return
            self.frozen[decision.knob] = f"{why}; frozen at {where}"
            decision.note = f"{decision.note}; frozen: {self.frozen[decision.knob]}"
        log.warning("%s: flapping, frozen: %s", decision.knob, self.frozen[decision.knob])

    def _irqs(self, device: str | None) -> list[int]:
        found = self.inventory.device(device) if device and self.inventory else None
        return [q.irq for q in found.irqs] if found else []

    def _queue_irqs(self, device: str | None) -> list[int]:
        """The device's IRQs that carry received packets; all of its IRQs where none is named so."""
        found = self.inventory.device(device) if device and self.inventory else None
        if found is None:
            return []
        return [q.irq for q in found.irqs if q.role in ("rx", "rxtx")] or [q.irq for q in found.irqs]

    # -- verify ------------------------------------------------------------------
    def _verify(self, rates: Rates, now: float, checks: list[dict] | None = None) -> list[Change]:
        """Judge each change on probation by what followed it (see `judge`): kept after PROBATION_PASSES
        healthy passes; rolled back, with the device's other latest changes, when the device got worse; rolled
        back too when UNJUDGED_LIMIT passes could not tell (the load rose and the loss with it). Only the
        device's latest batch is blamed: older changes wait. While the traffic has stopped the change waits
        for it to come back. A window much shorter than the interval (a pass started at once by a link event or
        a hotplug) judges nothing: the probation goes on with the next full window and the baseline from before
        the change. Nothing is written over a value something else set since (drift is the operator's), and
        nothing is written for a device that left (its IRQ number or name may be another's now: `restore`
        checks that, the journal keeps the original). The first window that judges a change with a prediction
        adds its comparison to `checks`."""
        if rates.interval < MIN_WINDOW * self.config.interval:
            return []
        undone, pending, self.pending = [], self.pending, []
        missed: set[str | None] = set()  # devices whose latest batch was rolled back for the model's miss
        latest: dict[str | None, float] = {}
        for applied in pending:
            latest[applied.decision.device] = max(applied.at, latest.get(applied.decision.device, applied.at))
        for applied in pending:
            d = applied.decision
            if self._gone(d.device, rates):
                undone.append(self._left_alone(d, "dropped", f"{d.device} is gone: nothing to judge it by, nothing "
                                               "written (irqtune restore still has the original)"))  # fmt: skip
                continue
            after = device_health(rates, self._irqs(d.device), d.device)
            offered = device_load(rates, self._irqs(d.device), d.device)
            verdict, why = judge(applied.health, applied.offered, after, offered)
            whole = now - rates.interval >= applied.written - 1e-6  # the window ran all under the new setting
            if d.predicted and not applied.compared and verdict not in (BASELINE, IDLE) and whole:
                applied.compared = True
                check, window = self.proposer.check(self.config, self.inventory, rates, d)
                if check is not None and checks is not None:
                    checks.append(check)
                if check is not None and check["miss"] and applied.at == latest[d.device]:
                    missed.add(d.device)
                    if window is not None:
                        model = self.proposer.learn(d.device, window)
                        check["learned"] = model.response.to_json()
                    why = (f"the model missed: predicted {check['predicted_irq_rate']:,.0f} interrupts/s, measured "
                           f"{check['measured_irq_rate']:,.0f} (beyond ±{check['band']:.0%}); the model learned "
                           "from it and decides again")  # fmt: skip
                    batch = [p for p in pending if p.decision.device == d.device and p.at == applied.at]
                    self.pending = [p for p in self.pending if p not in batch]  # those judged before this one
                    undone += [self._roll_back(p.decision, why, now, MISS_BACKOFF) for p in batch]
                    continue
            if d.device in missed and applied.at == latest[d.device]:
                continue  # rolled back with the change that carried the prediction
            if verdict == BASELINE:
                applied.health, applied.offered = after, offered
                applied.paid_from, applied.paid_by = _delivery(d, rates), []
            elif verdict == HEALTHY:
                applied.checked += 1
                if applied.paid_from is not None:
                    applied.paid_by.append(napi_policy.delivery(rates))
                if applied.checked >= PROBATION_PASSES:
                    unpaid = _unpaid(applied)
                    if unpaid:
                        undone.append(self._roll_back(d, unpaid, now))
                    continue  # kept, unless it paid nothing
            elif verdict == UNJUDGED:
                applied.unjudged += 1
            if (
                verdict in (BASELINE, HEALTHY, IDLE)
                or applied.at < latest[d.device]
                or (verdict == UNJUDGED and applied.unjudged < UNJUDGED_LIMIT)
            ):
                self.pending.append(applied)  # on probation still; a later change on the device is the likelier cause
                continue
            if verdict == UNJUDGED:
                why = f"could not be judged for {applied.unjudged} passes ({why})"
            undone.append(self._roll_back(d, why, now))
        return undone

    def _roll_back(self, d: Change, why: str, now: float, backoff: int = BACKOFF_PASSES) -> Change:
        """Put the knob back to what it held before `d`, unless something else changed it since."""
        holding = read_knob(self.host, d.knob)
        if holding is not None and holding not in (d.target, self.rounded.get((d.knob, d.target))):
            return self._left_alone(d, DRIFTED_KEPT, f"{why}; but it holds {holding} now, not {d.target}: "
                                    "something else changed it, left alone")  # fmt: skip
        back = Change(d.knob, d.target, d.current, f"rolled back: {why} after {d.knob} {d.current} -> {d.target}",
                      d.device)  # fmt: skip
        self._apply(back, now, None, verify=False)
        back.outcome = "rolled-back" if back.outcome == APPLIED else back.outcome
        log.info("%s: %s", back.knob, back.reason)
        self.backoff[d.knob] = backoff
        if d.knob.startswith("irq/") or d.knob.endswith(("/rps-cpus", "/xps-cpus")):
            self.placed = False  # placement is proposed again (held while the knob backs off)
        return back

    def _left_alone(self, d: Change, outcome: str, why: str) -> Change:
        log.info("%s: %s", d.knob, why)
        return Change(d.knob, d.target, d.current, why, d.device, outcome=outcome)

    def _gone(self, device: str | None, rates: Rates) -> bool:
        """The device a change was made for has left (no inventory entry, no counters): nothing to judge by."""
        if not device or self.inventory is None:
            return False
        return self.inventory.device(device) is None and device not in rates.netdev


def _rx_drops(counters: Mapping[str, float] | None) -> bool:
    return bool(counters) and rx_dropped(dict(counters)) > 0


def violation_fixes(proposals: list[Change], rules: Rules) -> tuple[list[Change], list[Change]]:
    """(violation fixes, optimisation moves). A fix takes an IRQ off a CPU the rules forbid (`fixes_violation`)
    and is marked so in its reason; the moves come one device at a time (`round_robin`)."""
    fixes, moves = [], []
    for decision in proposals:
        broken = fixes_violation(decision, rules) if decision.outcome != "refused" else None
        if broken:
            decision.reason = f"violation: {broken}; {decision.reason}"
            fixes.append(decision)
        else:
            moves.append(decision)
    return fixes, round_robin(moves)


def _cpus_of(text: str) -> frozenset[int]:
    """An affinity value's CPUs; none where it is not a CPU list."""
    try:
        return frozenset(parse_cpulist(text))
    except CpuListError:
        return frozenset()


def received_drops(rates: Rates) -> float:
    """Received packets dropped per second: at the rings (/proc/net/dev drop) and the backlogs (softnet)."""
    return (sum(v.get("rx_drop", 0.0) for v in rates.netdev.values())
            + sum(v.get("dropped", 0.0) for v in rates.softnet.values()))  # fmt: skip


def round_robin(changes: list[Change]) -> list[Change]:
    """One change per device in turn, devices in the order they first come, each device's own in its order: under
    max_changes one device's many placement moves do not hold back another's coalescing for passes."""
    lanes: dict[str | None, list[Change]] = {}
    for c in changes:
        lanes.setdefault(c.device, []).append(c)
    depth = max((len(lane) for lane in lanes.values()), default=0)
    return [lane[i] for i in range(depth) for lane in lanes.values() if i < len(lane)]


HEALTHY, WORSE, UNJUDGED, BASELINE, IDLE = "healthy", "worse", "unjudged", "baseline", "idle"


def _delivery(d: Change, rates: Rates | None) -> napi_policy.Delivery | None:
    """The host's delivery to judge a NAPI budget step by; None for any other change."""
    return napi_policy.delivery(rates) if rates is not None and d.knob in napi_policy.BUDGET_KNOBS else None


def _unpaid(applied: _Applied) -> str | None:
    """Why a budget step that kept the device healthy is still rolled back: it paid nothing over its probation
    (the mean of its healthy windows against the window before it). None: kept."""
    if applied.paid_from is None or not applied.paid_by:
        return None
    windows = applied.paid_by
    mean = napi_policy.Delivery(*(sum(column) / len(windows) for column in zip(*windows)))
    paid, why = napi_policy.budget_paid(applied.paid_from, mean)
    return None if paid else f"{why} (mean of {len(windows)} windows since)"


def judge(health: float, offered: float, health_after: float, offered_after: float) -> tuple[str, str]:
    """Compare a device's loss (drops + squeezes per second) and offered load (packets per second) before a
    change with a window after it: (verdict, why). Healthy: the loss did not rise beyond noise, or the load
    changed and the loss per offered packet did not rise. Worse: the loss rose at about the same load, or at
    a lower one, or the load rose while fewer packets got through. Unjudged: the offered load rose by more
    than LOAD_CHANGE and the loss per packet with it (the change or the load may be the cause). Idle: the
    traffic stopped (nothing to judge by: the change waits for it). Baseline: the change was made on an idle
    device and the traffic started: this first loaded window is what later ones are compared with."""
    numbers = (f"drops+squeezes {health:,.0f}/s -> {health_after:,.0f}/s at {offered:,.0f} -> "
               f"{offered_after:,.0f} packets/s offered")  # fmt: skip
    if offered_after < NOISE_FLOOR <= offered:
        return IDLE, f"the traffic stopped: {numbers}"
    if offered < NOISE_FLOOR <= offered_after:
        return BASELINE, f"the traffic started: {numbers}"
    if health_after <= max(NOISE_FLOOR, health * (1 + NOISE)):
        return HEALTHY, numbers
    load_changed = abs(offered_after - offered) > offered * LOAD_CHANGE + NOISE_FLOOR
    loss, loss_after = health / max(offered, 1.0), health_after / max(offered_after, 1.0)
    if load_changed and loss_after <= loss * (1 + NOISE) + LOSS_FLOOR:
        return HEALTHY, numbers  # the loss moved with the load: per packet the device is no worse
    if load_changed and offered_after > offered and offered_after - health_after < (offered - health) * (1 - NOISE):
        return WORSE, f"more offered, less delivered: {numbers}"  # a burst delivers more, not less
    if load_changed and offered_after > offered:
        return UNJUDGED, f"the load rose and the loss with it: {numbers}"
    return WORSE, numbers


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
