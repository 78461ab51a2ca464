"""One pass of the agent: measure → assess → decide → check → act → verify (keep or roll back).

The loop holds no policy of its own: placement comes from `decide/placement.py`, coalescing
from `decide/coalesce.py`, findings from `findings.py`. What it adds is the safety around
them: at most `max_changes` per pass, a knob holds for `dwell` seconds before it may change
again, a knob that flips back and forth is frozen, and a change after which the device got
worse (more drops or time_squeeze on its CPUs, beyond noise) is rolled back and that knob
backs off (a change is on probation for PROBATION_PASSES passes). In `observe` mode every decision
is a recommendation and nothing is written.
The clock is injected, so the same loop runs on a real host and on a simulated one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..act.engine import APPLIED, change, prepare
from ..act.journal import Journal
from ..act.knobs import KnobError, NapiKnob, Unsupported, make_knob, netdev_client
from ..config import Config
from ..decide import napi as napi_policy
from ..decide.advice import advise, supersede
from ..decide.coalesce import FRAMES, QueueLoad
from ..decide.moderation import Moderation, choose
from ..decide.placement import placement_inputs, placement_plan
from ..findings import Measurements, find_all
from ..host import Host
from ..measure.nvme import read_nvme
from ..measure.rates import Rates, compute_rates
from ..measure.snapshot import Snapshot, take_snapshot
from ..parse.common import format_cpulist

log = logging.getLogger("irqtune.agent")

NOISE = 0.10  # relative change of a health counter that counts as real
NOISE_FLOOR = 50.0  # per second: below this, drops and squeezes are noise
BACKOFF_PASSES = 10  # a rolled-back knob is left alone this many passes
STORM_RX_USECS = 64  # coalescing a storming low-criticality NIC gets (at most about 15k interrupts/s per queue)
PROBATION_PASSES = 3  # a change is checked against its device's health before it for this many passes


@dataclass
class Decision:
    knob: str
    current: str
    target: str
    reason: str
    device: str | None = None
    outcome: str = "recommended"  # recommended, applied, unchanged, refused, held, rolled-back, ...
    note: str = ""  # what the engine or the checks said

    def to_json(self) -> dict:
        return dict(self.__dict__)


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
        self.placed = False
        self.inventory = None
        self.rates: Rates | None = None
        self.storming: set[str] = set()  # devices the storm guard handles this pass

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
        proposals = [] if self.placed else self._placement()
        if rates is not None:
            proposals += self._storm_guard(findings)
            moderated = self._moderated(rates)
            polled, suspend = self._suspension(rates, [name for name, _ in moderated])
            proposals += suspend
            proposals += self._moderation(rates, [(name, loads) for name, loads in moderated
                                                  if name not in polled and name not in self.storming])  # fmt: skip
            proposals += self._budget(rates)
            report.findings += [f.to_json() for f in self._napi_advice(rates)]
        budget = self.config.limits.max_changes
        proposals = [d for d in (self._bounded(p) for p in proposals) if d is not None]
        for decision in proposals:
            held = self._held(decision.knob, now)
            if decision.outcome == "refused":
                pass
            elif held:
                decision.outcome, decision.note = "held", held
            elif budget <= 0:
                decision.outcome, decision.note = "held", "max_changes reached this pass"
            elif self.tuning:
                self._apply(decision, now, rates)
                budget -= decision.outcome == APPLIED
            report.decisions.append(decision)
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

    def _storm_guard(self, findings) -> list[Decision]:
        """An interrupt storm on a device that is not pinned by the config: send its IRQ to the irq_sink CPUs,
        away from everything that matters, and (unless its goal is latency) raise its NIC's coalescing to
        STORM_RX_USECS, before it delays a critical CPU. Moderation leaves a storming device alone this pass."""
        sink, pinned, out = self.config.cpus.cpus("irq_sink"), self.config.device_cpus(), []
        self.storming = set()
        for f in findings:
            info = self.inventory.irqs.get(f.irq) if f.code == "irq-storm" and f.irq is not None else None
            if info is None:
                continue
            device = info.device
            if device in pinned or (device and not self.config.manages(device, info.kind)):
                continue
            if (
                device
                and info.kind == "nic"
                and device not in self.storming
                and self.config.goal_for(device, "nic") != "latency"
            ):
                self.storming.add(device)
                out += self._storm_coalescing(device, f.message)
            if not sink or info.managed == "yes" or not info.affinity or info.affinity.requested is None:
                continue
            current, target = format_cpulist(info.affinity.requested), format_cpulist(sorted(sink))
            if current != target:
                out.append(Decision(f"irq/{f.irq}/affinity", current, target,
                                    f"storm guard: {f.message}; to the irq_sink CPUs", device))  # fmt: skip
        return out

    def _storm_coalescing(self, device: str, why: str) -> list[Decision]:
        """rx-usecs up to STORM_RX_USECS and rx-max-frames up to FRAMES (a frame limit of 1 would still
        interrupt per packet); nothing for a device without coalescing (the sink must do)."""
        out = []
        for knob, floor in (("rx-usecs", STORM_RX_USECS), ("rx-max-frames", FRAMES)):
            knob = f"net/{device}/coalesce/{knob}"
            try:
                current = int(make_knob(self.host, knob).read())
            except (KnobError, Unsupported, OSError, ValueError) as err:
                log.debug("%s: %s", knob, err)
                return []
            if current < floor:
                out.append(Decision(knob, str(current), str(floor), f"storm guard: {why}; coalescing up", device))
        return out

    def _moderation(self, rates: Rates, moderated: list[tuple[str, list[QueueLoad]]]) -> list[Decision]:
        """Per managed NIC: coalescing and NAPI deferral chosen by predicting candidates (decide/moderation.py).
        Devices without IRQs of their own whose receive path is NAPI (veth with GRO, a NIC behind
        another interrupt) get deferral only, sized from their /proc/net/dev packet rate."""
        out = []
        for name, loads in moderated:
            current = self._moderation_now(name)
            if current is None:
                continue
            busiest = max(loads, key=lambda q: q.packets, default=None)
            if busiest is None or busiest.packets <= 0:
                continue
            service = self._service_estimate(rates, busiest)
            choice = choose(busiest.packets, current["setting"], self.config.goal_for(name, "nic"), service,
                            self.config.limits.irq_cost_us, deferral=current["deferral"],
                            queues=sum(q.packets > 0 for q in loads), coalescing=current["coalescing"])  # fmt: skip
            if choice is None:
                continue
            new, old = choice.setting, current["setting"]
            if current["adaptive"]:
                why = "a fixed setting is chosen instead of the driver's adaptive one"
                out.append(Decision(f"net/{name}/coalesce/use-adaptive-rx", "1", "0", why, name))
            knobs = [(f"net/{name}/napi-defer-hard-irqs", old.defer, new.defer),
                     (f"net/{name}/gro-flush-timeout", old.gro_flush_us * 1000, new.gro_flush_us * 1000)]  # fmt: skip
            if current["coalescing"]:
                knobs = [(f"net/{name}/coalesce/rx-usecs", old.rx_usecs, new.rx_usecs),
                         (f"net/{name}/coalesce/rx-max-frames", old.rx_frames, new.rx_frames), *knobs]  # fmt: skip
            out += [Decision(knob, str(before), str(after), choice.reason, name)
                    for knob, before, after in knobs if before != after]  # fmt: skip
        return out

    def _moderated(self, rates: Rates) -> list[tuple[str, list[QueueLoad]]]:
        """(device, per-queue loads) for every managed NIC with queue IRQs, then every other managed interface
        that has NAPI instances and received packets (its NAPIs share its /proc/net/dev rate evenly)."""
        inventory, found = self.inventory, []
        for device in inventory.devices:
            if device.kind == "nic" and self.config.manages(device.name, "nic"):
                found.append((device.name, queue_loads(device, inventory, rates)))
        known = {d.name for d in inventory.devices}
        for name, counters in sorted(rates.netdev.items()):
            packets = counters.get("rx_packets", 0.0)
            if name in known or name == "lo" or packets <= 0 or not self.config.manages(name, "nic"):
                continue
            napis = self._napi_count(name)
            if napis:
                found.append((name, [QueueLoad(packets / napis, 0.0, None)] * napis))
        return found

    def _napis(self, device: str) -> list[dict[str, int]]:
        """The interface's NAPI instances (netdev netlink, 6.9+); none when it has none or the kernel cannot say."""
        ifindex = self.host.text("sys", "class", "net", device, "ifindex")
        if ifindex is None or not ifindex.strip().isdigit():
            return []
        try:
            with netdev_client(self.host, f"net/{device}") as client:
                return client.napis(int(ifindex))
        except (Unsupported, OSError, *NapiKnob.errors()) as err:  # no netdev family here: not a NAPI device to us
            log.debug("%s: NAPI instances not listed: %s", device, err)
            return []

    def _napi_count(self, device: str) -> int:
        return len(self._napis(device))

    def _suspension(self, rates: Rates, devices: list[str]) -> tuple[set[str], list[Decision]]:
        """Devices a busy-polling application serves (their deferral is the suspension's, not moderation's),
        and the decisions that set IRQ suspension up on them (decide/napi.py)."""
        share = napi_policy.busy_polling(rates, devices)
        if share is None:
            return set(), []
        polled, out = set(), []
        for device in devices:
            if rates.netdev.get(device, {}).get("rx_packets", 0.0) <= 0:
                continue
            napis = {n["id"]: n["irq_suspend_timeout"] for n in self._napis(device) if "irq_suspend_timeout" in n}
            current = self._moderation_now(device)
            if not napis or current is None or not current["deferral"]:
                log.debug("%s: no per-NAPI irq-suspend-timeout (kernel before 6.13?)", device)
                continue
            polled.add(device)
            setting = current["setting"]
            out += [
                Decision(p.knob, p.current, p.target, p.reason, p.device)
                for p in napi_policy.suspension(device, share, setting.defer, setting.gro_flush_us * 1000, napis)
            ]
        return polled, out

    def _budget(self, rates: Rates) -> list[Decision]:
        values = []
        for name in ("netdev_budget", "netdev_budget_usecs"):
            try:
                values.append(int(make_knob(self.host, f"sysctl/net.core.{name}").read()))
            except (KnobError, Unsupported, OSError, ValueError) as err:
                log.debug("%s not readable: %s", name, err)
                return []
        return [Decision(p.knob, p.current, p.target, p.reason) for p in napi_policy.budget(rates, *values)]

    def _napi_advice(self, rates: Rates) -> list:
        out = []
        for device in self.inventory.devices:
            if device.kind != "nic" or not self.config.manages(device.name, "nic"):
                continue
            cpus = {c for q in device.irqs if (row := rates.interrupts.get(str(q.irq)))
                    for c, r in row.per_cpu.items() if r > 0}  # fmt: skip
            try:
                threaded = make_knob(self.host, f"net/{device.name}/threaded").read().strip() not in ("", "0")
            except (KnobError, Unsupported, OSError) as err:
                log.debug("%s: threaded not readable: %s", device.name, err)
                continue
            out += napi_policy.threaded_advice(rates, device.name, cpus, threaded)
        return out

    def _moderation_now(self, device: str) -> dict | None:
        """The device's coalescing and deferral now; None when neither can be read. `coalescing` False: only
        deferral can be set (no ethtool coalescing: veth, or a driver without it)."""
        values = {}
        for name, knob in (("usecs", "coalesce/rx-usecs"), ("frames", "coalesce/rx-max-frames"),
                           ("adaptive", "coalesce/use-adaptive-rx"), ("defer", "napi-defer-hard-irqs"),
                           ("gro", "gro-flush-timeout")):  # fmt: skip
            try:
                values[name] = int(make_knob(self.host, f"net/{device}/{knob}").read())
            except (KnobError, Unsupported, OSError, ValueError) as err:  # a knob this device or kernel lacks
                log.debug("%s: %s not readable: %s", device, knob, err)
        coalescing = "usecs" in values and "frames" in values
        deferral = "defer" in values and "gro" in values
        if not coalescing and not deferral:
            return None
        setting = Moderation(values.get("usecs", 0), values.get("frames", 1), values.get("defer", 0),
                             values.get("gro", 0) // 1000)  # fmt: skip
        return {"setting": setting, "adaptive": bool(values.get("adaptive")), "deferral": deferral,
                "coalescing": coalescing}  # fmt: skip

    def _service_estimate(self, rates: Rates, busiest: QueueLoad) -> float:
        """µs of softirq CPU per packet on the busiest queue's CPU, net of interrupt costs; the config's
        default when that CPU did too little to tell (under 1 % in IRQ and softirq context)."""
        cpu = busiest.cpu
        processed = rates.softnet.get(cpu, {}).get("processed", 0.0) if cpu is not None else 0.0
        busy = rates.softirq_time.get(cpu, 0.0) + rates.irq_time.get(cpu, 0.0)
        if processed <= 0 or busy < 0.01:
            return self.config.limits.service_us
        irqs = sum(r.per_cpu.get(cpu, 0.0) for k, r in rates.interrupts.items() if k.isdigit())
        estimate = (busy - irqs * self.config.limits.irq_cost_us * 1e-6) / processed * 1e6
        return min(50.0, max(0.1, estimate))

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
        if result.outcome != APPLIED:
            return
        log.info("%s: %s -> %s: %s", decision.knob, decision.current, decision.target, decision.reason)
        flips = [t for t in self.flips.get(decision.knob, []) if now - t < 2 * self.config.limits.dwell]
        self.flips[decision.knob] = [*flips, now]
        if len(self.flips[decision.knob]) >= 3:
            self.frozen[decision.knob] = f"changed 3 times within {2 * self.config.limits.dwell:g} s"
        self.last_change[decision.knob] = now
        self.pending = [p for p in self.pending if p.decision.knob != decision.knob]  # superseded
        if verify:
            self.pending.append(
                _Applied(decision, now, device_health(rates, self._irqs(decision.device), decision.device))
            )

    def _irqs(self, device: str | None) -> list[int]:
        found = self.inventory.device(device) if device and self.inventory else None
        return [q.irq for q in found.irqs] if found else []

    # -- verify ------------------------------------------------------------------
    def _verify(self, rates: Rates, now: float) -> list[Decision]:
        """Each change on probation (applied within the last PROBATION_PASSES passes): if its device's drops or
        squeezes rose beyond noise, undo the device's latest changes (one pass's batch; older ones stay on
        probation) and back off those knobs; a change that stays healthy is kept."""
        undone, pending, self.pending = [], self.pending, []
        latest: dict[str | None, float] = {}
        for applied in pending:
            latest[applied.decision.device] = max(applied.at, latest.get(applied.decision.device, applied.at))
        for applied in pending:
            d = applied.decision
            after = device_health(rates, self._irqs(d.device), d.device)
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


def device_health(rates: Rates | None, irqs: list[int], device: str | None = None) -> float:
    """Drops + time_squeeze per second on the CPUs serving these IRQs (every CPU if none is known), plus the
    device's own receive drops (ring overflows: /proc/net/dev `drop` and `fifo`)."""
    if rates is None:
        return 0.0
    serving = set()
    for irq in irqs:
        row = rates.interrupts.get(str(irq))
        if row:
            serving |= {c for c, r in row.per_cpu.items() if r > 0}
    cpus = serving or set(rates.softnet)
    own = rates.netdev.get(device, {}) if device else {}
    return own.get("rx_drop", 0.0) + own.get("rx_fifo", 0.0) + sum(
        rates.softnet[c].get("dropped", 0.0) + rates.softnet[c].get("time_squeeze", 0.0)
        for c in cpus if c in rates.softnet)  # fmt: skip


def queue_loads(device, inventory, rates: Rates) -> list[QueueLoad]:
    """Per queue IRQ of a NIC: its interrupt rate, and the packets processed on its CPU (the effective
    affinity; where interrupts went, if that is unknown), shared among the queue IRQs served there —
    what a host without per-queue counters can tell. With deferral on, a queue may take no interrupts
    at all and still process every packet on its CPU."""
    serving: dict[int, int] = {}
    for q in device.irqs:
        info = inventory.irqs.get(q.irq)
        effective = info.affinity.effective if info and info.affinity else None
        row = rates.interrupts.get(str(q.irq))
        if effective:
            serving[q.irq] = effective[0]
        elif row and row.total > 0:
            serving[q.irq] = max(row.per_cpu, key=row.per_cpu.get)
    sharing: dict[int, int] = {}
    for cpu in serving.values():
        sharing[cpu] = sharing.get(cpu, 0) + 1
    out = []
    for q in device.irqs:
        row = rates.interrupts.get(str(q.irq))
        cpu = serving.get(q.irq)
        processed = rates.softnet.get(cpu, {}).get("processed", 0.0) if cpu is not None else 0.0
        out.append(QueueLoad(processed / sharing[cpu] if cpu is not None else 0.0, row.total if row else 0.0,
                             cpu))  # fmt: skip
    return out
