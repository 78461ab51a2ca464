"""What the agent proposes each pass, from measurements and the config: the storm guard, coalescing, deferral
and IRQ suspension for busy-polled queues (decide/moderation.py), the NAPI budget (decide/napi.py),
and advice that is reported, not applied. It reads current knob values through the knob layer and writes
nothing; the loop (loop.py) checks, applies and verifies what it proposes.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from dataclasses import asdict, fields, replace

from ..act.knobs import EthtoolKnob, KnobError, NapiKnob, Unsupported, make_knob, netdev_client
from ..config import Config
from ..decide import napi as napi_policy
from ..decide.moderation import Bounds, Moderation, choose, forecast
from ..findings import Finding
from ..host import Host, NoNetlink
from ..measure.bursts import Burst
from ..measure.inventory import Inventory
from ..measure.rates import Rates
from ..model.coalesce import FRAMES, QueueLoad, driver_flavour, rx_usecs_mode, writable_usecs
from ..model.identify import FLAVOURS, MIN_WINDOWS, Identified, Response, Window, identify
from ..parse.common import format_cpulist, is_count
from ..plan import Change
from ..statedir import MODEL_FILE, open_state_dir, read_device_models, write_json_atomically

log = logging.getLogger("irqtune.agent")

IDENTIFY_WINDOWS = 8  # recent windows per device the moderation flavour is fitted to
MISS_BAND = 0.4  # log-ratio: a measured interrupt rate beyond x1.5 of the prediction is the model's miss ...
MISS_MIN_RATE = 100.0  # ... where either rate is at least this many interrupts/s (below, counting noise rules)
STORM_RX_USECS = 64  # coalescing a storming low-criticality NIC gets (at most about 15k interrupts/s per queue),
# as the driver takes it as a delay (model/coalesce.py writable_usecs)


class Proposer:
    """Proposals for one pass; `storming` holds the devices the storm guard handled in the last one."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.storming: set[str] = set()
        self.seen: dict[str, int] = {}  # knob id -> value as last read
        self.windows: dict[str, list[Window]] = {}  # device -> its busiest queue's recent windows (model/identify.py)
        self.models: dict[str, Identified] = {}  # device -> the moderation response in use for it
        self.priors: dict[str, str] = {}  # device -> its driver's usual flavour
        self.unsettled: set[str] = set()  # devices written during this window (by the last pass, which takes time
        # on a real host, or by a rollback this pass): the window mixes two settings and teaches nothing
        self.unsaved = False  # saving the models failed once (warned)
        self.judged_under: dict[str, str] = {}  # device -> the flavour its moderation was last chosen or kept under
        self.remodelled: set[str] = set()  # knobs proposed this pass because that flavour was since ruled out
        self.tracked: dict[str, list[float]] = {}  # device -> errors of its last predictions made before the window
        self.tracking: list[dict] = []  # this pass's: each settled window against the model fitted before it

    def propose(self, config: Config, inventory: Inventory, rates: Rates, findings: list[Finding],
                usable: set[int] | None = None,
                bursts: dict[str, Burst] | None = None) -> tuple[list[Change], list[Finding]]:  # fmt: skip
        """(decisions to check and maybe apply, advice findings to report). `usable`: the CPUs the placement
        may use (housekeeping, not banned or isolated); every online CPU when not given. `bursts`: per device,
        what the window's sub-samples saw (measure/bursts.py)."""
        self.seen = {}  # this pass's readings only: a vanished interface's knobs leave the metrics
        self.remodelled = set()
        self.tracking = []
        out = self._storm_guard(config, inventory, findings)
        moderated = [(name, loads) for name, loads in self._moderated(config, inventory, rates)
                     if name not in self.storming]  # fmt: skip
        polled = napi_policy.busy_polling(rates, [name for name, _ in moderated])
        out += self._moderation(config, inventory, rates, moderated, polled, bursts or {})
        out += self._budget(rates)
        return out, self._napi_advice(config, inventory, rates, usable)

    def _storm_guard(self, config: Config, inventory, findings) -> list[Change]:
        """An interrupt storm on a device that is not pinned by the config: send its IRQ to the irq_sink CPUs,
        away from everything that matters, and (unless its goal is latency or its p99 target is under the window)
        raise its NIC's coalescing to STORM_RX_USECS, before it delays a critical CPU. Moderation leaves a
        storming device alone this pass; one whose target forbids the window is left to moderation instead."""
        sink, pinned, out = config.cpus.cpus("irq_sink"), config.device_cpus(), []
        drivers = {d.name: d.driver for d in inventory.devices}
        self.storming = set()
        for f in findings:
            info = inventory.irqs.get(f.irq) if f.code == "irq-storm" and f.irq is not None else None
            if info is None:
                continue
            device = info.device
            if device in pinned or (device and not config.manages(device, info.kind)):
                continue
            if (
                device
                and info.kind == "nic"
                and device not in self.storming
                and config.goal_for(device, "nic") != "latency"
                and not 0 < config.p99_target_for(device, "nic") <= STORM_RX_USECS
            ):
                self.storming.add(device)
                out += self._storm_coalescing(device, f.message, drivers.get(device))
            if not sink or info.managed == "yes" or not info.affinity or info.affinity.requested is None:
                continue
            current, target = format_cpulist(info.affinity.requested), format_cpulist(sorted(sink))
            if current != target:
                out.append(Change(f"irq/{f.irq}/affinity", current, target,
                                    f"storm guard: {f.message}; to the irq_sink CPUs", device))  # fmt: skip
        return out

    def _storm_coalescing(self, device: str, why: str, driver: str | None = None) -> list[Change]:
        """rx-usecs up to STORM_RX_USECS and rx-max-frames up to FRAMES (a frame limit of 1 would still
        interrupt per packet); nothing for a device without rx-usecs (the sink must do). A driver that does not
        report rx-max-frames (Intel's ITR drivers: only rx-usecs is theirs) gets rx-usecs alone."""
        out = []
        for knob, floor in (("rx-usecs", writable_usecs(driver, STORM_RX_USECS)), ("rx-max-frames", FRAMES)):
            knob = f"net/{device}/coalesce/{knob}"
            try:
                current = int(make_knob(self.host, knob).read())
            except (KnobError, Unsupported, OSError, ValueError) as err:
                log.debug("%s: %s", knob, err)
                if knob.endswith("rx-usecs"):
                    return []
                continue
            if current < floor:
                out.append(Change(knob, str(current), str(floor), f"storm guard: {why}; coalescing up", device))
        return out

    def _moderation(self, config: Config, inventory: Inventory, rates: Rates,
                    moderated: list[tuple[str, list[QueueLoad]]], polled: float | None,
                    bursts: dict[str, Burst]) -> list[Change]:  # fmt: skip
        """Per managed NIC: coalescing, NAPI deferral and (for busy-polled queues, 6.13+) IRQ suspension chosen
        by predicting candidates (decide/moderation.py). Devices without IRQs of their own whose receive path
        is NAPI (veth with GRO) get deferral only, sized from their /proc/net/dev packet rate. `polled`: the
        share of received packets busy polling took, when an application polls. A device whose window was
        bursty is weighed at its rate levels (`burst_levels`)."""
        out, drivers = [], {d.name: d.driver for d in inventory.devices}
        for name, loads in moderated:
            try:
                out += self._moderate(config, inventory, rates, name, loads, polled, drivers, bursts)
            except (ArithmeticError, ValueError) as err:  # the model cannot say: this NIC waits, the agent goes on
                log.warning("%s: moderation left as it is this pass: the model failed (%s: %s)", name,
                            type(err).__name__, err)  # fmt: skip
        return out

    def _moderate(self, config: Config, inventory: Inventory, rates: Rates, name: str, loads: list[QueueLoad],
                  polled: float | None, drivers: dict, bursts: dict[str, Burst]) -> list[Change]:  # fmt: skip
        """One NIC's moderation changes (see `_moderation`)."""
        out: list[Change] = []
        current = self._moderation_now(name)
        busiest = max(loads, key=lambda q: q.packets, default=None)
        if current is None or busiest is None or busiest.packets <= 0:
            return out
        suspend = self._suspend_now(name) if polled else {}
        setting = current["setting"]
        if suspend:  # a setting partly applied (max_changes) counts as chosen; the rest follows below
            setting = replace(setting, suspend_us=max(suspend.values()) // 1000)
        known = self.models.get(name)
        irq_cost = known.costs[1] if known is not None and known.costs else config.limits.irq_cost_us
        service = self._service_estimate(config, rates, busiest, irq_cost)
        model = self._identify(name, drivers.get(name), current, busiest, service, irq_cost, rates, polled is not None)
        if model.costs:  # this window's fit (the previous one's, or the config's, estimated `service`)
            irq_cost = model.costs[1]
            service = self._service_estimate(config, rates, busiest, irq_cost)
        bounds = moderation_bounds(config, name, sorted(suspend))
        choice = choose(busiest.packets, setting, config.goal_for(name, "nic"),
                        service, irq_cost,
                        deferral=current["deferral"],
                        queues=sum(q.packets > 0 for q in loads),
                        coalescing=current["coalescing"], busy_polled=polled is not None,
                        suspension=bool(suspend), flavour=model.flavour,
                        driver=drivers.get(name), p99_target_us=config.p99_target_for(name, "nic"),
                        frames=current["frames"], bounds=bounds, scale=model.scale,
                        floor_us=model.response.floor_at(busiest.packets),
                        unsure=FLAVOURS if model.windows < MIN_WINDOWS else (),
                        levels=burst_levels(bursts.get(name), busiest.packets))  # fmt: skip
        before, self.judged_under[name] = self.judged_under.get(name, model.flavour), model.flavour
        if choice is None:  # kept: only NAPIs that do not have the device's setting yet
            out += [Change(f"napi/{name}/{napi_id}/irq-suspend-timeout", str(now), str(setting.suspend_us * 1000),
                             "the device's IRQ suspension, on every NAPI", name)
                    for napi_id, now in sorted(suspend.items()) if now != setting.suspend_us * 1000]  # fmt: skip
            return out
        new, old = choice.setting, setting
        if current["adaptive"]:
            why = "a fixed setting is chosen instead of the driver's adaptive one"
            out.append(Change(f"net/{name}/coalesce/use-adaptive-rx", "1", "0", why, name))
        knobs = [(f"net/{name}/napi-defer-hard-irqs", old.defer, new.defer),
                 (f"net/{name}/gro-flush-timeout", old.gro_flush_us * 1000, new.gro_flush_us * 1000)]  # fmt: skip
        if current["frames"]:
            knobs.insert(0, (f"net/{name}/coalesce/rx-max-frames", old.rx_frames, new.rx_frames))
        if current["coalescing"]:
            knobs.insert(0, (f"net/{name}/coalesce/rx-usecs", old.rx_usecs, new.rx_usecs))
        knobs += [(f"napi/{name}/{napi_id}/irq-suspend-timeout", now, new.suspend_us * 1000)
                  for napi_id, now in sorted(suspend.items())]  # fmt: skip
        reason = f"{choice.reason}; model: {model.describe()}"
        if before != model.flavour:  # the setting in force rests on a flavour the measurements ruled out
            reason += (f"; the setting in force was chosen under {before}, which the measured interrupt rates have "
                       "since ruled out: the dwell does not hold this correction")  # fmt: skip
        batch = [Change(knob, str(now), str(after), reason, name) for knob, now, after in knobs if now != after]
        if before != model.flavour:
            self.remodelled |= {c.knob for c in batch}
        if batch:  # the first change carries the prediction the agent checks (rx-usecs where it changes)
            batch[0].predicted = {"irq_rate": round(choice.predicted_irq_rate, 1),
                                  "latency_us": round(choice.predicted_latency_us, 2),
                                  "cpu": round(choice.predicted_cpu, 4), "model": model.flavour,
                                  "packets": round(busiest.packets, 1), "setting": asdict(new),
                                  "response": model.response.to_json(), "service_us": round(service, 3),
                                  "irq_cost_us": round(irq_cost, 3),
                                  "busy_polled": polled is not None,
                                  "windows": model.fitted}  # fmt: skip
        out += batch
        return out

    def _identify(self, device: str, driver: str | None, current: dict, busiest: QueueLoad, service_us: float,
                  irq_cost_us: float, rates: Rates, busy_polled: bool) -> Identified:  # fmt: skip
        """The device's moderation flavour from its recent windows (model/identify.py), its driver's as the prior.
        A window counts when the setting it was measured under is a plain delay (no deferral, no adaptive mode)
        and held all through it. Before it joins, the model fitted without it predicts it (`_track`)."""
        setting = current["setting"]
        plain = not setting.defer and not current["adaptive"] and rx_usecs_mode(driver, setting.rx_usecs) is None
        self.priors[device] = driver_flavour(driver)
        if plain and busiest.interrupts > 0 and device not in self.unsettled:  # the setting the window ran under
            window = Window(busiest.packets, busiest.interrupts, setting.rx_usecs, setting.rx_frames, service_us,
                            irq_cost_us, *cpu_load(rates, busiest.cpu))  # fmt: skip
            self._track(device, window, setting, busy_polled)
            self.windows[device] = [*self.windows.get(device, [])[-(IDENTIFY_WINDOWS - 1) :], window]
        self.models[device] = identify(self.windows.get(device, []), self.priors[device])
        return self.models[device]

    def _track(self, device: str, window: Window, setting: Moderation, busy_polled: bool) -> None:
        """The model as fitted before `window` (to at least one window of this device) predicts its interrupt rate
        at the packet rate it measured: out of sample, every settled window, not only after a change. The
        errors' median is the model's standing (`model_json`), what an operator can hold it to."""
        model = self.models.get(device)
        if model is None or model.fitted < 1:
            return
        expected = expected_irq_rate(window.packets, setting, window.service_us, window.irq_cost_us,
                                     model.response, busy_polled)  # fmt: skip
        if expected < 1.0:
            return
        error = (window.interrupts - expected) / expected
        self.tracked[device] = [*self.tracked.get(device, [])[-(IDENTIFY_WINDOWS - 1) :], error]
        self.tracking.append({"device": device, "rx_usecs": setting.rx_usecs, "packets": round(window.packets, 1),
                              "predicted_irq_rate": round(expected, 1),
                              "measured_irq_rate": round(window.interrupts, 1), "error": round(error, 4),
                              "windows": model.fitted})  # fmt: skip
        log.debug("%s: the model fitted to %d windows predicted %.0f interrupts/s at %.0f packets/s, measured %.0f",
                  device, model.fitted, expected, window.packets, window.interrupts)  # fmt: skip

    def model_json(self, device: str) -> dict:
        """A device's model (Identified.to_json) and, once it has predicted settled windows out of sample, the
        median of those errors (`prediction_error`, a ratio) over how many (`predictions`)."""
        out = self.models[device].to_json()
        errors = self.tracked.get(device)
        if errors:
            out |= {"prediction_error": round(statistics.median(map(abs, errors)), 4), "predictions": len(errors)}
        return out

    def check(self, config: Config, inventory: Inventory, rates: Rates, d: Change) -> tuple[dict | None, Window | None]:
        """A moderation change's prediction against the first window that judges it: the model as it stood when
        the change was chosen, run again at the packet rate this window measured (a load that moved is not the
        model's miss), against the busiest queue's measured interrupt rate. `miss`: beyond the noise band
        MISS_BAND (interrupt counts over a window are exact; what moves them besides the setting is the load,
        which the prediction follows) for a setting without deferral, whose interrupt rate is set by timers and
        the poll, not by the coalescing model; the window under the new setting comes back for `learn`.
        (None, None): nothing to compare."""
        p, device = d.predicted, inventory.device(d.device) if d.device else None
        if not p or "setting" not in p or device is None or not device.irqs:
            return None, None
        busiest = max(queue_loads(device, inventory, rates), key=lambda q: q.packets, default=None)
        if busiest is None:
            return None, None
        setting = Moderation(**{f.name: int(p["setting"][f.name]) for f in fields(Moderation)})
        r = p.get("response", {})
        response = Response(r.get("flavour", p["model"]), r.get("timer_scale", 1.0), r.get("floor_us", 0.0),
                            r.get("floor_us_per_kpps", 0.0))  # fmt: skip
        expected = expected_irq_rate(busiest.packets, setting, p["service_us"], p["irq_cost_us"], response,
                                     p.get("busy_polled", False))  # fmt: skip
        got = busiest.interrupts
        error = (got - expected) / expected if expected >= 1.0 else (0.0 if got < 1.0 else None)
        band = MISS_BAND
        miss = (
            not setting.defer
            and max(got, expected) >= MISS_MIN_RATE
            and (got <= 0 or expected <= 0 or abs(math.log(max(got, 1e-9) / max(expected, 1e-9))) > band)
        )
        shown = f"{error * 100:+.0f}" if error is not None else "n/a"
        missed = "; the model missed" if miss else ""
        log.info("%s: predicted %.0f interrupts/s on the busiest queue at %.0f packets/s, measured %.0f "
                 "(error %s %%)%s", d.knob, expected, busiest.packets, got, shown, missed)  # fmt: skip
        check = {"knob": d.knob, "device": d.device, "predicted_irq_rate": round(expected, 1),
                 "measured_irq_rate": round(got, 1), "error": round(error, 4) if error is not None else None,
                 "packets": round(busiest.packets, 1), "model": r, "band": round(math.expm1(band), 3),
                 "windows": p.get("windows", 0), "deferral": bool(setting.defer), "miss": miss}  # fmt: skip
        plain = not setting.defer and rx_usecs_mode(device.driver, setting.rx_usecs) is None
        if not plain or got <= 0 or busiest.packets <= 0:
            return check, None
        model = self.models.get(d.device or "")
        irq_cost = model.costs[1] if model is not None and model.costs else config.limits.irq_cost_us
        service = self._service_estimate(config, rates, busiest, irq_cost)
        return check, Window(busiest.packets, got, setting.rx_usecs, setting.rx_frames, service, irq_cost,
                             *cpu_load(rates, busiest.cpu))  # fmt: skip

    def learn(self, device: str, window: Window) -> Identified:
        """Add a window measured under a setting the device no longer holds (a change rolled back) and fit again."""
        self.windows[device] = [*self.windows.get(device, [])[-(IDENTIFY_WINDOWS - 1) :], window]
        self.models[device] = identify(self.windows[device], self.priors.get(device, "timer-from-first"))
        return self.models[device]

    def save(self, state_dir: str) -> None:
        """Each device's windows and fitted response to MODEL_FILE (JSON, replaced whole: old or new after a
        crash; losing it costs only a few windows of learning), for `status` and the next start."""
        data = {"devices": {name: {"prior": self.priors.get(name, model.prior), "model": self.model_json(name),
                                   "windows": [list(asdict(w).values()) for w in self.windows.get(name, [])]}
                            for name, model in sorted(self.models.items())}}  # fmt: skip
        path = os.path.join(state_dir, MODEL_FILE)
        try:
            dir_fd = open_state_dir(state_dir)
            try:
                write_json_atomically(dir_fd, MODEL_FILE, data, durable=False)
            finally:
                os.close(dir_fd)
        except OSError as err:
            if not self.unsaved:  # once: a read-only state directory (observe mode) stays one
                log.warning("%s: the device models were not saved: %s", path, err)
            self.unsaved = True

    def load(self, state_dir: str) -> None:
        """The windows a previous run saved (`save`), each device fitted again; a file that is not ours is
        ignored with a warning (a model is learned again in a few windows)."""
        try:
            devices = read_device_models(state_dir)
        except ValueError as err:
            log.warning("%s", err)
            return
        for name, entry in devices.items():
            try:
                windows = [Window(*(float(v) for v in w[:2]), *(int(v) for v in w[2:4]), *(float(v) for v in w[4:9]))
                           for w in entry["windows"]][-IDENTIFY_WINDOWS:]  # fmt: skip
                prior = str(entry["prior"])
            except (KeyError, TypeError, ValueError) as err:
                log.warning("%s: %s: device %r not loaded: %s", state_dir, MODEL_FILE, name, err)
                continue
            if all(math.isfinite(v) and v >= 0 for w in windows for v in asdict(w).values()):
                self.windows[name], self.priors[name] = windows, prior
                self.models[name] = identify(windows, prior)

    def _suspend_now(self, device: str) -> dict[int, int]:
        """NAPI id -> irq-suspend-timeout (ns) now; empty where the kernel has no per-NAPI suspension."""
        return {n["id"]: n["irq_suspend_timeout"] for n in self._napis(device) if "irq_suspend_timeout" in n}

    def _moderated(self, config: Config, inventory, rates: Rates) -> list[tuple[str, list[QueueLoad]]]:
        """(device, per-queue loads) for every managed NIC with queue IRQs, then every other managed interface
        that has NAPI instances and received packets (its NAPIs share its /proc/net/dev rate evenly)."""
        found = []
        for device in inventory.devices:
            if device.kind == "nic" and config.manages(device.name, "nic"):
                found.append((device.name, queue_loads(device, inventory, rates)))
        known = {d.name for d in inventory.devices}
        for name, counters in sorted(rates.netdev.items()):
            packets = counters.get("rx_packets", 0.0)
            if name in known or name == "lo" or packets <= 0 or not config.manages(name, "nic"):
                continue
            napis = len(self._napis(name))
            if napis:
                found.append((name, [QueueLoad(packets / napis, 0.0, None)] * napis))
        return found

    def _napis(self, device: str) -> list[dict[str, int]]:
        """The interface's NAPI instances (netdev netlink, 6.9+); none when it has none or the kernel cannot say."""
        ifindex = self.host.text("sys", "class", "net", device, "ifindex")
        if ifindex is None or not is_count(ifindex.strip()):
            return []
        try:
            with netdev_client(self.host, f"net/{device}") as client:
                return client.napis(int(ifindex))
        except (Unsupported, OSError, *NapiKnob.errors()) as err:  # no netdev family here: not a NAPI device to us
            log.debug("%s: NAPI instances not listed: %s", device, err)
            return []

    def _read(self, knob: str) -> int:
        """A knob's current value as a number, remembered in `seen` (what the exporter shows as knob values)."""
        value = int(make_knob(self.host, knob).read())
        self.seen[knob] = value
        return value

    def _budget(self, rates: Rates) -> list[Change]:
        values = []
        for name in ("netdev_budget", "netdev_budget_usecs"):
            try:
                values.append(self._read(f"sysctl/net.core.{name}"))
            except (KnobError, Unsupported, OSError, ValueError) as err:
                log.debug("%s not readable: %s", name, err)
                return []
        return [Change(p.knob, p.current, p.target, p.reason) for p in napi_policy.budget(rates, *values)]

    def _napi_advice(self, config: Config, inventory, rates: Rates, usable: set[int] | None) -> list[Finding]:
        """Per managed NIC: where the CPUs serving it are saturated and squeezed (CPU-bound overload), the ways to
        more CPUs (channels, RPS, threaded NAPI); else threaded NAPI where softirq starves a squeezed CPU."""
        out = []
        for device in inventory.devices:
            if device.kind != "nic" or not config.manages(device.name, "nic"):
                continue
            irqs = receive_irqs(device)
            cpus = serving_cpus(irqs, inventory, rates)
            try:
                threaded = make_knob(self.host, f"net/{device.name}/threaded").read().strip() not in ("", "0")
            except (KnobError, Unsupported, OSError) as err:
                log.debug("%s: threaded not readable: %s", device.name, err)
                threaded = None
            if napi_policy.saturated_cpus(rates, cpus):
                available = available_cpus(config, device, rates, usable)
                out += napi_policy.cpu_bound_advice(rates, device.name, cpus, available, len(irqs),
                                                    self._channels(device.name), threaded)  # fmt: skip
            elif threaded is not None:
                out += napi_policy.threaded_advice(rates, device.name, cpus, threaded)
        return out

    def _channels(self, device: str) -> tuple[str, int] | None:
        """The driver's channel kind for receive queues (combined, else rx) and its maximum; None if unreadable."""
        try:
            with self.host.ethtool() as client:
                values = client.get_channels(device)
        except (NoNetlink, OSError, *EthtoolKnob.errors()) as err:
            log.debug("%s: channels not readable: %s", device, err)
            return None
        for kind in ("combined", "rx"):
            if values.get(f"{kind}_max", 0) > 0:
                return kind, values[f"{kind}_max"]
        return None

    def _moderation_now(self, device: str) -> dict | None:
        """The device's coalescing and deferral now; None when neither can be read. `coalescing` False: only
        deferral can be set (no ethtool coalescing: veth, or a driver without it). `frames` False: the driver
        has rx-usecs but does not report rx-max-frames (ethtool leaves out a zero it does not support: e1000e,
        igb, ixgbe, ice), so that is not written and its window has no frame limit."""
        values = {}
        for name, knob in (("usecs", "coalesce/rx-usecs"), ("frames", "coalesce/rx-max-frames"),
                           ("adaptive", "coalesce/use-adaptive-rx"), ("defer", "napi-defer-hard-irqs"),
                           ("gro", "gro-flush-timeout")):  # fmt: skip
            try:
                values[name] = self._read(f"net/{device}/{knob}")
            except (KnobError, Unsupported, OSError, ValueError) as err:  # a knob this device or kernel lacks
                log.debug("%s: %s not readable: %s", device, knob, err)
        coalescing = "usecs" in values
        deferral = "defer" in values and "gro" in values
        if not coalescing and not deferral:
            return None
        setting = Moderation(values.get("usecs", 0), values.get("frames", 0 if coalescing else 1),
                             values.get("defer", 0), values.get("gro", 0) // 1000)  # fmt: skip
        return {"setting": setting, "adaptive": bool(values.get("adaptive")), "deferral": deferral,
                "coalescing": coalescing, "frames": coalescing and "frames" in values}  # fmt: skip

    def _service_estimate(self, config: Config, rates: Rates, busiest: QueueLoad, irq_cost_us: float) -> float:
        """µs of softirq CPU per packet on the busiest queue's CPU, net of interrupt costs (`irq_cost_us` each);
        the config's default when that CPU did too little to tell (under 1 % in IRQ and softirq context)."""
        busy, processed, irqs = cpu_load(rates, busiest.cpu)
        if processed <= 0 or busy < 0.01:
            return config.limits.service_us
        estimate = (busy - irqs * irq_cost_us * 1e-6) / processed * 1e6
        return min(50.0, max(0.1, estimate))


def expected_irq_rate(packets: float, setting: Moderation, service_us: float, irq_cost_us: float, response: Response,
                      busy_polled: bool) -> float:  # fmt: skip
    """Interrupts/s one queue takes at `packets`/s under `setting`, as the decision model (decide/moderation.py)
    predicts with the device's identified response."""
    return forecast(packets, setting, service_us, irq_cost_us, response.flavour, busy_polled, response.scale,
                    response.floor_at(packets)).irq_rate  # fmt: skip


def moderation_bounds(config: Config, device: str, napis: list[int]) -> Bounds:
    """The config's [bounds] of a NIC's moderation knobs in the units the search works in (µs where the knob
    takes ns), so the search finds the best setting within them rather than the loop clamping it afterwards.
    `napis`: its NAPI ids, the first standing for all in irq-suspend-timeout's."""

    def bound(knob: str, unit: int = 1) -> tuple[int, int] | None:
        found = config.bound(knob)
        return None if found is None else (-(-found[0] // unit), found[1] // unit)

    net = f"net/{device}"
    suspend = bound(f"napi/{device}/{napis[0]}/irq-suspend-timeout", 1000) if napis else None
    return Bounds(bound(f"{net}/coalesce/rx-usecs"), bound(f"{net}/coalesce/rx-max-frames"),
                  bound(f"{net}/napi-defer-hard-irqs"), bound(f"{net}/gro-flush-timeout", 1000), suspend)  # fmt: skip


def cpu_load(rates: Rates, cpu: int | None) -> tuple[float, float, float]:
    """(fraction of `cpu` in hard-IRQ and softirq context, packets/s processed there, device interrupts/s there)."""
    if cpu is None:
        return 0.0, 0.0, 0.0
    processed = rates.softnet.get(cpu, {}).get("processed", 0.0)
    busy = rates.softirq_time.get(cpu, 0.0) + rates.irq_time.get(cpu, 0.0)
    irqs = sum(r.per_cpu.get(cpu, 0.0) for k, r in rates.interrupts.items() if k.isdigit())
    return busy, processed, irqs


def burst_levels(burst: Burst | None, packets: float) -> list[tuple[float, float]] | None:
    """A bursty window's rate levels for the busiest queue ((share of the time, packets/s)): the device's
    sub-interval levels scaled to the queue's mean, as RSS spreads a burst over the queues as it spreads the
    rest. None where the window was not bursty (the mean alone is weighed)."""
    if burst is None or not burst.bursty or packets <= 0:
        return None
    scale = packets / burst.mean_pps
    return [(share, rate * scale) for share, rate in burst.levels()]


def queue_loads(device, inventory, rates: Rates) -> list[QueueLoad]:
    """Per queue IRQ of a NIC: its interrupt rate, and the packets processed on its CPU (the effective
    affinity; where interrupts went, if that is unknown), shared among the queue IRQs served there —
    what a host without per-queue counters can tell. With deferral on, a queue may take no interrupts
    at all and still process every packet on its CPU. Only the IRQs that carry received packets count (rx or
    rxtx roles; all where none is named so): e1000e's separate tx and "other" vectors take interrupts that
    rx-usecs does not set, and its tx vector would otherwise share the rx one's CPU and packets."""
    queues = [q for q in device.irqs if q.role in ("rx", "rxtx")] or list(device.irqs)
    serving: dict[int, int] = {}
    for q in queues:
        info = inventory.irqs.get(q.irq)
        effective = info.affinity.effective if info and info.affinity else None
        row = rates.interrupts.get(str(q.irq))
        if effective:
            serving[q.irq] = effective[0]
        elif row and row.total > 0 and (busiest := row.busiest()) is not None:
            serving[q.irq] = busiest
    sharing: dict[int, int] = {}
    for cpu in serving.values():
        sharing[cpu] = sharing.get(cpu, 0) + 1
    out = []
    for q in queues:
        row = rates.interrupts.get(str(q.irq))
        cpu = serving.get(q.irq)
        processed = rates.softnet.get(cpu, {}).get("processed", 0.0) if cpu is not None else 0.0
        out.append(QueueLoad(processed / sharing[cpu] if cpu is not None else 0.0, row.total if row else 0.0,
                             cpu))  # fmt: skip
    return out


def receive_irqs(device) -> list[int]:
    """The NIC's IRQs that carry received packets; all of its IRQs where none is named so."""
    return [q.irq for q in device.irqs if q.role in ("rx", "rxtx")] or [q.irq for q in device.irqs]


def serving_cpus(irqs: list[int], inventory, rates: Rates) -> set[int]:
    """CPUs that serve these IRQs: their effective affinity, and wherever they were counted in the window. A
    saturated NAPI never re-enables its interrupt, so a CPU busiest with the IRQ's packets may count none."""
    out = set()
    for irq in irqs:
        info = inventory.irqs.get(irq)
        if info and info.affinity and info.affinity.effective:
            out.add(info.affinity.effective[0])
        row = rates.interrupts.get(str(irq))
        out.update(row.busy if row else ())
    return out


def available_cpus(config: Config, device, rates: Rates, usable: set[int] | None) -> set[int]:
    """The CPUs a NIC's packet work may use: the config's CPUs for it, else the usable ones (every online one
    when not known) local to it, or all usable ones where it names no locality."""
    online = set(rates.cpus)
    own = config.device_cpus().get(device.name)
    if own:
        return set(own) & online
    usable = online if usable is None else usable & online
    return (usable & set(device.local_cpus or ())) or usable
