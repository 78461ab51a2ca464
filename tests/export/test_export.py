"""The Prometheus collector on fixture roots: types, promtool, cardinality, wraps, histograms, hostile names."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import cli, fixture_text, make_root, require
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from irqtune.export import AgentStats, ExportOptions, Filters, IrqtuneCollector, make_registry
from irqtune.export.histograms import BUCKET_BOUNDS, FIRST_SLOT, SERIES_PER_HISTOGRAM
from irqtune.export.labels import MAX_LABEL, label
from irqtune.export.server import is_loopback, parse_listen
from irqtune.host import Host
from irqtune.model.identify import Response
from irqtune.parse.common import U32
from irqtune.probe.base import SLOTS, Histogram
from irqtune.probe.runner import ProbeResult

LAPTOP = {
    "proc/interrupts": "interrupts-node_exporter-x86-laptop-4cpu-IR-legacy.txt",
    "proc/softirqs": "softirqs-node_exporter.txt",
    "proc/net/softnet_stat": "softnet_stat-node_exporter.txt",
}
BIG = {
    "proc/interrupts": "interrupts-pcp-x86_64-1152cpu-i40e-lpfc.txt.bz2",
    "proc/softirqs": "softirqs-pcp-x86_64-1152cpu.txt.bz2",
}
NETDEV = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier "
    "compressed\n"
    "    lo: 100 10 0 0 0 0 0 0 100 10 0 0 0 0 0 0\n"
    "  eth0: 9000 70 0 3 0 0 0 0 500 5 0 0 0 0 0 0\n"
    " veth1: 9000 40 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n"
)
TYPES = {
    "irqtune_interrupts": "counter",
    "irqtune_arch_interrupts": "counter",
    "irqtune_cpu_interrupts": "counter",
    "irqtune_interrupt_errors": "counter",
    "irqtune_softirqs": "counter",
    "irqtune_softnet_processed": "counter",
    "irqtune_softnet_dropped": "counter",
    "irqtune_softnet_time_squeezed": "counter",
    "irqtune_network_receive_packets": "counter",
    "irqtune_network_receive_dropped": "counter",
    "irqtune_up": "gauge",
    "irqtune_scrape_duration_seconds": "gauge",
    "irqtune_exporter_series": "gauge",
    "irqtune_exporter_series_dropped": "gauge",
    "irqtune_exporter_cpu_detail": "gauge",
    "irqtune_build_info": "gauge",
}


def fixture_root(tmp_path: Path, files: dict[str, str], extra: dict[str, str] | None = None) -> Path:
    return make_root(tmp_path, {rel: fixture_text(name) for rel, name in files.items()} | (extra or {}))


def exposition(collector: IrqtuneCollector) -> str:
    return generate_latest(make_registry(collector)).decode()


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text: str, name: str) -> dict[tuple, float]:
    """Sample name -> {sorted label items: value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def series_count(text: str) -> int:
    """irqtune's own series: what the budget bounds (the exporter's six process_* series come on top)."""
    return sum(1 for line in text.splitlines() if line.startswith("irqtune_"))


def promtool_check(text: str) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool not installed (apt-get install prometheus)")
    assert promtool is not None
    return subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)


# -- exposition: types and names -----------------------------------------------------------------


def test_the_exporter_exports_its_own_process_metrics(tmp_path):
    root = fixture_root(tmp_path, LAPTOP, {"proc/net/dev": NETDEV})
    found = families(exposition(IrqtuneCollector(Host(str(root)))))
    assert found["process_cpu_seconds"].type == "counter"  # what a scrape costs, as node_exporter's own
    for name in ("process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"):
        assert found[name].type == "gauge", name
        assert found[name].samples[0].value > 0, name


