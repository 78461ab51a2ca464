"""eBPF probes for the exporter: loaded once, read on every scrape.

With `--probes` the exporter attaches the hardirq, softirq, ipi, tlb, napi and block
probes (irqtune/probe/, tracepoints only) when it starts and keeps them until it
stops (SIGTERM detaches them). Their maps count from the moment they were attached
and are never zeroed, so every value is a proper cumulative counter or histogram;
`irqtune_probe_start_time_seconds` says since when. Kernel run-time statistics for
the BPF programs (`irqtune_probe_run_time_seconds_total`) are switched on with a
BPF_ENABLE_STATS file descriptor held while the probes run (no sysctl is written);
without it they read 0.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ..host import Host
from ..probe import kstats
from ..probe.base import Histogram
from ..probe.runner import ProbeResult, ProbeSession
from .histograms import prometheus_histogram
from .labels import label

log = logging.getLogger(__name__)

EXPORT_PROBES = ("hardirq", "softirq", "ipi", "tlb", "napi", "block")
MAX_IPI_CALLBACKS = 32  # the rest are summed under callback="other"


class ProbeReader(Protocol):
    """What the collector needs from probes (a fake in tests)."""

    started: float

    def read(self) -> dict[str, ProbeResult]: ...

    def run_stats(self) -> dict[str, tuple[int, int]]: ...


class ProbeSource:
    """The exporter's probe session. Raises probe.runner.EbpfUnavailable when eBPF cannot run here."""

    def __init__(self, host: Host, names: tuple[str, ...] = EXPORT_PROBES) -> None:
        self.session = ProbeSession(host, names)
        self.session.reset()  # the first probes counted while the later ones compiled: start them together
        self.started = time.time()
        self._stats_fd: int | None = None
        try:
            self._stats_fd = kstats.enable_stats()
        except OSError as err:
            log.info("BPF run-time statistics unavailable (%s): irqtune_probe_run_time_seconds_total stays 0", err)

    def read(self) -> dict[str, ProbeResult]:
        return self.session.read()

    def run_stats(self) -> dict[str, tuple[int, int]]:
        """Probe -> (run time ns, runs) summed over its BPF programs."""
        out = {}
        for name in self.session.results:
            total_ns = runs = 0
            for fd in self.session.program_fds(name):
                try:
                    info = kstats.info_by_fd(fd)
                except OSError:
                    continue
                total_ns += info.run_time_ns
                runs += info.run_cnt
            out[name] = (total_ns, runs)
        return out

    def close(self) -> None:
        self.session.close()
        if self._stats_fd is not None:
            os.close(self._stats_fd)
            self._stats_fd = None


def hardirq_data(results: dict[str, ProbeResult]) -> tuple[dict[int, Histogram], dict[int, int]]:
    """Handler-time histograms and IRQ_NONE counts per IRQ (empty without the hardirq probe)."""
    result = results.get("hardirq")
    if result is None or result.status != "ok":
        return {}, {}
    return result.data.get("irqs", {}), result.data.get("unhandled", {})


def _ok(results: dict[str, ProbeResult], name: str) -> dict:
    result = results.get(name)
    return result.data if result is not None and result.status == "ok" else {}


def _histogram_family(name: str, doc: str, label_name: str, items: dict[str, Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label_name])
    for key, hist in sorted(items.items()):
        buckets, total = prometheus_histogram(hist)
        family.add_metric([label(key)], buckets, total)
    return family


def probe_families(reader: ProbeReader, results: dict[str, ProbeResult]) -> Iterator[Metric]:
    """Every probe family except the per-IRQ hard-IRQ ones (those go through the budget)."""
    vectors = _ok(results, "softirq").get("vectors", {})
    yield _histogram_family(
        "irqtune_softirq_duration_seconds", "Softirq handler run time per vector (eBPF softirq_entry/exit).",
        "vector", {v.lower(): d["run"] for v, d in vectors.items() if d["run"].count},
    )  # fmt: skip
    yield _histogram_family(
        "irqtune_softirq_wait_seconds", "Softirq wait from raise to run per vector (eBPF softirq_raise/entry).",
        "vector", {v.lower(): d["wait"] for v, d in vectors.items() if d["wait"].count},
    )  # fmt: skip
    devices = _ok(results, "block").get("devices", {})
    yield _histogram_family(
        "irqtune_block_completion_latency_seconds", "Block I/O latency from issue to completion per device "
        "(eBPF block_rq_issue/complete).", "device", {dev: d["latency"] for dev, d in devices.items()},
    )  # fmt: skip
    yield from _ipi_families(_ok(results, "ipi"))
    yield from _tlb_families(_ok(results, "tlb"))
    yield from _napi_families(_ok(results, "napi"))
    yield from _probe_health(reader, results)


