"""The exporter under concurrent scrapes: one shared collection, a fixed pool of handlers, and 200 scrapes of the
1152-CPU fixture at once."""

from __future__ import annotations

import http.client
import socket
import statistics
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import fixture_text, make_root
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from test_export_prometheus import start_export

from irqtune.export import serve
from irqtune.export.server import WORKERS

pytestmark = [pytest.mark.slow]

BIG = {
    "proc/interrupts": "interrupts-pcp-x86_64-1152cpu-i40e-lpfc.txt.bz2",
    "proc/softirqs": "softirqs-pcp-x86_64-1152cpu.txt.bz2",
}
CLIENTS = 200
SCRAPES_EACH = 4


class CountingCollector:
    """Takes `delay` seconds per collection and exports which collection this is (1, 2, ...)."""

    def __init__(self, delay: float) -> None:
        self.delay, self.runs, self.lock = delay, 0, threading.Lock()

    def collect(self):
        with self.lock:
            self.runs += 1
            number = self.runs
        time.sleep(self.delay)
        yield GaugeMetricFamily("test_collection", "Which collection answered.", value=number)


def body(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def collection(text: str) -> int:
    return next(int(s.value) for f in text_string_to_metric_families(text) for s in f.samples)


def test_concurrent_scrapes_share_one_collection_and_later_ones_get_a_new_one():
    collector = CountingCollector(delay=1.0)
    server = serve(collector, "127.0.0.1:0")
    try:
        with ThreadPoolExecutor(20) as pool:
            bodies = list(pool.map(lambda _: body(server.url), range(20)))
        during = collector.runs
        later = collection(body(server.url))
    finally:
        server.close()
    print(f"\n20 concurrent scrapes: {during} collections")
    assert during <= 2  # the first scrape's, and one more at most for a scrape that came after it finished
    assert len(set(bodies)) == len({collection(b) for b in bodies})  # one rendering per collection
    assert later == during + 1  # never an older result: a scrape after the flight gets a fresh collection


def test_connections_wait_for_a_handler_instead_of_each_getting_a_thread():
    server = serve(CountingCollector(delay=0.0), "127.0.0.1:0")
    threads = threading.active_count()
    idle = []
    try:
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        time.sleep(0.5)
        grown = threading.active_count() - threads
        for sock in idle:
            sock.close()
        idle.clear()
        assert collection(body(server.url)) == 1  # the pool drained the idle connections and serves again
    finally:
        for sock in idle:
            sock.close()
        server.close()
    print(f"\n300 idle connections: {grown} more threads")
    assert grown <= WORKERS  # handlers start on demand, never more than the pool: the rest wait in the backlog


def rss_kib(pid: int) -> int:
    """The process's resident set (VmRSS) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def scrape(host: str, port: int, timeout: float = 60.0) -> float:
    """One GET /metrics on a new connection; the seconds it took. Raises on a reset or a timeout."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200 and b"irqtune_up 1.0" in body, response.status
    finally:
        conn.close()
    return time.perf_counter() - started


class PeakRss(threading.Thread):
    """Samples a process's RSS every 20 ms until stopped; `.peak` in KiB."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))


def drain(stream) -> None:
    """Read the exporter's stderr so its log can never fill the pipe and block it."""
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()


def test_200_concurrent_scrapes_of_the_1152_cpu_fixture(tmp_path):
    root = make_root(tmp_path, {rel: fixture_text(name) for rel, name in BIG.items()})
    proc, url = start_export("--listen", "127.0.0.1:0", root=str(root))
    drain(proc.stderr)
    address = urllib.parse.urlsplit(url)
    host, port = address.hostname or "127.0.0.1", address.port or 0
    try:
        single = min(scrape(host, port) for _ in range(3))  # also warms the inventory and topology caches
        time.sleep(0.5)
        idle = rss_kib(proc.pid)
        latencies: list[float] = []
        failures: list[str] = []
        start = threading.Barrier(CLIENTS)

        def client() -> None:
            start.wait()
            for _ in range(SCRAPES_EACH):
                try:
                    latencies.append(scrape(host, port))
                except (OSError, http.client.HTTPException, AssertionError) as err:
                    failures.append(type(err).__name__)

        sampler = PeakRss(proc.pid)
        sampler.start()
        began = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        sampler.done.set()
        sampler.join()
        time.sleep(1.0)
        after = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    slowest = max(latencies, default=0.0)
    print(f"\nexporter load, 1152-CPU fixture: one scrape {single * 1000:.0f} ms; {CLIENTS} clients x {SCRAPES_EACH} "
          f"scrapes in {wall:.1f} s: p50 {cuts[49]:.3f} s, p99 {cuts[98]:.3f} s, max {slowest:.3f} s, "
          f"{len(failures)} resets/timeouts {sorted(set(failures))}; RSS idle {idle / 1024:.0f} MiB, "
          f"peak {max(sampler.peak, after) / 1024:.0f} MiB, after {after / 1024:.0f} MiB")  # fmt: skip
    assert not failures, f"{len(failures)} scrapes failed: {sorted(set(failures))}"
    assert cuts[98] <= 1.0, f"p99 {cuts[98]:.3f} s"
    assert after <= 1.5 * idle, f"RSS {after} KiB after the load, {idle} KiB idle"
