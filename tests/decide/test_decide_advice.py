"""Advice rules (decide/advice/): NVMe polling and placement, and what disturbs isolated CPUs.

Constructed measurements for each rule, then real /proc/interrupts fixtures and the simulator's
NVMe scenario trees read through the same measurement code as a real host.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from conftest import fixture_text, make_root

from irqtune.decide.advice import (
    CSTATE_EXIT_S,
    IRQ_HANDLER_S,
    POLL_NOT_WORTH_MAX_SHARE,
    POLL_PAYS_MIN_SHARE,
    WAKE_S,
    ProbeView,
    advise,
    break_even_completion_s,
    judge_polling,
    supersede,
)
from irqtune.findings import Finding, Measurements, find_all
from irqtune.host import Host
from irqtune.measure.inventory import Inventory, IrqInfo, build_inventory
from irqtune.measure.nvme import NvmeController, NvmeReport, read_nvme
from irqtune.measure.rates import Rates, RowRate, compute_rates
from irqtune.measure.snapshot import IrqAffinity, take_snapshot
from irqtune.measure.topology import Topology, read_topology
from irqtune.sim.machine import SimMachine
from irqtune.sim.nvme import MEDIA, nvme_queue
from irqtune.sim.scenario import library, load_scenario

CPUS = list(range(8))
NVME_IRQ = {q: 120 + q for q in range(1, 5)}  # nvme0q1..q4 -> IRQ 121..124, queue q on CPUs 2(q-1), 2(q-1)+1


# -- constructed inputs -----------------------------------------------------------------------------------------------
def topology(isolated: list[int] | None = None, flags: tuple[str, ...] = (), nohz: bool = True) -> Topology:
    isolated = isolated or []
    return Topology(
        online=CPUS, possible=CPUS, isolated=isolated, nohz_full=isolated if nohz else [], isolcpus=isolated,
        isolcpus_flags=list(flags), housekeeping=[c for c in CPUS if c not in isolated],
    )  # fmt: skip


def nvme_inventory(managed: str = "unknown") -> Inventory:
    irqs = {
        irq: IrqInfo(irq, (f"nvme0q{q}",), "PCI-MSIX", device="nvme0", kind="nvme", role="io", queue=q,
                     managed=managed, affinity=IrqAffinity(requested=[2 * q - 2, 2 * q - 1], effective=[2 * q - 2]))
        for q, irq in NVME_IRQ.items()
    }  # fmt: skip
    return Inventory(irqs=irqs)


def rates(rows: dict[str, dict[int, float]]) -> Rates:
    return Rates(1.0, CPUS, {k: RowRate(k, per_cpu, sum(per_cpu.values())) for k, per_cpu in rows.items()})


def nvme_rates(per_queue: float) -> dict[str, dict[int, float]]:
    """Every IO queue completing `per_queue` interrupts/s on the first CPU of its pair."""
    return {str(irq): {2 * q - 2: per_queue} for q, irq in NVME_IRQ.items()}


def block(mean_s: float, per_queue: int, queues: int = 4, disk: str = "nvme0n1") -> dict:
    """The block probe's data for one disk, as `irqtune probe --json` prints it."""
    hist = {"count": per_queue, "sum_seconds": mean_s * per_queue, "mean_seconds": mean_s, "buckets": []}
    whole = {**hist, "count": per_queue * queues, "sum_seconds": mean_s * per_queue * queues}
    return {"devices": {disk: {"dev": "259:0", "latency": whole, "remote_completions": 0,
                               "queues": {f"hctx{q}": hist for q in range(queues)}}}}  # fmt: skip


def document(duration: float = 2.0, **probes: dict) -> dict:
    """A whole `irqtune probe --json` document holding the given probes' data."""
    wrapped = {name: {"status": "ok", "reason": "", "data": data} for name, data in probes.items()}
    return {"schema": 1, "duration": duration, "probes": wrapped, "proc": {}, "proc_outer": {}}


def nvme_measurements(per_queue_rate: float, isolated: list[int] | None = None, flags=(), managed="unknown"):
    return Measurements(topology(isolated, flags), nvme_inventory(managed), rates(nvme_rates(per_queue_rate)))