def _ipi_families(data: dict) -> Iterator[Metric]:
    by_callback: dict[str, int] = {}
    for send in data.get("sends", []):
        by_callback[send["callback"]] = by_callback.get(send["callback"], 0) + send["targets"]
    ranked = sorted(by_callback.items(), key=lambda kv: (-kv[1], kv[0]))
    sent = CounterMetricFamily(
        "irqtune_ipi_sent",
        f"IPIs sent, one per target CPU, by the kernel function they run (eBPF ipi_send_cpu/cpumask; the "
        f"{MAX_IPI_CALLBACKS} commonest callbacks, the rest as other).",
        labels=["callback"],
    )
    other = sum(n for _, n in ranked[MAX_IPI_CALLBACKS:])
    for callback, count in ranked[:MAX_IPI_CALLBACKS]:
        sent.add_metric([label(callback)], count)
    if other:
        sent.add_metric(["other"], other)
    yield sent
    received = CounterMetricFamily(
        "irqtune_ipi_received", "IPIs received by kind (x86 irq_vectors: call_function, call_function_single, "
        "reschedule).", labels=["kind"],
    )  # fmt: skip
    for kind, count in sorted(data.get("received_total", {}).items()):
        received.add_metric([label(kind)], count)
    yield received


def _tlb_families(data: dict) -> Iterator[Metric]:
    flushes = CounterMetricFamily("irqtune_tlb_flushes", "TLB flushes by reason (eBPF tlb:tlb_flush, x86).",
                                  labels=["reason"])  # fmt: skip
    pages = CounterMetricFamily("irqtune_tlb_flush_pages", "Pages flushed from TLBs by reason (full flushes count "
                                "0; eBPF tlb:tlb_flush, x86).", labels=["reason"])  # fmt: skip
    for reason, entry in sorted(data.get("reasons", {}).items()):
        flushes.add_metric([label(reason)], entry["count"])
        pages.add_metric([label(reason)], max(0, entry["pages"]))
    yield flushes
    yield pages


def _napi_families(data: dict) -> Iterator[Metric]:
    fields = (
        ("polls", "irqtune_napi_polls", "NAPI polls per device (eBPF napi:napi_poll)."),
        ("packets", "irqtune_napi_packets", "Packets handled by NAPI polls per device."),
        ("budget_exhausted", "irqtune_napi_budget_exhausted", "NAPI polls that used their whole budget (work == "
         "budget: more packets were waiting) per device."),
    )  # fmt: skip
    devices = data.get("devices", {})
    for key, name, doc in fields:
        family = CounterMetricFamily(name, doc, labels=["device"])
        for dev, entry in sorted(devices.items()):
            family.add_metric([label(dev)], entry[key])
        yield family


def _probe_health(reader: ProbeReader, results: dict[str, ProbeResult]) -> Iterator[Metric]:
    loaded = GaugeMetricFamily("irqtune_probe_loaded", "1 when the probe is attached and read, 0 when the kernel "
                               "could not support it or it failed (see the log).", labels=["probe"])  # fmt: skip
    for name, result in sorted(results.items()):
        loaded.add_metric([name], 1 if result.status == "ok" else 0)
    yield loaded
    yield GaugeMetricFamily("irqtune_probe_start_time_seconds", "When the probes were attached (Unix time): "
                            "probe counters and histograms count from here.", value=reader.started)  # fmt: skip
    stats = reader.run_stats()
    run_time = CounterMetricFamily("irqtune_probe_run_time_seconds", "CPU time the probe's BPF programs ran "
                                   "(kernel BPF statistics).", labels=["probe"])  # fmt: skip
    runs = CounterMetricFamily("irqtune_probe_runs", "Times the probe's BPF programs ran.", labels=["probe"])
    for name, (ns, count) in sorted(stats.items()):
        run_time.add_metric([name], ns / 1e9)
        runs.add_metric([name], count)
    yield run_time
    yield runs
