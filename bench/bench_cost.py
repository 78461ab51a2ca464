"""Benchmark: irqtune's own cost against its anchors, each measured in the same run (issue 17).

Run (as root, so the anchors can be installed and the eBPF rows run):
    .venv/bin/python bench/bench_cost.py [--window 60] [--runs 21] [--only agent,startup,...]

irqtune runs on every server of a fleet, so what it costs is compared with what the tools it stands beside
cost on the same host at the same time (read the ratios: this host's other load moves the absolutes):

  agent      `irqtune run --mode observe` at 1 s and at the default interval against irqbalance at its 1 s
             and its default (10 s), CPU per minute after start-up and resident memory; CPU per pass
             in-process on this host and on the 1152-CPU fixture (against one parse of that fixture)
  startup    `irqtune --version`, `snapshot --json`, `get`, `status -i 0`: median start to exit (lsirq beside)
  status     `status` as root: within its window plus 0.5 s
  probe      `probe -d 2` against bcc's `hardirqs` (its compile and 1 s): what each adds to its window
  exporter   `irqtune export` against Debian's prometheus-node-exporter (interrupts, softnet, stat, netdev
             collectors) on this host and on the 1152-CPU fixture tree: CPU per scrape, RSS, process_* metrics
  parse      the 1152-CPU /proc/interrupts parse against `data.split()`
  probecost  the hard-IRQ probe's cost per interrupt against bcc `hardirqs -d` (bench_probe_overhead.py)
  sim        1 s of a 64-queue NIC at 25 Mpps (bench_sim.py)

irqbalance never moves anything: it runs in a private mount (and network) namespace where /proc/irq is a
read-only bind mount (checked before it starts), so its affinity writes fail with EROFS; the mount is gone with
it. Missing anchors are installed with apt-get when root (service starts refused by a temporary policy-rc.d,
so neither irqbalance nor node_exporter starts as a service); otherwise that row is skipped with the reason.
CPU time is each process's own (the sum of its threads' /proc/PID/task/*/schedstat, ns).
"""

from __future__ import annotations

import argparse
import bz2
import ctypes
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]

FIXTURES = REPO / "tests" / "fixtures" / "procfs"
BIG_TREE = {"proc/interrupts": "interrupts-pcp-x86_64-1152cpu-i40e-lpfc.txt.bz2",
            "proc/softirqs": "softirqs-pcp-x86_64-1152cpu.txt.bz2"}  # fmt: skip
IRQTUNE = [str(Path(sys.executable).with_name("irqtune"))]
NODE_COLLECTORS = ["--collector.disable-defaults", "--collector.interrupts", "--collector.softnet",
                   "--collector.stat", "--collector.netdev"]  # fmt: skip
ROOT = os.geteuid() == 0
# irqtune as installed: its bytecode cached (pip compiles it at install; here the first run writes it)
CACHED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ROWS = ("agent", "startup", "status", "probe", "exporter", "parse", "probecost", "sim")


@dataclass
class Row:
    what: str
    ours: str
    anchor: str
    ratio: float | None  # ours / anchor (or / the target for an absolute goal)
    target: str
    ok: bool | None  # None: skipped


RESULTS: list[Row] = []


def row(what: str, ours: str, anchor: str, ratio: float | None, target: str, ok: bool | None) -> None:
    RESULTS.append(Row(what, ours, anchor, ratio, target, ok))
    verdict = "SKIP" if ok is None else "PASS" if ok else "FAIL"
    shown = "-" if ratio is None else f"{ratio:.2f}"
    print(f"  {verdict:4}  {what}: {ours} | anchor {anchor} | ratio {shown} (target {target})", flush=True)


def skip(what: str, why: str) -> None:
    row(what, "-", why, None, "-", None)


# -- processes: CPU and memory ---------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far: its live threads' schedstat (ns), else utime + stime (ticks)."""
    total, seen = 0, False
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
                seen = True
        except (OSError, ValueError, IndexError):
            continue
    if seen and total:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- anchors: found or installed -----------------------------------------------------