def by_code(found: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in found:
        out.setdefault(f.code, []).append(f)
    return out


NVME_CODES = ("nvme-poll-would-pay", "nvme-poll-hybrid", "nvme-poll-not-worth")


def polling(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.code in NVME_CODES]


# -- the break-even rule ----------------------------------------------------------------------------------------------
def test_break_even_rule_thresholds():
    saving = IRQ_HANDLER_S + WAKE_S + CSTATE_EXIT_S
    assert saving == pytest.approx(6.5e-6)
    pays_at = break_even_completion_s(POLL_PAYS_MIN_SHARE)
    worth_at = break_even_completion_s(POLL_NOT_WORTH_MAX_SHARE)
    assert pays_at == pytest.approx(29.5e-6) and worth_at == pytest.approx(62e-6)
    assert judge_polling(pays_at * 0.99).verdict == "pays"
    assert judge_polling(pays_at * 1.01).verdict == "hybrid"
    assert judge_polling(worth_at * 0.99).verdict == "hybrid"
    assert judge_polling(worth_at * 1.01).verdict == "not-worth"
    # a slow measured handler moves the break-even: 45 µs completions with 10 µs handlers pay
    assert judge_polling(45e-6).verdict == "hybrid" and judge_polling(45e-6, 10e-6).verdict == "pays"


@pytest.mark.parametrize("media", ["optane", "nand"])
def test_share_matches_the_simulators_qd1_gain(media):
    """What the block probe sees at QD1 is D + C-state exit + IRQ (§9.4); the rule's share is then within
    5 points of the simulator's own latency gain from polling (Optane 40 %, NAND 7 %)."""
    med = MEDIA[media]
    irq, poll = (nvme_queue(mode, med, iodepth=1, cstate=CSTATE_EXIT_S) for mode in ("irq", "poll"))
    gain = 1 - poll.mean_latency / irq.mean_latency
    verdict = judge_polling(med.mean + CSTATE_EXIT_S + IRQ_HANDLER_S)
    assert verdict.share == pytest.approx(gain, abs=0.05)
    assert verdict.verdict == {"optane": "pays", "nand": "not-worth"}[media]


def test_cost_estimates():
    v = judge_polling(11.5e-6, rate_per_queue=50_000)
    assert v.irq_cpu == pytest.approx(50_000 * (IRQ_HANDLER_S + WAKE_S))
    assert v.poll_cpu == pytest.approx(1 - 2.718281828 ** (-50_000 * 8e-6), rel=1e-6)  # spins while I/O is out
    assert judge_polling(11.5e-6).poll_cpu == 0.0


# -- NVMe: polling ----------------------------------------------------------------------------------------------------
def test_optane_class_polling_pays():
    found = advise(nvme_measurements(50_000), document(block=block(11e-6, 100_000)))
    assert [(f.code, f.device, f.severity) for f in polling(found)] == [("nvme-poll-would-pay", "nvme0", "info")]
    message = polling(found)[0].message
    assert "11.0 µs" in message and "46%" in message  # 6.5 / (11 + 3)
    assert "poll_queues=4" in message and "IORING_SETUP_IOPOLL" in message and "HYBRID_IOPOLL" in message
    assert "50,000 completions/s" in message


def test_poll_queues_configured_but_the_application_does_not_poll():
    report = NvmeReport(poll_queues="4", write_queues="0")
    message = polling(advise(nvme_measurements(50_000), document(block=block(11e-6, 1000)), report))[0].message
    assert "nvme.poll_queues is already 4, yet 200,000 completions/s still come by interrupt" in message
    assert "load nvme with" not in message


def test_nand_class_polling_is_not_worth_it():
    found = polling(advise(nvme_measurements(10_000), document(block=block(85e-6, 20_000))))
    assert [(f.code, f.severity) for f in found] == [("nvme-poll-not-worth", "info")]
    assert "Keep interrupts" in found[0].message and "7%" in found[0].message
    configured = polling(advise(nvme_measurements(10_000), document(block=block(85e-6, 20_000)),
                                NvmeReport(poll_queues="2", write_queues="0")))  # fmt: skip
    assert [(f.code, f.severity) for f in configured] == [("nvme-poll-not-worth", "warning")]
    assert "nvme.poll_queues=2 is set" in configured[0].message


def test_in_between_recommends_hybrid_polling():
    found = polling(advise(nvme_measurements(10_000), document(block=block(45e-6, 20_000))))
    assert [f.code for f in found] == ["nvme-poll-hybrid"] and "HYBRID_IOPOLL" in found[0].message


def test_nand_polling_only_where_the_serving_cpus_are_idle_anyway():
    m, probes = nvme_measurements(10_000), document(block=block(85e-6, 20_000))
    serving = {0: 0.95, 2: 0.97, 4: 0.99, 6: 0.93}  # the CPUs that take the four queue IRQs
    found = polling(advise(m, probes, cpu_idle={**serving, 1: 0.0}))
    assert [f.code for f in found] == ["nvme-poll-would-pay"]
    assert "NAND class" in found[0].message and "CPU 0,2,4,6" in found[0].message and "idle anyway" in found[0].message
    busy_one = polling(advise(m, probes, cpu_idle={**serving, 4: 0.5}))
    assert [f.code for f in busy_one] == ["nvme-poll-not-worth"]
    assert [f.code for f in polling(advise(m, probes, cpu_idle={}))] == ["nvme-poll-not-worth"]


def test_measured_handler_time_enters_the_rule():
    hardirq = {
        "irqs": {str(irq): {"count": 1000, "sum_seconds": 10e-3, "mean_seconds": 10e-6} for irq in NVME_IRQ.values()}
    }
    m = nvme_measurements(10_000)
    assert [f.code for f in polling(advise(m, document(block=block(45e-6, 20_000))))] == ["nvme-poll-hybrid"]
    found = polling(advise(m, document(block=block(45e-6, 20_000), hardirq=hardirq)))
    assert [f.code for f in found] == ["nvme-poll-would-pay"] and "15.0 µs" in found[0].message


def test_without_proc_rates_the_block_probe_gives_the_busy_queues():
    """hctx3 is served by nvme0q4 (q0 is the admin queue): IRQ 124, effective CPU 6."""
    m = Measurements(topology(), nvme_inventory(), None)
    probes = document(duration=2.0, block=block(85e-6, 20_000, queues=4))
    probes["probes"]["block"]["data"]["devices"]["nvme0n1"]["queues"] = {
        "hctx3": {"count": 20_000, "sum_seconds": 1.7, "mean_seconds": 85e-6}
    }
    idle_six = polling(advise(m, probes, cpu_idle={6: 0.99, 4: 0.0}))
    assert [f.code for f in idle_six] == ["nvme-poll-would-pay"] and "CPU 6 " in idle_six[0].message
    assert "poll_queues=1" in idle_six[0].message and "10,000 completions/s" in idle_six[0].message
    assert [f.code for f in polling(advise(m, probes, cpu_idle={4: 0.99, 6: 0.0}))] == ["nvme-poll-not-worth"]


def test_no_verdict_without_enough_completions_or_a_block_probe():
    m = nvme_measurements(10)
    assert polling(advise(m, document(block=block(11e-6, 10)))) == []  # 40 completions
    assert polling(advise(m, None)) == [] and polling(advise(m, document(timer={"per_cpu": {}}))) == []


def test_namespace_maps_to_its_controller_through_the_nvme_report():
    report = NvmeReport("0", "0", [NvmeController("nvme0", namespaces=["nvme0c0n1"])])
    found = polling(advise(nvme_measurements(50_000), document(block=block(11e-6, 1000, disk="nvme0c0n1")), report))
    assert [(f.code, f.device) for f in found] == [("nvme-poll-would-pay", "nvme0")]
    assert polling(advise(nvme_measurements(50_000), document(block=block(11e-6, 1000, disk="vda")))) == []


# -- NVMe: managed placement ------------------------------------------------------------------------------------------
def test_managed_nvme_irq_on_isolated_cpu():
    found = by_code(advise(nvme_measurements(1000, isolated=[6, 7]), None))["nvme-managed-on-isolated"]
    assert len(found) == 1 and found[0].device == "nvme0" and found[0].severity == "warning"
    message = found[0].message
    assert "IRQ 124 (queue 4) on CPU 6" in message and "IRQ 123" not in message
    assert "only isolated CPUs" in message  # queue 4's mask is 6-7: managed_irq cannot move it


def test_managed_irq_advice_depends_on_the_mask_and_the_flag():
    m = nvme_measurements(1000, isolated=[5, 6])  # queue 3 (CPUs 4-5) and queue 4 (CPUs 6-7) mix in housekeeping
    message = by_code(advise(m, None))["nvme-managed-on-isolated"][0].message
    assert "IRQ 124 (queue 4) on CPU 6" in message and "boot with isolcpus=managed_irq,5-6" in message
    flagged = nvme_measurements(1000, isolated=[5, 6], flags=("managed_irq", "domain"))
    assert "is set but best effort" in by_code(advise(flagged, None))["nvme-managed-on-isolated"][0].message


def test_managed_irq_advice_per_irq_when_masks_differ():
    m = nvme_measurements(1000, isolated=[4, 5, 6])  # queue 3's mask 4-5 is all isolated, queue 4's 6-7 is not
    message = by_code(advise(m, None))["nvme-managed-on-isolated"][0].message
    assert "IRQ 123 (queue 3) on CPU 4, IRQ 124 (queue 4) on CPU 6" in message
    assert "boot with isolcpus=managed_irq,4-6" in message
    assert "the queue mask of IRQ 123 holds only isolated CPUs" in message


def test_queue_mask_from_the_nvme_report_when_affinity_is_unknown():
    inventory = nvme_inventory()
    for info in inventory.irqs.values():
        info.affinity = None
    m = Measurements(topology([6, 7]), inventory, rates(nvme_rates(1000)))
    assert "boot with isolcpus=managed_irq,6-7" in advise(m, None)[0].message  # mask unknown: the flag may help
    report = NvmeReport("0", "0", [NvmeController("nvme0", ["nvme0n1"], 4, {q: [2 * q, 2 * q + 1] for q in range(4)})])
    message = advise(m, None, report)[0].message
    assert "these queues' CPU masks hold only isolated CPUs" in message and "boot with" not in message


def test_no_placement_finding_without_isolation_or_when_not_managed():
    assert "nvme-managed-on-isolated" not in by_code(advise(nvme_measurements(1000), None))
    not_managed = nvme_measurements(1000, isolated=[6, 7], managed="no")
    assert "nvme-managed-on-isolated" not in by_code(advise(not_managed, None))
    idle = nvme_measurements(0.0, isolated=[6, 7])  # rates say the queue fired nowhere in the window
    assert "nvme-managed-on-isolated" not in by_code(advise(idle, None))
    static = Measurements(topology([6, 7]), nvme_inventory(), None)  # no rates: the effective affinity decides
    assert "CPU 6" in by_code(advise(static, None))["nvme-managed-on-isolated"][0].message


# -- isolated CPUs ----------------------------------------------------------------------------------------------------
def ipi_measurements(rows: dict[str, dict[int, float]], isolated=(6, 7)) -> Measurements:
    return Measurements(topology(list(isolated)), Inventory(), rates(rows))


TLB_PROBE = {"reasons": {"remote_shootdown": {"per_cpu": {"6": 10}, "count": 10}},
             "senders": {"khugepaged": 40, "java": 3}}  # fmt: skip
IPI_PROBE = {
    "sends": [{"callsite": "ttwu_queue_wakelist", "callback": "generic_smp_call_function_single_interrupt",
               "sends": 30, "targets": 30},
              {"callsite": "wakeup_preempt", "callback": "reschedule (no callback)", "sends": 12, "targets": 12}],
    "targets_per_cpu": {"6": 42}, "received_per_cpu": {"reschedule": {"6": 12}, "call_function_single": {"6": 30}},
}  # fmt: skip


def test_tlb_on_isolated_cpu_without_probe_data():
    found = by_code(advise(ipi_measurements({"TLB": {1: 5.0, 6: 5.0, 7: 0.5}}), None))
    assert [(f.cpu, f.severity) for f in found["tlb-on-isolated"]] == [
        (6, "warning")
    ]  # 0.5/s is noise, CPU 1 not isolated
    message = found["tlb-on-isolated"][0].message
    assert "5.0 TLB shootdowns/s" in message and "senders" not in message
    assert "numa_balancing" in message and "khugepaged" in message and "irqtune probe --only tlb" in message


def test_tlb_on_isolated_cpu_names_the_sender_and_its_remedy():
    found = by_code(advise(ipi_measurements({"TLB": {6: 5.0}}), document(tlb=TLB_PROBE)))["tlb-on-isolated"]
    message = found[0].message
    assert "shootdown senders in the probe window (all CPUs): khugepaged 40, java 3 (43 in all)" in message
    assert "transparent_hugepage/enabled" in message and "munmap" in message  # THP for khugepaged, churn for java
    pid_shape = {**TLB_PROBE, "senders": {"java": {"count": 7, "pid": 4242}}}
    message = advise(ipi_measurements({"TLB": {6: 5.0}}), document(tlb=pid_shape))[0].message
    assert "java (pid 4242) 7" in message and "transparent_hugepage" not in message


def test_tlb_churn_on_housekeeping_cpus():
    found = by_code(advise(ipi_measurements({"TLB": {0: 5000.0, 1: 2000.0, 2: 900.0}}), None))
    assert [f.message.split(" receive")[0] for f in found["tlb-churn"]] == ["CPU 0-1"]
    assert "tlb-on-isolated" not in found


def test_ipi_on_isolated_cpu_from_proc_rates():
    found = by_code(advise(ipi_measurements({"CAL": {6: 50.0, 7: 45.0}, "TLB": {6: 45.0, 7: 45.0},
                                             "RES": {6: 0.0, 7: 20.0}}), None))["ipi-on-isolated"]  # fmt: skip
    assert [f.cpu for f in found] == [6, 7]
    six, seven = (f.message for f in found)
    assert "function calls 5.0/s" in six and "reschedules" not in six and "irqtune probe --only ipi" in six
    assert "reschedules 20.0/s" in seven and "function calls" not in seven  # CAL - TLB = 0: only shootdowns
    assert "move every other task off" in seven


def test_ipi_on_isolated_cpu_names_the_send_sites():
    m = ipi_measurements({"CAL": {6: 15.0}, "RES": {6: 6.0}})
    message = by_code(advise(m, document(ipi=IPI_PROBE)))["ipi-on-isolated"][0].message
    assert (
        "IPI send sites in the probe window (all CPUs): ttwu_queue_wakelist 30, wakeup_preempt (reschedule) 12"
        in message
    )
    assert "cross-CPU wake-ups" in message and "irqtune probe --only ipi" not in message


def test_nohz_ticking_is_left_to_findings_without_a_source_and_sourced_with_one():
    m = ipi_measurements({"LOC": {6: 1000.0, 7: 5.0}})
    assert "nohz-full-ticking" not in by_code(advise(m, None))
    assert "nohz-full-ticking" not in by_code(advise(m, document(timer={"per_cpu": {"6": 2000}})))
    sourced = by_code(advise(m, document(ipi=IPI_PROBE, tlb=TLB_PROBE)))["nohz-full-ticking"]
    assert [f.cpu for f in sourced] == [6]  # CPU 7 at 5/s does not tick
    message = sourced[0].message
    assert "1000 timer interrupts/s" in message and "12 rescheduling IPIs" in message
    assert "30 function-call IPIs" in message and "10 TLB shootdowns (senders: khugepaged, java)" in message
    merged = supersede(find_all(m), advise(m, document(ipi=IPI_PROBE)))
    ticking = [f for f in merged if f.code == "nohz-full-ticking"]
    assert len(ticking) == 1 and "rescheduling IPIs" in ticking[0].message
    assert len([f for f in find_all(m) if f.code == "nohz-full-ticking"]) == 1  # what supersede replaced


def test_nohz_tick_kicks_from_irq_work_are_a_source():
    m = ipi_measurements({"LOC": {7: 300.0}})
    kick = {"sends": [{"callsite": "irq_work_queue_on", "callback": "generic_smp_call_function_single_interrupt",
                       "sends": 5, "targets": 5}], "received_per_cpu": {}}  # fmt: skip
    found = by_code(advise(m, document(ipi=kick)))["nohz-full-ticking"]
    assert [f.cpu for f in found] == [7] and "tick kicks from irq_work_queue_on" in found[0].message
    assert "POSIX CPU timers" in found[0].message


def test_probe_counts_stand_in_for_proc_rates():
    m = Measurements(topology([6, 7]), Inventory(), None)
    found = by_code(advise(m, document(duration=2.0, tlb=TLB_PROBE, ipi=IPI_PROBE)))
    assert "5.0 TLB shootdowns/s" in found["tlb-on-isolated"][0].message  # 10 in 2 s
    assert "reschedules 6.0/s" in found["ipi-on-isolated"][0].message
    assert advise(m, {"tlb": TLB_PROBE}) == []  # no window length: no rates


def test_probe_view_accepts_every_shape_and_drops_failed_probes():
    doc = document(duration=3.0, tlb=TLB_PROBE)
    doc["probes"]["ipi"] = {"status": "unsupported", "reason": "no tracepoint", "data": {}}
    for shape in (doc, doc["probes"], {"tlb": TLB_PROBE}):
        view = ProbeView.of(shape)
        assert view.get("tlb") == TLB_PROBE and view.get("ipi") is None
    assert ProbeView.of(doc).duration == 3.0 and ProbeView.of(doc["probes"]).duration is None
    assert ProbeView.of(doc).per_cpu_rate({"6": 9}) == {6: 3.0}


# -- real fixture data ------------------------------------------------------------------------------------------------
def fixture_measurements(tmp_path: Path, before: str, after: str, cmdline: str, interval: float) -> Measurements:
    """Two /proc/interrupts readings of a real host in a root with only /proc, as `irqtune status` reads it."""
    root = make_root(tmp_path / "root", {"proc/interrupts": before, "proc/cmdline": cmdline + "\n"})
    host = Host(str(root))
    first = take_snapshot(host)
    (root / "proc" / "interrupts").write_text(after)
    second = take_snapshot(host)
    second.monotonic = first.monotonic + interval
    return Measurements(read_topology(host, second.cpus), build_inventory(host, second.interrupts, second.affinity),
                        compute_rates(first, second))  # fmt: skip


def test_fixture_series_tlb_and_rescheduling_ipis_on_isolated_cpus(tmp_path):
    """netutils multiqueue series, t1 -> t2 about a second apart (SOURCES.md): TLB +1,+4,+5,+5, RES +44,+17,+36,+78,
    CAL flat (an old kernel printing CAL without shootdowns), LOC +678,+1219,+651,+476 per CPU."""
    m = fixture_measurements(tmp_path, fixture_text("interrupts-netutils-x86_64-4cpu-multiqueue-series-t1.txt"),
                             fixture_text("interrupts-netutils-x86_64-4cpu-multiqueue-series-t2.txt"),
                             "ro isolcpus=2-3 nohz_full=2-3", 1.0)  # fmt: skip
    assert m.topology.isolated_any == {2, 3}
    found = by_code(advise(m, None))
    assert [f.cpu for f in found["tlb-on-isolated"]] == [2, 3]  # CPUs 0-1 (+1, +4) are not isolated
    assert all("receives 5.0 TLB shootdowns/s" in f.message for f in found["tlb-on-isolated"])
    ipis = {f.cpu: f.message for f in found["ipi-on-isolated"]}
    assert set(ipis) == {2, 3}
    assert "reschedules 36.0/s" in ipis[2] and "reschedules 78.0/s" in ipis[3]
    assert not any("function calls" in text for text in ipis.values())  # CAL did not move
    assert "nohz-full-ticking" not in found and "tlb-churn" not in found  # ticking without a source: findings.py's
    assert {f.cpu for f in find_all(m) if f.code == "nohz-full-ticking"} == {2, 3}


def test_fixture_nvme_queue_irqs_on_isolated_cpus(tmp_path):
    """ThinkPad with nvme0q1..q8 one per CPU (SOURCES.md). Its counts are since boot: read against zero over an
    assumed day they give ≈ 11 IRQs/s per queue and ≈ 60 TLB shootdowns/s per CPU; only the pattern matters."""
    text = fixture_text("interrupts-pcp-x86_64-8cpu-thinkpad-nvme-rmi4.txt")
    m = fixture_measurements(tmp_path, text.splitlines()[0] + "\n", text, "ro isolcpus=domain,6-7", 86_400.0)
    found = by_code(advise(m, None))
    placement = found["nvme-managed-on-isolated"]
    assert [f.device for f in placement] == ["nvme0"]
    assert "IRQ 131 (queue 7) on CPU 6, IRQ 132 (queue 8) on CPU 7" in placement[0].message
    assert "boot with isolcpus=managed_irq,6-7" in placement[0].message
    assert [f.cpu for f in found["tlb-on-isolated"]] == [6, 7]  # 4.8M and 5.2M shootdowns since boot
    assert "56.1 TLB shootdowns/s" in found["tlb-on-isolated"][0].message


# -- the simulator's NVMe scenarios -----------------------------------------------------------------------------------
SIM_DEFAULTS = inspect.signature(nvme_queue).parameters
SUBMIT_S, SIM_WAKE_S = SIM_DEFAULTS["submit_cost"].default, SIM_DEFAULTS["wake_cost"].default


def simulated(tmp_path: Path, scenario: str, phase: str, isolated: str | None = None):
    """One second of a library NVMe scenario's phase, measured from its tree, plus the block probe's view of it:
    the application's latency less submission and wake-up, which lie outside issue-to-completion (§9.4)."""
    text = Path(library()[scenario]).read_text()
    if isolated:
        text = text.replace("cpus = 8", f'cpus = 8\nisolated = "{isolated}"')
    sim = SimMachine(load_scenario(f"{scenario}.toml", text), str(tmp_path / "tree"), seed=3)
    host = Host(sim.root)
    before = take_snapshot(host)
    sim.step(1.0, next(p for p in sim.sc.phases if p.name == phase))
    after = take_snapshot(host)
    after.monotonic = before.monotonic + 1.0
    m = Measurements(read_topology(host), build_inventory(host, after.interrupts, after.affinity),
                     compute_rates(before, after))  # fmt: skip
    queues = {f"hctx{q.queue - 1}": q for q in sim.last_nvme}
    seen = {label: q.latency - SUBMIT_S - SIM_WAKE_S for label, q in queues.items()}
    hists = {label: {"count": int(q.iops), "sum_seconds": seen[label] * int(q.iops)} for label, q in queues.items()}
    total = {
        "count": sum(h["count"] for h in hists.values()),
        "sum_seconds": sum(h["sum_seconds"] for h in hists.values()),
    }
    probes = document(duration=1.0, block={"devices": {"nvme0n1": {"latency": total, "queues": hists}}})
    return sim, m, probes, read_nvme(host)


@pytest.mark.parametrize(
    ("scenario", "phase", "expected"),
    [("nvme-optane", "qd1", "nvme-poll-would-pay"), ("nvme-optane", "qd16", "nvme-poll-not-worth"),
     ("nvme-nand", "qd1", "nvme-poll-not-worth"), ("nvme-nand", "qd32", "nvme-poll-not-worth")],
)  # fmt: skip
def test_simulated_nvme_scenarios(tmp_path, scenario, phase, expected):
    """The advice agrees with the simulator's own comparison of polling and interrupts for that load."""
    sim, m, probes, report = simulated(tmp_path, scenario, phase)
    assert report.poll_queues is None and [c.name for c in report.controllers] == ["nvme0"]
    found = polling(advise(m, probes, report))
    assert [(f.code, f.device) for f in found] == [(expected, "nvme0")]
    nvme = sim.sc.nvmes[0]
    load = next(p for p in sim.sc.phases if p.name == phase).load_for("nvme0")
    irq, poll = (nvme_queue(mode, sim.nvme_media(nvme), iodepth=load.iodepth, cstate=nvme.cstate_us * 1e-6)
                 for mode in ("irq", "poll"))  # fmt: skip
    gain = 1 - poll.mean_latency / irq.mean_latency
    assert gain >= POLL_PAYS_MIN_SHARE if expected == "nvme-poll-would-pay" else gain < POLL_NOT_WORTH_MAX_SHARE
    if expected == "nvme-poll-would-pay":
        assert "poll_queues=4" in found[0].message  # all four hardware queues carry I/O
    assert "nvme-managed-on-isolated" not in by_code(advise(m, probes, report))


def test_simulated_nvme_queue_on_isolated_cpus(tmp_path):
    """The managed spread puts queue 4 on CPUs 6-7: with those isolated, managed_irq cannot help."""
    _, m, probes, report = simulated(tmp_path, "nvme-optane", "qd1", isolated="6-7")
    placement = by_code(advise(m, probes, report))["nvme-managed-on-isolated"]
    irq = next(info.irq for info in m.inventory.irqs.values() if info.device == "nvme0" and info.queue == 4)
    assert len(placement) == 1 and f"IRQ {irq} (queue 4) on CPU 6" in placement[0].message
    assert "only isolated CPUs" in placement[0].message


def test_advice_reads_the_probe_runners_own_results():
    """`status` hands advice the runner's ProbeResults, whose histograms are objects, through probe_document."""
    from irqtune.probe.base import Histogram
    from irqtune.probe.runner import ProbeResult
    from irqtune.status import probe_document

    latency = Histogram()
    latency.add(100_000, int(100_000 * 11e-6 * 1e9), 40_000, [0] * 13 + [100_000])
    data = {"devices": {"nvme0n1": {"dev": "259:0", "latency": latency, "remote_completions": 0,
                                    "queues": {f"hctx{q}": latency for q in range(4)}}}}  # fmt: skip
    found = advise(nvme_measurements(50_000), probe_document({"block": ProbeResult("block", "ok", data=data)}, 2.0))
    assert [f.code for f in polling(found)] == ["nvme-poll-would-pay"]