def test_exposition_parses_with_the_right_types(tmp_path):
    root = fixture_root(tmp_path, LAPTOP, {"proc/net/dev": NETDEV})
    text = exposition(IrqtuneCollector(Host(str(root))))
    found = families(text)
    for name, kind in TYPES.items():
        assert name in found, f"{name} missing"
        assert found[name].type == kind, name
    assert all(name.startswith(("irqtune_", "process_")) for name in found)  # process_*: the exporter's own
    irq16 = samples(text, "irqtune_interrupts_total")
    key = next(k for k in irq16 if ("irq", "16") in k)
    assert dict(key)["action"] == "ehci_hcd:usb1, mmc0"
    assert dict(key)["chip"] == "IR-IO-APIC"
    assert irq16[key] == 328511 + 322879 + 293782 + 351412
    loc = samples(text, "irqtune_arch_interrupts_total")
    assert loc[(("cpu", "3"), ("kind", "LOC"))] == 130980079
    softnet = samples(text, "irqtune_softnet_time_squeezed_total")
    assert softnet[(("cpu", "1"),)] == 0x0A
    assert samples(text, "irqtune_softirqs_total")[(("cpu", "0"), ("vector", "net_rx"))] > 0
    assert samples(text, "irqtune_network_receive_dropped_total")[(("device", "eth0"),)] == 3
    assert samples(text, "irqtune_up")[()] == 1