def anchor(binary: str, package: str, install: bool) -> tuple[str | None, str]:
    """The anchor's path, or None and why not. Installs the Debian package when root and allowed, with
    service starts refused (policy-rc.d exit 101) so that nothing starts serving or balancing."""
    found = shutil.which(binary)
    if found:
        return found, ""
    if not (install and ROOT and shutil.which("apt-get")):
        return None, f"{binary} not found (apt-get install {package}, as root)"
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(["apt-get", "install", "-y", "-q", package], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-q", package], env=env, capture_output=True)
    finally:
        if ours:
            policy.unlink()
    found = shutil.which(binary)
    return (found, "") if found else (None, f"apt-get install {package} failed")


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWNET = 0x20000, 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18


def _mount(source: str | None, target: str, flags: int) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    if _libc.mount(enc(source), enc(target), None, flags, None) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}")


def readonly_proc_irq() -> None:
    """In the child, before exec: a private mount namespace in which /proc/irq is read-only, and a network
    namespace of its own (irqbalance's control socket has a fixed abstract name: two instances need two).
    Refuses to go on (the child exits) unless a write to /proc/irq would fail."""
    if _libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS | CLONE_NEWNET)")
    _mount(None, "/", MS_REC | MS_PRIVATE)
    _mount("/proc/irq", "/proc/irq", MS_BIND)
    _mount(None, "/proc/irq", MS_REMOUNT | MS_BIND | MS_RDONLY)
    if not os.statvfs("/proc/irq").f_flag & os.ST_RDONLY or os.access("/proc/irq/default_smp_affinity", os.W_OK):
        os._exit(97)


