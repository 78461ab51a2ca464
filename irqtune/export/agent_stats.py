"""What the agent (`irqtune run`) tells the exporter: a plain dataclass it updates after each pass.

The agent owns one `AgentStats`, passes it to `IrqtuneCollector(..., agent=stats)`
and updates it from its loop; each scrape copies the fields (dict copies are atomic
under the GIL), so no lock is needed as long as one thread writes. Exported as:

    irqtune_agent_passes_total                          passes done
    irqtune_agent_loop_duration_seconds                 how long the last pass took
    irqtune_agent_changes_total{outcome,knob_kind}      decisions by outcome (applied, rolled_back,
                                                        refused, held, ...) and knob kind
    irqtune_agent_journal_entries                       knobs irqtune changed and can restore
    irqtune_agent_drifted_knobs                         journaled knobs that no longer hold what irqtune wrote
    irqtune_knob_value{knob,knob_kind,device,setting}   current value of every knob the agent read
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..plan import KnobError, parse_knob_id
from .labels import label

if TYPE_CHECKING:  # prometheus_client loads with the metrics server only: the agent without one stays small
    from prometheus_client.core import Metric


@dataclass
class AgentStats:
    passes: int = 0
    last_loop_duration_seconds: float | None = None
    changes: dict[tuple[str, str], int] = field(default_factory=dict)  # (outcome, knob kind) -> count
    journal_entries: int | None = None
    drifted_knobs: int | None = None  # journaled knobs something else changed since (irqtune verify's drift)
    knob_values: dict[str, float] = field(default_factory=dict)  # knob id (irq/41/affinity) -> number
    predictions: dict[str, dict] = field(default_factory=dict)  # knob id -> its latest check (PassReport.checks)
    models: dict[str, dict] = field(default_factory=dict)  # device -> the agent's model of it (Identified.to_json)
    misses: dict[str, int] = field(default_factory=dict)  # device -> changes rolled back for the model's miss

    def record_pass(self, duration_seconds: float) -> None:
        self.passes += 1
        self.last_loop_duration_seconds = duration_seconds

    def record_change(self, outcome: str, knob: str, count: int = 1) -> None:
        """Count a decision; `knob` is a knob id (its kind is looked up) or already a kind."""
        key = (outcome, knob_kind(knob))
        self.changes[key] = self.changes.get(key, 0) + count


def knob_kind(knob: str) -> str:
    """The kind of a knob id (`net/eth0/coalesce/rx-usecs` -> coalesce); a bare kind is returned as is."""
    if "/" not in knob:
        return knob
    try:
        return parse_knob_id(knob).kind
    except KnobError:
        return "other"


def _knob_labels(knob: str) -> tuple[str, str, str, str]:
    try:
        kid = parse_knob_id(knob)
    except KnobError:
        return label(knob), "other", "", ""
    device = kid.device or (str(kid.irq) if kid.irq is not None else "")
    setting = kid.name + (f"@{kid.number}" if kid.number is not None else "")
    return label(kid.canonical), kid.kind, label(device), label(setting)


def agent_families(stats: AgentStats) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    passes = CounterMetricFamily("irqtune_agent_passes", "Passes the irqtune agent has done since it started.")
    passes.add_metric([], stats.passes)
    yield passes
    if stats.last_loop_duration_seconds is not None:
        yield GaugeMetricFamily(
            "irqtune_agent_loop_duration_seconds",
            "How long the agent's last pass took (measure, decide, act).",
            value=stats.last_loop_duration_seconds,
        )
    changes = CounterMetricFamily(
        "irqtune_agent_changes",
        "Agent decisions by outcome (applied, rolled_back, refused, held, ...) and knob kind.",
        labels=["outcome", "knob_kind"],
    )
    for (outcome, kind), count in sorted(dict(stats.changes).items()):
        changes.add_metric([label(outcome), label(kind)], count)
    yield changes
    if stats.journal_entries is not None:
        yield GaugeMetricFamily(
            "irqtune_agent_journal_entries",
            "Knobs in the journal: changed by irqtune, restorable with irqtune restore.",
            value=stats.journal_entries,
        )
    if stats.drifted_knobs is not None:
        yield GaugeMetricFamily(
            "irqtune_agent_drifted_knobs",
            "Journaled knobs that no longer hold the value irqtune wrote (something else changed them; irqtune "
            "verify names them), checked every pass.",
            value=stats.drifted_knobs,
        )
    values = GaugeMetricFamily(
        "irqtune_knob_value",
        "Current value of a numeric knob the agent read or wrote this pass (coalescing, NAPI deferral, "
        "budgets; IRQ affinity is irqtune_irq_requested_cpus); setting names the sysctl, file, attribute or "
        "NAPI setting@id.",
        labels=["knob", "knob_kind", "device", "setting"],
    )
    for knob, value in sorted(dict(stats.knob_values).items()):
        values.add_metric(list(_knob_labels(knob)), value)
    yield values
    yield from _prediction_families(dict(stats.predictions))
    yield from _model_families(dict(stats.models), dict(stats.misses))


def _prediction_families(checks: dict[str, dict]) -> Iterator[Metric]:
    """The model's interrupt rate for the agent's latest moderation change of each knob, beside what the first
    window that judged the change measured: how far the model is from this device."""
    from prometheus_client.core import GaugeMetricFamily

    if not checks:
        return
    names = ("predicted", "measured")
    families = {n: GaugeMetricFamily(f"irqtune_agent_{n}_interrupts_per_second",
                                     f"Interrupts per second per queue the agent {n} for its latest moderation change "
                                     "(busiest queue IRQ), by knob and device.", labels=["knob", "device"])
                for n in names}  # fmt: skip
    for knob, check in sorted(checks.items()):
        for n in names:
            value = check.get(f"{n}_irq_rate")
            if isinstance(value, int | float):
                families[n].add_metric([label(knob), label(check.get("device") or "")], value)
    yield from families.values()


def _model_families(models: dict[str, dict], misses: dict[str, int]) -> Iterator[Metric]:
    """The agent's model of each NIC's interrupt response (model/identify.py): which flavour, the timer's real µs per
    rx-usecs unit, the interrupt floor, its error over the windows; and how often a prediction missed."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    if not models and not misses:
        return
    info = GaugeMetricFamily("irqtune_agent_model_info", "The moderation flavour the agent predicts a NIC with (1), "
                             "beside its driver's usual one.", labels=["device", "flavour", "prior"])  # fmt: skip
    scale = GaugeMetricFamily("irqtune_agent_model_timer_scale", "Real delay per rx-usecs unit the agent fitted to "
                              "the NIC's windows (1: as the driver says).", labels=["device"])  # fmt: skip
    floor = GaugeMetricFamily("irqtune_agent_model_interrupt_floor_seconds", "Minimum gap between interrupts the "
                              "agent fitted to the NIC's windows (0: none seen).", labels=["device"])  # fmt: skip
    error = GaugeMetricFamily("irqtune_agent_model_error_ratio", "Mean relative error of the model's interrupt "
                              "rate over the windows it was fitted to.", labels=["device"])  # fmt: skip
    predicted = GaugeMetricFamily("irqtune_agent_model_prediction_error_ratio", "Median relative error of the "
                                  "model's interrupt rate on the NIC's last settled windows, each predicted before "
                                  "it joined the fit (out of sample).", labels=["device"])  # fmt: skip
    missed = CounterMetricFamily("irqtune_agent_model_misses", "Moderation changes rolled back because the "
                                 "measured interrupt rate missed the prediction (the model then learned from "
                                 "the window).", labels=["device"])  # fmt: skip
    for device, m in sorted(models.items()):
        name = label(device)
        info.add_metric([name, label(str(m.get("flavour", ""))), label(str(m.get("prior", "")))], 1)
        scale.add_metric([name], float(m.get("timer_scale", 1.0)))
        floor.add_metric([name], float(m.get("floor_us", 0.0)) * 1e-6)
        error.add_metric([name], float(m.get("error", 0.0)))
        if isinstance(m.get("prediction_error"), int | float):
            predicted.add_metric([name], float(m["prediction_error"]))
    for device, count in sorted(misses.items()):
        missed.add_metric([label(device)], count)
    yield from (info, scale, floor, error, predicted, missed)