def test_promtool_accepts_every_family(tmp_path):
    root = fixture_root(tmp_path, LAPTOP, {"proc/net/dev": NETDEV})
    stats = AgentStats(journal_entries=2, knob_values={"net/eth0/coalesce/rx-usecs": 50, "irq/41/affinity": 2})
    stats.record_pass(0.25)
    stats.record_change("applied", "net/eth0/coalesce/rx-usecs")
    collector = IrqtuneCollector(Host(str(root)), ExportOptions(per_cpu=True), agent=stats, probes=FakeProbes())
    openmetrics = openmetrics_latest(make_registry(collector)).decode()
    strict = {f.name: f.type for f in openmetrics_families(openmetrics)}  # the strict OpenMetrics parser
    assert strict["irqtune_interrupts"] == strict["irqtune_agent_changes"] == "counter"
    assert strict["irqtune_hardirq_handler_duration_seconds"] == "histogram"
    text = exposition(collector)
    result = promtool_check(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


# -- cardinality -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_1152_cpu_fixture_stays_within_the_default_budget(tmp_path):
    root = fixture_root(tmp_path, BIG)
    host = Host(str(root))
    default = exposition(IrqtuneCollector(host))
    per_cpu = exposition(IrqtuneCollector(host, ExportOptions(per_cpu=True)))
    unlimited = exposition(IrqtuneCollector(host, ExportOptions(per_cpu=True, max_series=0)))
    counts = {name: series_count(text) for name, text in (("default", default), ("per-cpu", per_cpu),
                                                          ("per-cpu, no budget", unlimited))}  # fmt: skip
    print(f"1152-CPU fixture series: {counts}")
    assert counts["default"] <= 5000
    assert counts["per-cpu"] <= 5000
    assert counts["default"] < counts["per-cpu"] < counts["per-cpu, no budget"]
    assert samples(default, "irqtune_exporter_series")[()] == counts["default"]
    detail = samples(default, "irqtune_exporter_cpu_detail")
    assert detail[(("family", "cpu_interrupts"),)] == 1  # 1152 series: fits
    assert detail[(("family", "arch_interrupts"),)] == 0  # 22 rows x 1152 CPUs: summed
    dropped = samples(default, "irqtune_exporter_series_dropped")
    assert dropped[(("family", "arch_interrupts"),)] > 20000
    arch = samples(default, "irqtune_arch_interrupts_total")
    assert all(dict(k).keys() == {"kind"} for k in arch)  # no cpu label when summed
    assert sum(arch[k] for k in arch if dict(k)["kind"] == "LOC") == 509807994
    assert len(samples(default, "irqtune_interrupts_total")) == 1034  # every IRQ fits
    cells = samples(per_cpu, "irqtune_irq_cpu_interrupts_total")
    assert cells and all(v > 0 for v in cells.values())  # only CPUs that served the IRQ


def test_over_budget_the_least_busy_irqs_are_dropped_and_logged(tmp_path, caplog):
    lines = ["           CPU0       CPU1"]
    lines += [f" {irq}:   {irq * 100}   {irq}   PCI-MSI {irq}-edge   dev{irq}" for irq in range(40, 90)]
    root = make_root(tmp_path, {"proc/interrupts": "\n".join(lines) + "\n"})
    collector = IrqtuneCollector(Host(str(root)), ExportOptions(max_series=40))
    with caplog.at_level(logging.WARNING, logger="irqtune.export"):
        text = exposition(collector)
    kept = {int(dict(k)["irq"]) for k in samples(text, "irqtune_interrupts_total")}
    assert kept and kept == set(range(90 - len(kept), 90))  # the busiest ones
    assert series_count(text) <= 40
    dropped = samples(text, "irqtune_exporter_series_dropped")[(("family", "per_irq"),)]
    assert dropped == 50 - len(kept)
    assert any("least busy IRQs left out" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="irqtune.export"):
        exposition(collector)  # unchanged: not logged again
    assert not caplog.records


def test_include_and_exclude(tmp_path):
    root = fixture_root(tmp_path, LAPTOP, {"proc/net/dev": NETDEV})
    host = Host(str(root))
    text = exposition(IrqtuneCollector(host, ExportOptions(filters=Filters.parse(["40-47", "eth*"], ["ahci", "44"]))))
    irqs = {dict(k)["irq"] for k in samples(text, "irqtune_interrupts_total")}
    assert irqs == {"40", "41", "42", "45", "46", "47"}
    assert {dict(k)["device"] for k in samples(text, "irqtune_network_receive_packets_total")} == {"eth0"}
    text = exposition(IrqtuneCollector(host, ExportOptions(filters=Filters.parse(["0-9"], ["i8042"]))))
    assert {dict(k)["irq"] for k in samples(text, "irqtune_interrupts_total")} == {"0", "8", "9"}
    assert len(samples(text, "irqtune_network_receive_packets_total")) == 3  # numbers never filter interfaces


# -- 32-bit counters become 64-bit -------------------------------------------------------------------


def _write(root: Path, header: str, rows: list[str]) -> None:
    (root / "proc" / "interrupts").write_text("\n".join([header, *rows]) + "\n")


def test_a_32_bit_wrap_is_not_a_reset(tmp_path):
    root = make_root(tmp_path, {})
    header = "           CPU0       CPU1"
    near = U32 - 296
    _write(root, header, [f" 41: {near} 100 PCI-MSI 524288-edge eth0-TxRx-0", f"LOC: {near} 7 Local timer interrupts"])
    collector = IrqtuneCollector(Host(str(root)))
    first = exposition(collector)
    irq = samples(first, "irqtune_interrupts_total")
    assert list(irq.values()) == [near + 100]
    _write(root, header, [" 41: 200 150 PCI-MSI 524288-edge eth0-TxRx-0", "LOC: 4 9 Local timer interrupts"])
    second = exposition(collector)
    assert list(samples(second, "irqtune_interrupts_total").values()) == [U32 + 200 + 150]
    assert samples(second, "irqtune_arch_interrupts_total")[(("cpu", "0"), ("kind", "LOC"))] == U32 + 4
    before = samples(first, "irqtune_cpu_interrupts_total")[(("cpu", "0"),)]
    after = samples(second, "irqtune_cpu_interrupts_total")[(("cpu", "0"),)]
    assert after == before + 296 + 200 + 300  # both rows wrapped on CPU 0: +496 and +300
    # an implausible decrease is a reset (the number was reused): count on from the new value
    _write(root, header, [" 41: 5 5 PCI-MSI 524288-edge eth0-TxRx-0", "LOC: 10 10 Local timer interrupts"])
    third = exposition(collector)
    assert list(samples(third, "irqtune_interrupts_total").values()) == [U32 + 350 + 10]


def test_offline_cpus_and_freed_irqs_never_lower_a_total(tmp_path):
    root = make_root(tmp_path, {})
    _write(root, "     CPU0  CPU1", [" 41: 100 50 PCI-MSI 1-edge a", " 42: 7 7 PCI-MSI 2-edge b", "LOC: 10 20 Local"])
    collector = IrqtuneCollector(Host(str(root)))
    exposition(collector)
    _write(root, "     CPU0", [" 41: 110 PCI-MSI 1-edge a", "LOC: 11 Local"])  # CPU1 offline, IRQ 42 freed
    text = exposition(collector)
    assert list(samples(text, "irqtune_interrupts_total").values()) == [160]
    assert samples(text, "irqtune_cpu_interrupts_total")[(("cpu", "0"),)] == 110 + 7 + 11
    _write(root, "     CPU0  CPU1", [" 41: 120 55 PCI-MSI 1-edge a", "LOC: 12 22 Local"])  # CPU1 back
    text = exposition(collector)
    assert list(samples(text, "irqtune_interrupts_total").values()) == [175]
    assert samples(text, "irqtune_cpu_interrupts_total")[(("cpu", "1"),)] == 55 + 7 + 22


def test_softnet_wrap(tmp_path):
    def softnet(processed: int) -> str:
        return f"{processed:08x} 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000\n"

    files = {"proc/interrupts": "  CPU0\nLOC: 1 Local\n", "proc/net/softnet_stat": softnet(U32 - 10)}
    root = make_root(tmp_path, files)
    collector = IrqtuneCollector(Host(str(root)))
    exposition(collector)
    (root / "proc/net/softnet_stat").write_text(softnet(5))
    text = exposition(collector)
    assert samples(text, "irqtune_softnet_processed_total")[(("cpu", "0"),)] == U32 + 5


# -- histograms and probe families -------------------------------------------------------------------


def _hist(**slots: int) -> Histogram:
    hist = Histogram()
    counts = [0] * SLOTS
    for slot, n in slots.items():
        counts[int(slot[1:])] = n
    hist.add(sum(counts), 12345678, 0, counts)
    return hist


class FakeProbes:
    """What ProbeSource.read() returns after the probes ran a while."""

    started = 1_700_000_000.0

    def read(self) -> dict[str, ProbeResult]:
        return {
            "hardirq": ProbeResult("hardirq", "ok", data={"irqs": {46: _hist(s5=3, s12=7, s35=1)},
                                                          "unhandled": {16: 4}}),
            "softirq": ProbeResult("softirq", "ok", data={"vectors": {"NET_RX": {"run": _hist(s11=2), "wait": _hist(
                s20=1)}}}),
            "block": ProbeResult("block", "ok", data={"devices": {"nvme0n1": {"latency": _hist(s17=9)}}}),
            "ipi": ProbeResult("ipi", "ok", data={"sends": [{"callsite": "a", "callback": "flush_tlb_func",
                                                             "sends": 2, "targets": 5}],
                                                  "received_total": {"reschedule": 8}}),
            "tlb": ProbeResult("tlb", "ok", data={"reasons": {"remote_shootdown": {"count": 4, "pages": 9}}}),
            "napi": ProbeResult("napi", "ok", data={"devices": {"eth0": {"polls": 10, "packets": 80,
                                                                         "budget_exhausted": 1}}}),
        }  # fmt: skip

    def run_stats(self) -> dict[str, tuple[int, int]]:
        return {"hardirq": (1_500_000, 30)}


def test_histograms_are_cumulative_with_inf_equal_to_count(tmp_path):
    root = fixture_root(tmp_path, LAPTOP)
    text = exposition(IrqtuneCollector(Host(str(root)), probes=FakeProbes()))
    found = families(text)
    assert found["irqtune_hardirq_handler_duration_seconds"].type == "histogram"
    buckets = [
        (s.labels["le"], s.value)
        for s in found["irqtune_hardirq_handler_duration_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["irq"] == "46"
    ]
    assert len(buckets) == len(BUCKET_BOUNDS) + 1 == SERIES_PER_HISTOGRAM - 2
    values = [v for _, v in buckets]
    assert values == sorted(values)  # cumulative
    assert buckets[-1] == ("+Inf", 11)
    bounds = [float(le) for le, _ in buckets[:-1]]
    assert bounds == sorted(bounds) and bounds[0] == pytest.approx(511e-9) and bounds[-1] == pytest.approx(1.073741823)
    by_le = {float(le): v for le, v in buckets[:-1]}
    assert by_le[bounds[0]] == 3  # slot 5 (16..31 ns) is inside the first bucket
    assert by_le[bounds[12 - FIRST_SLOT]] == 10  # slot 12: <= 4095 ns
    assert by_le[bounds[-1]] == 10  # slot 35 (> 1 s) only in +Inf
    count = samples(text, "irqtune_hardirq_handler_duration_seconds_count")
    total = samples(text, "irqtune_hardirq_handler_duration_seconds_sum")
    assert list(count.values()) == [11] and list(total.values()) == [pytest.approx(0.012345678)]
    assert found["irqtune_softirq_duration_seconds"].type == "histogram"
    assert samples(text, "irqtune_softirq_wait_seconds_count")[(("vector", "net_rx"),)] == 1
    assert samples(text, "irqtune_block_completion_latency_seconds_count")[(("device", "nvme0n1"),)] == 9
    assert samples(text, "irqtune_ipi_sent_total")[(("callback", "flush_tlb_func"),)] == 5
    assert samples(text, "irqtune_tlb_flushes_total")[(("reason", "remote_shootdown"),)] == 4
    assert samples(text, "irqtune_napi_budget_exhausted_total")[(("device", "eth0"),)] == 1
    assert samples(text, "irqtune_probe_run_time_seconds_total")[(("probe", "hardirq"),)] == 0.0015
    unhandled = samples(text, "irqtune_hardirq_unhandled_total")
    assert [dict(k)["irq"] for k in unhandled] == ["16"]


# -- hostile kernel strings --------------------------------------------------------------------------

HOSTILE = 'x"} 666 # \\n \\ {le="1"} irqtune_up 0 \u00e9'


def test_hostile_action_names_survive_as_label_values(tmp_path):
    raw = (
        "           CPU0       CPU1\n"
        + f" 41:  5  6  PCI-MSI 1-edge  {HOSTILE}\n"
        + " 42:  1  1  PCI-MSI 2-edge  bad\x1bname\n"
        + f" 43:  1  1  PCI-MSI 3-edge  {'a' * 300}\n"
        + ' 44:  1  1  evil"}chip\\ 4-edge  ok\n'
    ).encode() + b" 45:  1  1  PCI-MSI 5-edge  bytes\xff\xfe\n"
    root = make_root(tmp_path, {})
    (root / "proc" / "interrupts").write_bytes(raw)
    text = exposition(IrqtuneCollector(Host(str(root))))
    actions = {dict(k)["irq"]: dict(k)["action"] for k in samples(text, "irqtune_interrupts_total")}
    assert actions["41"] == HOSTILE
    assert actions["42"] == "bad\ufffdname"
    assert actions["43"] == label("a" * 300) and len(actions["43"]) == MAX_LABEL
    assert actions["45"] == "bytes\ufffd\ufffd"
    chips = {dict(k)["irq"]: dict(k)["chip"] for k in samples(text, "irqtune_interrupts_total")}
    assert chips["44"] == 'evil"}chip\\'
    assert samples(text, "irqtune_up")[()] == 1  # nobody injected a second irqtune_up
    assert {f.name for f in text_string_to_metric_families(text)} >= {"irqtune_interrupts", "irqtune_up"}
    if shutil.which("promtool"):
        result = promtool_check(text)
        assert result.returncode == 0, result.stdout + result.stderr


# -- agent hook ----------------------------------------------------------------------------------------


def test_agent_stats_are_exported(tmp_path):
    root = fixture_root(tmp_path, LAPTOP)
    stats = AgentStats()
    collector = IrqtuneCollector(Host(str(root)), agent=stats)
    stats.record_pass(0.5)
    stats.record_pass(0.25)
    stats.record_change("applied", "net/eth0/coalesce/rx-usecs")
    stats.record_change("applied", "net/eth0/coalesce/rx-bogus")  # not a settable field: still counted
    stats.record_change("rolled_back", "irq/41/affinity", 2)
    stats.journal_entries = 3
    stats.knob_values = {"net/eth0/coalesce/rx-usecs": 64, "sysctl/net.core.netdev_budget": 600,
                         "napi/eth0/8193/defer-hard-irqs": 2, "irq/41/affinity": 1}  # fmt: skip
    text = exposition(collector)
    assert samples(text, "irqtune_agent_passes_total")[()] == 2
    assert samples(text, "irqtune_agent_loop_duration_seconds")[()] == 0.25
    changes = samples(text, "irqtune_agent_changes_total")
    assert changes[(("knob_kind", "coalesce"), ("outcome", "applied"))] == 1
    assert changes[(("knob_kind", "other"), ("outcome", "applied"))] == 1
    assert changes[(("knob_kind", "irq-affinity"), ("outcome", "rolled_back"))] == 2
    assert samples(text, "irqtune_agent_journal_entries")[()] == 3
    values = {dict(k)["knob"]: (dict(k), v) for k, v in samples(text, "irqtune_knob_value").items()}
    assert values["net/eth0/coalesce/rx-usecs"] == (
        {"knob": "net/eth0/coalesce/rx-usecs", "knob_kind": "coalesce", "device": "eth0", "setting": "rx_usecs"},
        64,
    )
    assert values["napi/eth0/8193/defer-hard-irqs"][0]["setting"] == "defer-hard-irqs@8193"
    assert values["irq/41/affinity"][0]["device"] == "41"


# -- the command, without a server ---------------------------------------------------------------------


def test_export_once(tmp_path):
    root = fixture_root(tmp_path, LAPTOP)
    result = cli("export", "--once", "--per-cpu", "--include", "40-47", root=root)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert families(text)["irqtune_irq_cpu_interrupts"].type == "counter"
    assert {dict(k)["irq"] for k in samples(text, "irqtune_interrupts_total")} == {"40", "41", "42", "43", "44",
                                                                                  "45", "46", "47"}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--listen", "localhost"], 2, "ADDR:PORT"),
        (["--listen", "::1:9731"], 2, "brackets"),
        (["--include", "9-3"], 2, "ends before"),
        (["--tls-key", "/etc/hostname"], 2, "need --tls-cert"),
        (["--max-series", "-1"], 2, "--max-series"),
    ],
)
def test_export_usage_errors(tmp_path, args, code, message):
    root = fixture_root(tmp_path, LAPTOP)
    result = cli("export", "--once", *args, root=root)
    assert result.exit_code == code
    assert message in result.output