def start_irqbalance(binary: str, interval: int) -> subprocess.Popen:
    return subprocess.Popen([binary, "--foreground", f"--interval={interval}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=readonly_proc_irq)  # fmt: skip


# -- agent -----------------------------------------------------------------------------


def agent_processes(args, work: Path) -> None:
    """The agent and irqbalance side by side, each at 1 s and at its default interval, over one window."""
    from irqtune.config import Config

    default = Config().interval
    binary, why = anchor("irqbalance", "irqbalance", args.install)
    if binary is None or not ROOT:
        print(f"  irqbalance: {why or 'needs root (a private mount namespace)'}", flush=True)
    config = work / "agent.toml"
    config.write_text("")
    procs: dict[str, subprocess.Popen] = {}
    for interval in (1.0, default):
        state = work / f"state-{interval:g}"
        procs[f"agent@{interval:g}"] = subprocess.Popen(
            [*IRQTUNE, "--state-dir", str(state), "run", "--config", str(config), "--mode", "observe",
             "--interval", f"{interval:g}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=CACHED)  # fmt: skip
    if binary and ROOT:
        for interval in (1, 10):
            procs[f"irqbalance@{interval}"] = start_irqbalance(binary, interval)
    try:
        time.sleep(args.warmup)  # start-up and the first pass are not what a minute costs
        alive = {k: p for k, p in procs.items() if p.poll() is None}
        start = {k: cpu_seconds(p.pid) for k, p in alive.items()}
        t0 = time.monotonic()
        time.sleep(args.window)
        elapsed = time.monotonic() - t0
        alive = {k: p for k, p in alive.items() if p.poll() is None}
        per_min = {k: (cpu_seconds(p.pid) - start[k]) * 60 / elapsed for k, p in alive.items()}
        rss = {k: rss_mb(p.pid) for k, p in alive.items()}
    finally:
        for p in procs.values():
            stop(p)
    for name, p in procs.items():
        if name not in per_min:
            print(f"  {name} exited early (status {p.returncode})", flush=True)
    for ours, theirs, factor in ((f"agent@{1:g}", "irqbalance@1", 10.0), (f"agent@{default:g}", "irqbalance@10", 1.0)):
        what = f"agent CPU per minute, observe, interval {ours.split('@')[1]} s vs irqbalance {theirs.split('@')[1]} s"
        if ours not in per_min:
            skip(what, "the agent did not run")
        elif theirs not in per_min:
            row(what, f"{per_min[ours]:.3f} CPU-s/min", "irqbalance not run", None, f"<= {factor:g}x", None)
        else:
            ratio = per_min[ours] / max(per_min[theirs], 1e-9)
            row(what, f"{per_min[ours]:.3f} CPU-s/min", f"{per_min[theirs]:.4f} CPU-s/min", ratio,
                f"<= {factor:g}x", ratio <= factor)  # fmt: skip
    if "agent@1" in rss:
        theirs = f"{rss['irqbalance@1']:.1f} MB (irqbalance)" if "irqbalance@1" in rss else "irqbalance not run"
        row("agent resident memory (observe, after the window)", f"{rss['agent@1']:.1f} MB", theirs,
            rss["agent@1"] / 25, "<= 25 MB", rss["agent@1"] <= 25)  # fmt: skip


def cpu_of(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def agent_passes(args, work: Path) -> None:
    """CPU per pass in this process: this host, and the 1152-CPU fixture against one parse of it."""
    from irqtune.agent.loop import Agent
    from irqtune.config import Config
    from irqtune.host import Host
    from irqtune.parse.interrupts import parse_interrupts

    agent = Agent(Host("/"), Config(), str(work / "pass-state"), time.monotonic)
    agent.run_pass()
    agent.run_pass()
    passes = [cpu_of(agent.run_pass) for _ in range(args.passes)]
    median = statistics.median(passes)
    row("agent CPU per pass, observe, this host", f"{median * 1e3:.2f} ms (best {min(passes) * 1e3:.2f})",
        "-", median / 3e-3, "<= 3 ms", median <= 3e-3)  # fmt: skip
    tree = big_tree(work)
    interrupts = tree / "proc" / "interrupts"
    data = interrupts.read_bytes()
    big = Agent(Host(str(tree)), Config(), str(work / "big-state"), time.monotonic)
    big.run_pass()
    passes, now = [], data
    for _ in range(max(3, args.passes // 4)):  # each pass sees the arch rows and every MOVING-th IRQ's row rise
        now = moved(now, MOVING)
        interrupts.write_bytes(now)
        passes.append(cpu_of(big.run_pass))
    interrupts.write_bytes(data)
    parse = min(cpu_of(lambda: parse_interrupts(now)) for _ in range(5))  # the whole file the last pass read
    ratio = min(passes) / parse
    row(f"agent CPU per pass, 1152-CPU fixture (arch rows and 1 IRQ row in {MOVING} moving), vs one parse of it",
        f"{min(passes) * 1e3:.1f} ms", f"{parse * 1e3:.1f} ms (parse)", ratio, "<= 2x", ratio <= 2.0)  # fmt: skip


MOVING = 4  # on a busy big host about one IRQ row in four (its NICs' and disks' queues) moves between passes


def moved(data: bytes, every: int) -> bytes:
    """/proc/interrupts a pass later on a busy host: every named row (LOC, RES, CAL, ...) and every `every`-th
    numbered row with its first count one higher, the others byte for byte the same."""
    out = []
    for number, line in enumerate(data.split(b"\n")):
        key, colon, rest = line.partition(b":")
        name = key.strip()
        if number and colon and name and (not name.isdigit() or int(name) % every == 0):
            count = re.search(rb"\d+", rest)
            if count:
                rest = rest[: count.start()] + str(int(count.group()) + 1).encode() + rest[count.end() :]
        out.append(key + colon + rest)
    return b"\n".join(out)


def big_tree(work: Path) -> Path:
    tree = work / "big"
    if not tree.exists():
        for rel, name in BIG_TREE.items():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_bytes(bz2.decompress((FIXTURES / name).read_bytes()))
        (tree / "sys").mkdir()
    return tree


# -- start-up -------------------------------------------------------------------------


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=CACHED)
    return time.perf_counter() - start


def median_wall(argv: list[str], runs: int) -> float:
    wall(argv)  # page cache warm
    return statistics.median(wall(argv) for _ in range(runs))


def first_irq() -> str:
    with open("/proc/interrupts") as f:
        for line in f:
            key = line.split(":", 1)[0].strip()
            if key.isdigit():
                return key
    return "0"


def startup(args, work: Path) -> None:
    floor = median_wall([sys.executable, "-c", "pass"], args.runs)
    lsirq = shutil.which("lsirq")
    anchor_s = median_wall([lsirq], args.runs) if lsirq else None
    shown = f"lsirq {anchor_s * 1e3:.0f} ms" if anchor_s is not None else "lsirq not found"
    print(f"  python -c pass: {floor * 1e3:.0f} ms (the interpreter's floor)", flush=True)
    commands = (["--version"], ["snapshot", "--json"], ["get", f"irq/{first_irq()}/affinity"], ["status", "-i", "0"])
    for command in commands:
        took = median_wall([*IRQTUNE, "--state-dir", str(work / "cli-state"), *command], args.runs)
        row(f"start to exit: irqtune {' '.join(command)}", f"{took * 1e3:.0f} ms (median of {args.runs})", shown,
            took / 0.150, "<= 150 ms", took <= 0.150)  # fmt: skip


def status_root(args, work: Path) -> None:
    what = "status -i 1 as root: window + 0.5 s"
    if not ROOT:
        skip(what, "not root")
        return
    took = statistics.median(wall([*IRQTUNE, "--state-dir", str(work / "cli-state"), "status", "-i", "1"])
                             for _ in range(3))  # fmt: skip
    row(what, f"{took:.2f} s (median of 3)", "-", took / 1.5, "<= 1.5 s", took <= 1.5)


def probe(args, work: Path) -> None:
    what = "probe -d 2 vs bcc hardirqs: what each adds to its window"
    tool = shutil.which("hardirqs-bpfcc") or shutil.which("hardirqs")
    if not ROOT or not tool:
        skip(what, "needs root and bcc's hardirqs (apt-get install bpfcc-tools)")
        return
    ours = wall([*IRQTUNE, "probe", "-d", "2"]) - 2.0
    theirs = wall([tool, "1", "1"]) - 1.0
    row(what, f"{ours:.2f} s", f"{theirs:.2f} s", ours / theirs, "<= 1.5x (one compiler run)", ours <= 1.5 * theirs)


# -- exporter ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def wait_up(port: int, proc: subprocess.Popen, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            scrape(port)
            return True
        except OSError:
            time.sleep(0.1)
    return False


def per_scrape(proc: subprocess.Popen, port: int, scrapes: int) -> tuple[float, int, float, str]:
    """(CPU seconds per scrape, series, RSS MB, the last body): a few scrapes to warm up, then `scrapes`."""
    for _ in range(3):
        scrape(port)
    before = cpu_seconds(proc.pid)
    for _ in range(scrapes):
        body = scrape(port)
    cpu = (cpu_seconds(proc.pid) - before) / scrapes
    series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
    return cpu, series, rss_mb(proc.pid), body


def exporter_on(label: str, root: str, scrapes: int, node: str | None) -> None:
    port = free_port()
    ours = subprocess.Popen([*IRQTUNE, "--root", root, "export", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=CACHED)  # fmt: skip
    theirs = None
    try:
        if not wait_up(port, ours):
            skip(f"exporter CPU per scrape, {label}", "irqtune export did not start")
            return
        cpu, series, rss, body = per_scrape(ours, port, scrapes)
        if node:
            node_port = free_port()
            theirs = subprocess.Popen([node, f"--web.listen-address=127.0.0.1:{node_port}", *NODE_COLLECTORS,
                                       f"--path.procfs={os.path.join(root, 'proc')}",
                                       f"--path.sysfs={os.path.join(root, 'sys')}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            node_up = wait_up(node_port, theirs)
        what = f"exporter CPU per scrape, {label}"
        if not node or not node_up:
            row(what, f"{cpu * 1e3:.2f} ms ({series} series)", "node_exporter not run", None, "<= 1.0x", None)
            return
        node_cpu, node_series, node_rss, _ = per_scrape(theirs, node_port, scrapes)
        ratio = cpu / node_cpu
        row(what, f"{cpu * 1e3:.2f} ms ({series} series)", f"{node_cpu * 1e3:.2f} ms ({node_series} series)", ratio,
            "<= 1.0x", ratio <= 1.0)  # fmt: skip
        row(f"exporter RSS, {label}", f"{rss:.1f} MB", f"{node_rss:.1f} MB", rss / node_rss, "<= 1.0x",
            rss <= node_rss)  # fmt: skip
        if label == "this host":
            has = "process_cpu_seconds_total" in body and "process_resident_memory_bytes" in body
            row("exporter exports its own process_* metrics", "yes" if has else "no", "node_exporter: yes",
                None, "yes", has)  # fmt: skip
    finally:
        stop(ours)
        if theirs is not None:
            stop(theirs)


def exporter(args, work: Path) -> None:
    node, why = anchor("prometheus-node-exporter", "prometheus-node-exporter", args.install)
    if node is None:
        print(f"  node_exporter: {why}", flush=True)
    exporter_on("this host", "/", args.scrapes, node)
    exporter_on("1152-CPU fixture", str(big_tree(work)), max(2, args.scrapes // 50), node)  # node_exporter: ~10 s each


# -- what already met its goal -----------------------------------------------------------


def parse(args, work: Path) -> None:
    from irqtune.parse.interrupts import parse_interrupts

    data = (big_tree(work) / "proc" / "interrupts").read_bytes()
    floor, ours = [], []
    for _ in range(args.repeat):
        floor.append(cpu_of(data.split))
        ours.append(cpu_of(lambda: parse_interrupts(data)))
    ratio = min(ours) / min(floor)
    row("1152-CPU /proc/interrupts parse vs data.split()", f"{min(ours) * 1e3:.1f} ms", f"{min(floor) * 1e3:.1f} ms",
        ratio, "<= 1.5x", ratio <= 1.5)  # fmt: skip


def probecost(args, work: Path) -> None:
    what = "hard-IRQ probe cost per interrupt vs bcc hardirqs -d"
    if not ROOT:
        skip(what, "not root")
        return
    done = subprocess.run([sys.executable, str(HERE / "bench_probe_overhead.py"), "--seconds", "5"],
                          capture_output=True, text=True)  # fmt: skip
    found = re.search(r"irqtune (\d+) ns, bcc (\d+) ns, ratio ([0-9.]+)", done.stdout)
    if not found:
        skip(what, (done.stderr.strip() or done.stdout.strip() or "no result").splitlines()[-1])
        return
    ratio = float(found[3])
    row(what, f"{found[1]} ns", f"{found[2]} ns", ratio, "<= 0.15x", ratio <= 0.15)


def sim(args, work: Path) -> None:
    import bench_sim

    from irqtune.sim.scenario import load_scenario

    scenario = load_scenario("bench.toml", bench_sim.SCENARIO)
    for clear in (True, False):
        took = statistics.median(bench_sim.step_times(scenario, clear))
        row(f"simulator: 1 s of a 64-queue NIC at 25 Mpps, memo {'cleared' if clear else 'kept'}",
            f"{took * 1e3:.1f} ms", "-", took / 0.020, "<= 20 ms", took <= 0.020)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=60.0, help="seconds the agents and irqbalance are measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of start-up left out first")
    parser.add_argument("--runs", type=int, default=21, help="runs of each command for the start-up medians")
    parser.add_argument("--passes", type=int, default=40, help="in-process agent passes")
    parser.add_argument("--scrapes", type=int, default=100, help="scrapes of each exporter on this host")
    parser.add_argument("--repeat", type=int, default=9, help="interleaved runs of the parse and its floor")
    parser.add_argument("--only", default=",".join(ROWS), help=f"comma-separated: {', '.join(ROWS)}")
    parser.add_argument("--no-install", dest="install", action="store_false", help="never apt-get an anchor")
    args = parser.parse_args()
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(wanted) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}  ({os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}, {'root' if ROOT else 'not root'})")  # fmt: skip
    steps = {"agent": (agent_passes, agent_processes), "startup": (startup,), "status": (status_root,),
             "probe": (probe,), "exporter": (exporter,), "parse": (parse,), "probecost": (probecost,),
             "sim": (sim,)}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="irqtune-cost-") as tmp:
        for name in wanted:
            print(f"{name}:", flush=True)
            for step in steps[name]:
                step(args, Path(tmp))
    failed = [r for r in RESULTS if r.ok is False]
    skipped = [r for r in RESULTS if r.ok is None]
    print(f"{len(RESULTS) - len(failed) - len(skipped)} passed, {len(failed)} failed, {len(skipped)} skipped")
    print("PASS" if not failed else "FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
