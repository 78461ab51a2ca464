"""The eBPF probes for real on this kernel, while workloads generate the events.

Needs root, bcc and tracefs: skipped with the reason on a laptop, a failure under
CI=true. Counts are checked against the kernel's own counters over the same window:
/proc is read just before the maps are zeroed and just after they are read (`proc`,
what the output shows) and once more inside that window (`proc_inner`), so each probe
count must lie between the inner and the bracketing /proc delta. The slack of 3
covers handlers already running when the maps were zeroed or read (an exit whose
entry was missed, one on each CPU).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest
import workloads
from conftest import require
from netns import TCP_SINK, TCP_SOURCE, can_make_namespaces, veth_pair

from irqtune.host import Host
from irqtune.parse.interrupts import parse_interrupts
from irqtune.probe import kstats
from irqtune.probe.base import PROBE_NAMES
from irqtune.probe.runner import ProbeSession, ebpf_unavailable_reason, tracefs_dir
from irqtune.probe.tlb import C_SOURCE as TLB_C_SOURCE
from irqtune.probe.tlb import REASONS as TLB_REASONS
from irqtune.probe.window import ProbeWindow, run_window

pytestmark = [pytest.mark.root, pytest.mark.bpf]

SLACK = 3
HOST = Host("/")
# The bracketing /proc delta spans the counting window plus two /proc/interrupts readings, the map zeroing and
# the map reading (a few ms together): a count may fall short of it by that IRQ's events in MARGIN_S, which
# leaves room for a loaded machine's scheduling.
MARGIN_S = 0.05
IRQTUNE = os.path.join(os.path.dirname(sys.executable), "irqtune")


@pytest.fixture(autouse=True)
def ebpf_required() -> None:
    require(ebpf_unavailable_reason(HOST) is None, f"eBPF probes cannot run: {ebpf_unavailable_reason(HOST)}")


def probe_during(work: Callable[[threading.Event], object], probes: list[str], seconds: float = 1.0) -> ProbeWindow:
    stop = threading.Event()
    worker = threading.Thread(target=work, args=(stop,), daemon=True)
    worker.start()
    try:
        return run_window(HOST, probes, seconds)
    finally:
        stop.set()
        worker.join(timeout=30)


def between(value: int, inner: int, outer: int) -> bool:
    return inner - SLACK <= value <= outer + SLACK


def bpf_programs_of(pid: int) -> set[int]:
    """Ids of the BPF programs a process holds (prog_id of its fds): unlike the kernel-wide list, not
    disturbed by other BPF users of the machine."""
    ids = set()
    fdinfo = f"/proc/{pid}/fdinfo"
    try:
        fds = os.listdir(fdinfo)
    except FileNotFoundError:
        return ids
    for fd in fds:
        try:
            with open(os.path.join(fdinfo, fd)) as f:
                ids.update(int(line.split()[1]) for line in f if line.startswith("prog_id:"))
        except OSError:  # closed meanwhile
            continue
    return ids


def wait_detached(ids: set[int]) -> set[int]:
    """Those of `ids` still loaded after the kernel's RCU grace period (up to 10 s)."""
    deadline = time.monotonic() + 10
    while ids & set(kstats.prog_ids()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return ids & set(kstats.prog_ids())


def short_of(proc: int, seconds: float) -> float:
    """How far below a bracketing /proc delta of `seconds` a probe count may fall."""
    return proc / seconds * MARGIN_S + SLACK


def disk_directory() -> str:
    """A directory on a real block device (not tmpfs): the test checkout itself."""
    return os.path.dirname(os.path.abspath(__file__))


@pytest.mark.slow
def test_disk_io_hard_irqs_match_proc_and_block_latency():
    window = probe_during(lambda stop: workloads.disk_io(disk_directory(), stop), ["hardirq", "block"])
    assert window.results["hardirq"].status == "ok" and window.results["block"].status == "ok"
    irqs = window.results["hardirq"].data["irqs"]
    unhandled = window.results["hardirq"].data["unhandled"]  # IRQ_NONE: /proc counts these too
    inner, outer = window.proc_inner["interrupts"], window.proc["interrupts"]
    assert inner, "the disk workload raised no interrupt"
    for irq in set(inner) | set(irqs):
        got = (irqs[irq].count if irq in irqs else 0) + unhandled.get(irq, 0)
        assert between(got, inner.get(irq, 0), outer.get(irq, 0)), (irq, got, inner.get(irq), outer.get(irq))
    busiest = max(inner, key=inner.get)
    assert irqs[busiest].count > 100 and irqs[busiest].max_ns > 0 and sum(irqs[busiest].slots) == irqs[busiest].count
    devices = window.results["block"].data["devices"]
    assert any(d["latency"].count > 100 for d in devices.values()), devices
    latency = max(devices.values(), key=lambda d: d["latency"].count)["latency"]
    assert 0 < latency.sum_ns / latency.count < 1e9


SHOOTDOWN_CALLSITES = ("on_each_cpu", "flush_tlb", "call_function_many")  # where x86 sends a flush IPI from
UNTRACED_SHARE = 0.02  # receipts the kernel does not trace, as a share of the TLB delta (see below)


@pytest.mark.slow
def test_tlb_shootdowns_and_function_call_ipis_match_proc():
    """Shootdowns of a two-thread workload against the TLB and CAL rows of the same window.

    It failed 1 run of 3 under load because it took the first IPI send row (ranked by targets) to
    be the shootdowns: the ranking also holds the reschedule IPIs (`wakeup_preempt`, `update_curr`)
    the scheduler sends for whatever else runs, and under load they outnumber the shootdowns. The
    shootdown sends are now picked by their callsite, whatever their rank.

    The TLB comparison is bounded by what the kernel guarantees (arch/x86/mm/tlb.c, flush_tlb_func,
    6.18): a received shootdown increments the TLB row first, then is traced at most once, as
    remote_shootdown, as remote_wrong_cpu (6.13+) when the CPU already switched to another mm (more
    often the busier the machine; the probe dropped this reason until it learned it), or not at all
    when the CPU is lazy or on init_mm. So remote_shootdown <= TLB holds exactly. The lower bound is
    not a guarantee: remote_shootdown + remote_wrong_cpu may fall short by the untraced receipts,
    which the workload keeps rare (its receiving thread stays on the mm, and flushes skip lazy CPUs
    unless page tables were freed): UNTRACED_SHARE of the delta plus the slack. CAL is exact: each
    function-call IPI vector traces its entry and increments CAL once.
    """
    window = probe_during(workloads.tlb_shootdowns, ["tlb", "ipi"])
    tlb = window.results["tlb"].data["reasons"]
    received = tlb.get("remote_shootdown", {}).get("count", 0)
    wrong_cpu = tlb.get("remote_wrong_cpu", {}).get("count", 0)
    inner, bracket = window.proc_inner["TLB"], window.proc["TLB"]
    ipi = window.results["ipi"].data
    calls = ipi["received_total"]["call_function"] + ipi["received_total"]["call_function_single"]
    shootdown_ipis = sum(s["targets"] for s in ipi["sends"] if any(k in s["callsite"] for k in SHOOTDOWN_CALLSITES))
    print(
        f"\nTLB {inner}..{bracket}: remote_shootdown {received} (headroom {bracket - received}), "
        f"+ remote_wrong_cpu {wrong_cpu} short of inner by {inner - received - wrong_cpu} "
        f"(allowed {int(inner * UNTRACED_SHARE) + SLACK}); CAL {window.proc_inner['CAL']}..{window.proc['CAL']}: "
        f"{calls}; shootdown IPIs {shootdown_ipis}, top send {ipi['sends'][0]['callsite']}"
    )
    assert received > 100
    assert received <= bracket + SLACK, (received, window.proc)
    assert received + wrong_cpu >= inner * (1 - UNTRACED_SHARE) - SLACK, (received, wrong_cpu, window.proc_inner)
    assert tlb["remote_send_ipi"]["count"] > 100
    assert any("python" in comm for comm in window.results["tlb"].data["senders"])
    assert between(calls, window.proc_inner["CAL"], window.proc["CAL"]), (calls, window.proc)
    assert shootdown_ipis > 100, ipi["sends"][:5]


def test_tlb_probe_names_every_reason_the_kernel_traces():
    """The tracepoint's format lists the kernel's flush reasons; one the probe cannot count is lost, as
    remote_wrong_cpu (6.13+) was, which made the TLB comparison fall short under load."""
    tracing = tracefs_dir(HOST)
    with open(os.path.join(tracing, "events", "tlb", "tlb_flush", "format")) as f:
        kernel = {int(n): name for n, name in re.findall(r'\{ (\d+), "([^"]+)" \}', f.read())}
    counted = int(re.search(r"#define NR_REASONS (\d+)", TLB_C_SOURCE).group(1))
    assert kernel and max(kernel) < min(len(TLB_REASONS), counted), (kernel, TLB_REASONS)
    for number, name in kernel.items():  # "remote IPI send" is remote_send_ipi: compare the words
        assert set(name.lower().split()) >= set(TLB_REASONS[number].split("_")) - {"flush", "on"}, (number, name)


@pytest.mark.slow
def test_cross_cpu_wakeups_send_ipis_that_match_proc():
    require((os.cpu_count() or 1) >= 2, "needs two CPUs")
    window = probe_during(workloads.cross_cpu_wakeups, ["ipi", "softirq", "timer"])
    ipi = window.results["ipi"].data
    assert sum(s["targets"] for s in ipi["sends"]) > 100
    sent = sum(s["targets"] for s in ipi["sends"])
    per_cpu = sum(ipi["targets_per_cpu"].values())  # the two maps are read moments apart while IPIs go on
    assert abs(sent - per_cpu) <= sent * 0.01 + SLACK, (sent, per_cpu)
    resched = ipi["received_total"]["reschedule"]
    calls = ipi["received_total"]["call_function"] + ipi["received_total"]["call_function_single"]
    # reschedule_entry never sees more than RES counts; on the 6.18 VM it has seen fewer (10 of 18):
    # some RES increments do not pass the tracepoint. Not asserted equal until that is understood.
    assert resched <= window.proc["RES"] + SLACK, (resched, window.proc)
    assert between(calls, window.proc_inner["CAL"], window.proc["CAL"]), (calls, window.proc)
    ticks = sum(window.results["timer"].data["per_cpu"].values())
    assert between(ticks, window.proc_inner["LOC"], window.proc["LOC"]), (ticks, window.proc)
    assert "TIMER" in window.results["softirq"].data["vectors"]


@pytest.mark.slow
@pytest.mark.netns
def test_veth_traffic_in_a_namespace_shows_net_rx_and_napi_polls():
    require(can_make_namespaces() is None, f"{can_make_namespaces()}")
    with veth_pair() as pair:
        sink = pair.spawn(pair.receiver_ns, TCP_SINK.format(ip=pair.receiver_ip))
        source = pair.spawn(pair.sender_ns, TCP_SOURCE.format(ip=pair.receiver_ip, seconds=8))
        try:
            window = run_window(HOST, ["softirq", "napi"], 1.5)
        finally:
            for proc in (source, sink):
                proc.kill()
                proc.wait(timeout=10)
    net_rx = window.results["softirq"].data["vectors"]["NET_RX"]
    assert net_rx["run"].count > 100 and net_rx["wait"].count > 0
    devices = window.results["napi"].data["devices"]
    assert sum(d["polls"] for d in devices.values()) > 100
    assert sum(d["packets"] for d in devices.values()) >= sum(d["polls"] for d in devices.values()) // 2


@pytest.mark.slow
def test_every_probe_loads_here():
    window = run_window(HOST, list(PROBE_NAMES), 0.2)
    failed = {n: r.reason for n, r in window.results.items() if r.status == "failed"}
    assert not failed, failed
    unsupported = {n: r.reason for n, r in window.results.items() if r.status == "unsupported"}
    if os.uname().machine == "x86_64":
        assert not unsupported, unsupported


@pytest.mark.slow
def test_probe_command_json_under_workloads():
    """The acceptance run: `irqtune probe --duration 2 --json` while disk I/O and shootdowns go on."""
    stop = threading.Event()
    workers = [
        threading.Thread(target=workloads.disk_io, args=(disk_directory(), stop), daemon=True),
        threading.Thread(target=workloads.tlb_shootdowns, args=(stop,), daemon=True),
    ]
    for w in workers:
        w.start()
    try:
        exe = os.path.join(os.path.dirname(sys.executable), "irqtune")
        result = subprocess.run(
            [exe, "probe", "--duration", "2", "--json"], capture_output=True, text=True, timeout=120
        )
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    probes = out["probes"]
    assert all(p["status"] == "ok" for p in probes.values()), {n: p["reason"] for n, p in probes.items()}
    irqs, unhandled = probes["hardirq"]["data"]["irqs"], probes["hardirq"]["data"]["unhandled"]
    inner, outer = out["proc_inner"]["interrupts"], out["proc"]["interrupts"]
    seen = {i: h["count"] + unhandled.get(i, 0) for i, h in irqs.items()}
    # All seven probes run here. Once, with other test runs saturating both CPUs, the disk's request IRQ came
    # out 14 of 3,305 under the inner /proc delta; the cause is not established (the handler probe is a raw
    # tracepoint pair and per-CPU), so a shortfall up to 2 % is allowed here and the idle-host checks above
    # keep the exact bounds.
    assert seen and all(between(n, int(inner.get(i, 0) * 0.98), outer.get(i, 0)) for i, n in seen.items()), (
        seen, inner, outer)  # fmt: skip
    assert all(h["buckets"] and h["sum_seconds"] > 0 for h in irqs.values())
    assert probes["softirq"]["data"]["vectors"]["BLOCK"]["run"]["count"] > 0
    assert sum(s["targets"] for s in probes["ipi"]["data"]["sends"]) > 0
    assert probes["tlb"]["data"]["reasons"]["remote_shootdown"]["count"] > 0
    assert any(d["latency"]["count"] > 0 for d in probes["block"]["data"]["devices"].values())


@pytest.mark.slow
def test_probe_json_compares_each_count_with_proc_over_the_same_window():
    """`proc` brackets the probes' counting window (read just before the maps are zeroed, just after they
    are read) and says how long it is: a busy IRQ's count never exceeds its delta and falls short of it
    by at most that IRQ's events in MARGIN_S."""
    stop = threading.Event()
    worker = threading.Thread(target=workloads.disk_io, args=(disk_directory(), stop), daemon=True)
    worker.start()
    try:
        result = subprocess.run(
            [IRQTUNE, "probe", "-d", "2", "--only", "hardirq", "--json"], capture_output=True, text=True, timeout=120
        )
    finally:
        stop.set()
        worker.join(timeout=30)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["interrupted"] is False and out["duration_asked"] == 2
    assert 2 <= out["duration"] <= out["proc_seconds"] < out["duration"] + MARGIN_S, out
    proc, data = out["proc"]["interrupts"], out["probes"]["hardirq"]["data"]
    busiest = max(proc, key=proc.get)
    seen = data["irqs"][busiest]["count"] + data["unhandled"].get(busiest, 0)
    allowed = short_of(proc[busiest], out["proc_seconds"])
    print(f"\nIRQ {busiest}: probe {seen}, /proc same window {proc[busiest]}, short by {proc[busiest] - seen} "
          f"(allowed {allowed:.0f}), bracket {out['proc_seconds'] - out['duration']:.4f} s wider")  # fmt: skip
    assert proc[busiest] > 1000 and proc[busiest] - allowed <= seen <= proc[busiest] + SLACK


def hardirq_rows(text: str) -> dict[int, tuple[int, int]]:
    """IRQ -> (handled + IRQ_NONE, /proc same window) from the text output's HARDIRQ table."""
    section = text.split("HARDIRQ (ok)\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert "PROC-SAME-WINDOW" in section[0], section[0]
    rows = {}
    for line in section[1:]:
        head, handled, unhandled, proc, _mean, _max, _total = line.rsplit(maxsplit=6)
        if proc != "-":
            rows[int(head.split()[0])] = (int(handled) + int(unhandled), int(proc))
    return rows


@pytest.mark.slow
def test_ctrl_c_prints_the_shortened_window_and_detaches():
    """SIGINT 3 s into `irqtune probe -d 30`: the counts of those 3 s beside the /proc deltas of the same
    window, exit 130, and none of the command's BPF programs left loaded."""
    stop = threading.Event()
    worker = threading.Thread(target=workloads.disk_io, args=(disk_directory(), stop), daemon=True)
    worker.start()
    proc = subprocess.Popen(
        [IRQTUNE, "probe", "-d", "30", "--only", "hardirq,softirq"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(held := bpf_programs_of(proc.pid)) < 5:  # 2 hardirq + 3 softirq programs attached
            assert proc.poll() is None and time.monotonic() < deadline, "probes never attached"
            time.sleep(0.1)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        stop.set()
        worker.join(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "interrupted after" in err, err
    window = re.match(r"window (\d+\.\d+) s \(cut short by Ctrl-C; 30 s asked\)\. .* \((\d+\.\d+) s apart\)", out)
    assert window and 2.5 <= float(window.group(1)) < 20, out[:300]
    rows = hardirq_rows(out)
    irq, (seen, delta) = max(rows.items(), key=lambda kv: kv[1][1])
    print(f"\nwindow {window.group(1)} s; IRQ {irq}: probe {seen}, /proc same window {delta}")
    assert delta > 1000 and delta - short_of(delta, float(window.group(2))) <= seen <= delta + SLACK, (irq, seen, delta)
    assert "SOFTIRQ (ok)" in out
    assert held and wait_detached(held) == set(), "programs left loaded after Ctrl-C"


@pytest.mark.slow
def test_sigterm_detaches_every_program():
    before = set(kstats.prog_ids())
    exe = os.path.join(os.path.dirname(sys.executable), "irqtune")
    proc = subprocess.Popen([exe, "probe", "--duration", "60", "--only", "hardirq,softirq"], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(set(kstats.prog_ids()) - before) < 5:  # 2 hardirq + 3 softirq programs attached
            assert proc.poll() is None and time.monotonic() < deadline, "probes never attached"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM and b"probes detached" in err
    deadline = time.monotonic() + 10  # the kernel frees a detached program after an RCU grace period
    while set(kstats.prog_ids()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(kstats.prog_ids()) - before == set(), "programs left attached after SIGTERM"


@pytest.mark.slow
def test_shared_line_bookkeeping_accounts_for_every_handler_run():
    """This VM has no shared line, so mark every IRQ as if it had two actions: the per-action split must then
    account for every handler run of the disk's IRQ (attribution itself needs real hardware). The disk's IRQ is
    the one the workload made busiest; it is read once the workload stopped and the line went quiet, so runs
    that land between the reads of two maps cannot tell them apart (seen with a busy line under load)."""
    stop = threading.Event()
    worker = threading.Thread(target=workloads.disk_io, args=(disk_directory(), stop), daemon=True)
    irqs = [r.irq for r in parse_interrupts(HOST.read_bytes(HOST.proc("interrupts"))).rows.values() if r.irq]
    with ProbeSession(HOST, ["hardirq"]) as session:
        session.ctx["shared_irqs"] = {irq: ("first-handler", "second-handler") for irq in irqs}
        session.reset()
        worker.start()
        time.sleep(1.0)
        stop.set()
        worker.join(timeout=30)
        time.sleep(0.2)  # the last completions
        data = session.read()["hardirq"].data
    busiest = max(data["irqs"], key=lambda irq: data["irqs"][irq].count)
    split = data["actions"].get(busiest, {})
    runs = sum(a["count"] + a["unhandled"] for a in split.values())
    total = data["irqs"][busiest].count + data["unhandled"].get(busiest, 0)
    assert total > 0 and set(split) <= {"first-handler", "second-handler"}
    # runs that land between the reads of the two maps (a busy line under load: 21 of 8,652 seen) are all the
    # difference allowed: a lost or doubled action would be thousands
    assert abs(runs - total) <= max(SLACK, total // 200), (busiest, split, total)


def test_the_probes_compile_as_one_module_and_a_broken_one_is_loaded_apart(monkeypatch):
    """Every supported probe in one bcc module: one compiler run, timed apart from the window, each probe's own
    programs still told apart (kernel run-time statistics). A probe whose C does not build sends the session back to
    one module per probe: that one fails with the compiler's word and the others run."""
    from dataclasses import replace

    from irqtune.probe import runner

    with ProbeSession(HOST, list(PROBE_NAMES)) as together:
        loaded = [n for n, r in together.results.items() if r.status == "ok"]
        modules = {id(together._loaded[n]) for n in loaded}
        fds = {n: together.program_fds(n) for n in loaded}
        once = together.compile_seconds
    assert len(loaded) >= 5 and len(modules) == 1, together.results
    assert all(fds.values()) and len({fd for f in fds.values() for fd in f}) == sum(map(len, fds.values())), fds
    broken = replace(runner.SPECS["timer"], source=lambda ctx: "this is not C;\n")
    monkeypatch.setitem(runner.SPECS, "timer", broken)
    with ProbeSession(HOST, ["hardirq", "softirq", "timer"]) as apart:
        results = {n: r.status for n, r in apart.results.items()}
        modules = {id(b) for b in apart._loaded.values()}
    assert results == {"hardirq": "ok", "softirq": "ok", "timer": "failed"} and len(modules) == 2, apart.results
    print(f"\nall probes as one module: {once:.2f} s to compile and attach; 2 of 3 apart (one broken): "
          f"{apart.compile_seconds:.2f} s")  # fmt: skip