def test_export_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    empty = make_root(tmp_path / "empty", {})
    result = cli("export", "--once", root=empty)
    assert result.exit_code == 1 and "nothing to measure" in result.output
    (tmp_path / "laptop").mkdir()
    root = fixture_root(tmp_path / "laptop", LAPTOP)
    bad = tmp_path / "users"
    bad.write_text("admin:plaintext\n")
    result = cli("export", "--basic-auth-file", str(bad), root=root)
    assert result.exit_code == 1 and "users:1" in result.output
    result = cli("export", "--once", "--probes", root=root)
    assert result.exit_code == 4 and "--root must be /" in result.output


def test_malformed_input_is_exit_3_with_the_rest_exported(tmp_path):
    root = make_root(tmp_path, {"proc/interrupts": "  CPU0  CPU1\n 41: 1 2 PCI-MSI 1-edge a\n 42: x y junk\n"})
    result = cli("export", "--once", root=root)
    assert result.exit_code == 3
    assert samples(result.stdout, "irqtune_scrape_problems")[()] == 1
    assert len(samples(result.stdout, "irqtune_interrupts_total")) == 1


def test_a_failing_scrape_still_answers_with_up_0(tmp_path, monkeypatch, caplog):
    root = fixture_root(tmp_path, LAPTOP)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("irqtune.export.collector.take_snapshot", broken)
    with caplog.at_level(logging.ERROR, logger="irqtune.export"):
        text = exposition(IrqtuneCollector(Host(str(root))))
    assert samples(text, "irqtune_up")[()] == 0
    assert "irqtune_interrupts" not in families(text)
    assert any("boom" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9731", ("127.0.0.1", 9731)),
        ("[::1]:0", ("::1", 0)),
        (":9731", ("0.0.0.0", 9731)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen(listen, expected):
    assert parse_listen(listen) == expected
    assert is_loopback(expected[0]) == (expected[0] != "0.0.0.0")


def test_isolated_cpus_are_exported_for_the_isolation_alerts(tmp_path):
    """irqtune_cpu_isolated{cpu,kind} has a series for each isolated CPU only (the alerts join on it)."""
    from irqtune.sim.machine import SimMachine
    from irqtune.sim.scenario import library, load_scenario

    text = Path(library()["tlb-storm"]).read_text().replace("cpus = 8\n", 'cpus = 8\nisolated = "6-7"\n', 1)
    spec = load_scenario("t.toml", text)
    sim = SimMachine(spec, str(tmp_path / "tree"), seed=1)
    sim.step(1.0, spec.phases[0])
    collector = IrqtuneCollector(Host(sim.root))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in collector.collect() for s in f.samples if s.name == "irqtune_cpu_isolated"}  # fmt: skip
    cpus = {dict(labels)["cpu"] for _, labels in samples}
    assert cpus == {"6", "7"} and set(samples.values()) == {1.0}  # the simulated host isolates them as the kernel
    assert ("irqtune_cpu_isolated", (("cpu", "6"), ("kind", "isolated"))) in samples  # shows: sysfs and isolcpus=


def test_the_cpus_the_agent_holds_for_pods_are_exported_from_its_state_file(tmp_path, caplog):
    """The agent's kubernetes.json (what `status` shows) becomes irqtune_kube_held_cpus and one
    irqtune_kube_held_cpu{cpu,pod,container} per CPU, in `irqtune export --once` with the agent's state directory;
    no file (no agent watches a kubelet), no families; a file that is not irqtune's is a scrape problem, logged."""
    root = fixture_root(tmp_path, LAPTOP)
    state = tmp_path / "state"
    state.mkdir()
    code, out, _ = cli("export", "--once", root=root, state=state)
    assert code == 0 and "irqtune_kube_held" not in out
    held = {"cpus": "2-3", "containers": [{"pod": "telco/packet-forwarder", "uid": "6f4c", "container": "dpdk",
                                           "cpus": "2-3"}]}  # fmt: skip
    (state / "kubernetes.json").write_text(json.dumps(held))
    code, out, _ = cli("export", "--once", root=root, state=state)
    assert code == 0, out
    families = {f.name: f for f in text_string_to_metric_families(out)}
    assert [s.value for s in families["irqtune_kube_held_cpus"].samples] == [2.0]
    cpus = {(s.labels["cpu"], s.labels["pod"], s.labels["container"]): s.value
            for s in families["irqtune_kube_held_cpu"].samples}  # fmt: skip
    assert cpus == {("2", "telco/packet-forwarder", "dpdk"): 1.0, ("3", "telco/packet-forwarder", "dpdk"): 1.0}
    (state / "kubernetes.json").write_text('{"cpus": "2", "containers": [{"pod": "x"}]}')
    collector = IrqtuneCollector(Host(str(root)), state_dir=str(state))
    with caplog.at_level(logging.WARNING):
        names = {f.name for f in collector.collect()}
    assert "irqtune_kube_held_cpus" not in names and collector.last_problems == 1
    assert "kubernetes.json: a container without pod, uid, container and cpus" in caplog.text


def test_the_agents_prediction_is_exported_beside_the_measurement(tmp_path):
    """A moderation change's check (predicted vs measured interrupts/s per queue) becomes two gauges per knob."""
    root = fixture_root(tmp_path, LAPTOP)
    stats = AgentStats()
    stats.predictions["net/eth0/coalesce/rx-usecs"] = {"knob": "net/eth0/coalesce/rx-usecs", "device": "eth0",
                                                       "predicted_irq_rate": 15472.3, "measured_irq_rate": 3090.1,
                                                       "error": -0.8003}  # fmt: skip
    text = exposition(IrqtuneCollector(Host(str(root)), agent=stats))
    key = (("device", "eth0"), ("knob", "net/eth0/coalesce/rx-usecs"))
    assert samples(text, "irqtune_agent_predicted_interrupts_per_second")[key] == 15472.3
    assert samples(text, "irqtune_agent_measured_interrupts_per_second")[key] == 3090.1
    assert promtool_check(text).returncode == 0


def test_the_agents_model_of_each_nic_is_exported(tmp_path):
    """The fitted response (flavour beside the driver's, timer scale, floor, error) and the misses, per device."""
    root = fixture_root(tmp_path, LAPTOP)
    stats = AgentStats()
    stats.models["eth0"] = Response("min-gap", 0.787, 223.0).to_json() | {"prior": "min-gap", "error": 0.04}
    stats.misses["eth0"] = 2
    text = exposition(IrqtuneCollector(Host(str(root)), agent=stats))
    assert samples(text, "irqtune_agent_model_info")[(("device", "eth0"), ("flavour", "min-gap"),
                                                      ("prior", "min-gap"))] == 1  # fmt: skip
    assert samples(text, "irqtune_agent_model_timer_scale")[(("device", "eth0"),)] == 0.787
    assert samples(text, "irqtune_agent_model_interrupt_floor_seconds")[(("device", "eth0"),)] == 223e-6
    assert samples(text, "irqtune_agent_model_misses_total")[(("device", "eth0"),)] == 2
    assert promtool_check(text).returncode == 0


def test_every_softnet_column_the_kernel_prints_is_exported(tmp_path):
    """node_exporter #2592: beyond processed/dropped/squeezed, softnet_stat has the RPS wake-ups (col 10), the flow
    limit's drops (col 11) and the backlog (col 12). This host's own file, copied: each column exported per CPU."""
    from irqtune.parse.softnet import parse_softnet

    text = Path("/proc/net/softnet_stat").read_text()
    rows = parse_softnet(text).rows
    require(rows and rows[0].backlog_len is not None, "this kernel's softnet_stat has no backlog column (5.10+)")
    root = fixture_root(tmp_path, LAPTOP, {"proc/net/softnet_stat": text})
    out = exposition(IrqtuneCollector(Host(str(root))))
    for column, family in (("received_rps", "irqtune_softnet_received_rps_total"),
                           ("flow_limit_count", "irqtune_softnet_flow_limit_total"),
                           ("cpu_collision", "irqtune_softnet_cpu_collision_total"),
                           ("backlog_len", "irqtune_softnet_backlog_packets")):  # fmt: skip
        exported = samples(out, family)
        assert exported == {(("cpu", str(r.cpu)),): getattr(r, column) for r in rows}, family
    assert families(out)["irqtune_softnet_backlog_packets"].type == "gauge"
    old = "\n".join(" ".join(line.split()[:9]) for line in text.splitlines()) + "\n"  # a 2.6.32 kernel's 9 columns
    root = fixture_root(tmp_path / "old", LAPTOP, {"proc/net/softnet_stat": old})
    found = families(exposition(IrqtuneCollector(Host(str(root)))))
    assert "irqtune_softnet_processed" in found and "irqtune_softnet_received_rps" not in found
    assert "irqtune_softnet_backlog_packets" not in found
