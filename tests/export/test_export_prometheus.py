"""The exporter over HTTP: plain, TLS, basic auth, SIGTERM, and scraped by a real Prometheus server."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

import pytest
from conftest import REPO, fixture_text, make_root, real_linux, require
from prometheus_client.parser import text_string_to_metric_families

from irqtune.export import BasicAuth, IrqtuneCollector, TlsConfig, make_registry, serve
from irqtune.host import Host
from irqtune.measure.rates import compute_rates
from irqtune.measure.snapshot import take_snapshot
from irqtune.probe import kstats
from irqtune.probe.runner import ebpf_unavailable_reason

pytestmark = [pytest.mark.slow]

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
LAPTOP = {
    "proc/interrupts": "interrupts-node_exporter-x86-laptop-4cpu-IR-legacy.txt",
    "proc/softirqs": "softirqs-node_exporter.txt",
}


@pytest.fixture
def laptop(tmp_path: Path) -> Host:
    root = make_root(tmp_path, {rel: fixture_text(name) for rel, name in LAPTOP.items()})
    return Host(str(root))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None) -> tuple[int, dict, str]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def names(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text)}


def test_http_on_an_ephemeral_loopback_port(laptop):
    server = serve(make_registry(IrqtuneCollector(laptop)), "127.0.0.1:0")
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        status, headers, body = get(server.url)
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert {"irqtune_interrupts", "irqtune_up", "irqtune_softirqs"} <= names(body)
        request = urllib.request.Request(server.url, headers={"Accept": "application/openmetrics-text"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert response.read().decode().rstrip().endswith("# EOF")
        request = urllib.request.Request(server.url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert "irqtune_up" in names(gzip.decompress(response.read()).decode())
        assert names(get(server.url + "?name[]=irqtune_up&name[]=irqtune_build_info")[2]) == {
            "irqtune_up", "irqtune_build_info"}  # fmt: skip
        request = urllib.request.Request(server.url, method="POST", data=b"")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405
    finally:
        server.close()
    with pytest.raises(OSError):
        get(server.url)


def test_handler_threads_start_when_needed_not_all_at_once(laptop):
    server = serve(make_registry(IrqtuneCollector(laptop)), "127.0.0.1:0")
    try:
        for _ in range(5):  # one scrape at a time, as Prometheus scrapes
            assert get(server.url)[0] == 200
        handlers = [t for t in threading.enumerate() if t.name.startswith("irqtune-http-") and t.name[-1].isdigit()]
        assert 1 <= len(handlers) <= 2, [t.name for t in handlers]  # not WORKERS idle threads, each resident
    finally:
        server.close()


def test_serve_takes_a_collector_too(laptop):
    server = serve(IrqtuneCollector(laptop), ("127.0.0.1", 0))
    try:
        assert "irqtune_up" in names(get(server.url)[2])
    finally:
        server.close()


def _openssl(*args: str, cwd: Path) -> str:
    openssl = shutil.which("openssl")
    require(openssl is not None, "openssl not installed")
    assert openssl is not None
    return subprocess.run([openssl, *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=120).stdout


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", "1", "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             cwd=tmp_path)  # fmt: skip
    return tmp_path / f"{name}.pem", tmp_path / f"{name}.key"


def test_tls_and_basic_auth(laptop, tmp_path):
    cert, key = self_signed(tmp_path, "server")
    sha_crypt = _openssl("passwd", "-5", "-salt", "pepper", "s3cret-2", cwd=tmp_path).strip()
    users = tmp_path / "users"
    prom = hashlib.sha256(b"s3cret").hexdigest()
    users.write_text(f"# irqtune scrapers\nprom:sha256:{prom}\ngrafana:{sha_crypt}\n")
    users.chmod(0o600)
    auth = BasicAuth.from_file(str(users))
    server = serve(IrqtuneCollector(laptop), "127.0.0.1:0", tls=TlsConfig(str(cert), str(key)), auth=auth)
    trusting = ssl.create_default_context(cafile=str(cert))
    idle = socket.create_connection(("127.0.0.1", server.port))  # never says hello: must not stall the others
    try:
        assert server.url.startswith("https://127.0.0.1:")
        with pytest.raises(urllib.error.URLError):  # a client that does not trust the certificate
            get(server.url, auth=("prom", "s3cret"))
        status, headers, body = get(server.url, context=trusting)
        assert status == 401 and headers["WWW-Authenticate"].startswith('Basic realm="irqtune"')
        assert "irqtune_" not in body
        assert get(server.url, auth=("prom", "wrong"), context=trusting)[0] == 401
        assert get(server.url, auth=("nobody", "s3cret"), context=trusting)[0] == 401
        status, _, body = get(server.url, auth=("prom", "s3cret"), context=trusting)
        assert status == 200 and "irqtune_up" in names(body)
        assert get(server.url, auth=("grafana", "s3cret-2"), context=trusting)[0] == 200
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP to the TLS port
            get(server.url.replace("https", "http"), auth=("prom", "s3cret"))
    finally:
        idle.close()
        server.close()


def test_bcrypt_hashes(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt

            stored = crypt.crypt("hunter22", crypt.mksalt(crypt.METHOD_BLOWFISH))
        except (ImportError, AttributeError, OSError):
            stored = None
    require(stored is not None and stored.startswith("$2"), "no bcrypt in this Python's crypt module")
    auth = BasicAuth.from_lines([f"ops:{stored}"])
    header = "Basic " + base64.b64encode(b"ops:hunter22").decode()
    assert auth.check(header)
    assert auth.check(header)  # cached
    assert not auth.check("Basic " + base64.b64encode(b"ops:hunter2").decode())
    assert not auth.check("Bearer x") and not auth.check("Basic !!!") and not auth.check(None)


def test_mutual_tls(laptop, tmp_path):
    cert, key = self_signed(tmp_path, "server")
    client_cert, client_key = self_signed(tmp_path, "client")
    server = serve(IrqtuneCollector(laptop), "127.0.0.1:0", tls=TlsConfig(str(cert), str(key), str(client_cert)))
    try:
        anonymous = ssl.create_default_context(cafile=str(cert))
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            get(server.url, context=anonymous)
        known = ssl.create_default_context(cafile=str(cert))
        known.load_cert_chain(str(client_cert), str(client_key))
        assert get(server.url, context=known)[0] == 200
    finally:
        server.close()


# -- the command as a process -----------------------------------------------------------------------


def start_export(*args: str, root: str | None = None) -> tuple[subprocess.Popen, str]:
    """`irqtune export --listen 127.0.0.1:0 ...`; returns the process and its /metrics URL."""
    command = [sys.executable, "-m", "irqtune", *(["--root", root] if root else []), "export", *args]
    proc = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True, env=os.environ | {"CI": ""})
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1)
        if ready:
            line = proc.stderr.readline()
            if "serving metrics on " in line:
                return proc, line.split("serving metrics on ", 1)[1].strip()
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise AssertionError(f"irqtune export did not start: {proc.stderr.read()}")


def test_sigterm_stops_the_command_cleanly(laptop):
    proc, url = start_export("--listen", "127.0.0.1:0", root=laptop.root)
    try:
        assert get(url)[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "stopped" in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(OSError):
        get(url)


def test_a_port_in_use_is_exit_1(laptop):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "irqtune", "--root", laptop.root, "export", "--listen", f"127.0.0.1:{port}"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1 and "cannot serve on" in result.stderr


# -- a real Prometheus server ---------------------------------------------------------------------------


def prom_api(base: str, path: str, **params: str) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, ValueError, KeyError) as err:
            last = err
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def test_a_real_prometheus_scrapes_irqtune(tmp_path):
    require(real_linux(), "needs a real Linux /proc")
    require(os.access(PROMETHEUS, os.X_OK), "Prometheus not installed (apt-get install prometheus)")
    exporter, url = start_export("--listen", "127.0.0.1:0")
    target = urllib.parse.urlparse(url).netloc
    web = f"127.0.0.1:{free_port()}"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: irqtune\n    static_configs:\n      - targets: ['{target}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address={web}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://{web}"
    try:
        wait_for(lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=2).status == 200, 60, "Prometheus ready")
        up = wait_for(lambda: prom_api(base, "/api/v1/query", query='up{job="irqtune"} == 1')["result"], 30,
                      "a successful scrape")  # fmt: skip
        assert up[0]["value"][1] == "1"
        series = prom_api(base, "/api/v1/query", query="count({__name__=~'irqtune_.+'}) by (__name__)")["result"]
        found = {s["metric"]["__name__"] for s in series}
        assert {
            "irqtune_interrupts_total",
            "irqtune_arch_interrupts_total",
            "irqtune_softirqs_total",
            "irqtune_cpu_interrupts_total",
            "irqtune_up",
            "irqtune_scrape_duration_seconds",
        } <= found
        metadata = prom_api(base, "/api/v1/metadata")
        types = {name: entries[0]["type"] for name, entries in metadata.items() if name.startswith("irqtune_")}
        for name, kind in (("irqtune_arch_interrupts", "counter"), ("irqtune_interrupts", "counter"),
                           ("irqtune_softirqs", "counter"), ("irqtune_up", "gauge"),
                           ("irqtune_exporter_series_dropped", "gauge")):  # fmt: skip
            # OpenMetrics names counter families without _total, the classic text format with it
            assert types.get(name, types.get(f"{name}_total")) == kind, (name, types)
        wait_for(lambda: len(prom_api(base, "/api/v1/query", query='irqtune_up[10s]')["result"][0]["values"]) >= 6,
                 30, "six scrapes")  # fmt: skip

        host = Host("/")
        attempts = []
        for _ in range(3):  # a busy shared VM can make one 5 s window noisy; the two views must agree in one
            before = take_snapshot(host, with_affinity=False)
            time.sleep(5)
            after = take_snapshot(host, with_affinity=False)
            ours = compute_rates(before, after).interrupts["LOC"].total
            time.sleep(2.5)  # Prometheus has scraped past the end of our window
            query = 'sum(rate(irqtune_arch_interrupts_total{kind="LOC"}[5s]))'
            result = prom_api(base, "/api/v1/query", query=query, time=f"{after.taken_at:.3f}")["result"]
            theirs = float(result[0]["value"][1])
            attempts.append((round(ours, 1), round(theirs, 1)))
            if ours > 0 and abs(theirs - ours) <= 0.25 * ours:
                break
        else:
            raise AssertionError(f"Prometheus rate() vs irqtune's own LOC rate (ours, theirs) per try: {attempts}")
        print(f"LOC interrupts/s, irqtune vs Prometheus rate(): {attempts}")
    finally:
        prometheus.terminate()
        try:
            prometheus.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prometheus.kill()
            prometheus.wait()
        log.close()
        exporter.send_signal(signal.SIGTERM)
        try:
            assert exporter.wait(timeout=15) == 0
        finally:
            if exporter.poll() is None:
                exporter.kill()


def value(text: str, name: str, **labels: str) -> float:
    return next(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def disk_interrupts(writes: int = 20) -> None:
    """Synchronous writes to a real block device (this checkout, not tmpfs): each completes with an interrupt."""
    path = Path(__file__).with_name(f".irqtune-export-{os.getpid()}")
    try:
        with open(path, "wb") as f:
            for _ in range(writes):
                f.write(os.urandom(4096))
                f.flush()
                os.fsync(f.fileno())
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.root
@pytest.mark.bpf
def test_probes_are_served_cumulatively_and_detached_on_sigterm():
    reason = ebpf_unavailable_reason(Host("/"))
    require(reason is None, f"eBPF probes cannot run: {reason}")
    before = set(kstats.prog_ids())
    exporter, url = start_export("--listen", "127.0.0.1:0", "--probes")
    try:
        ours = set(kstats.prog_ids()) - before
        assert ours, "no BPF program attached"
        count = "irqtune_softirq_duration_seconds_count"
        deadline = time.monotonic() + 10  # the probes count from their start: a quiet CPU may not have run TIMER yet
        while True:
            first = get(url)[2]
            if (count in first and value(first, count, vector="timer") > 0) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        disk_interrupts()  # the probes count from their start: give the handler histogram something to count
        time.sleep(1)
        second = get(url)[2]
        found = {f.name: f for f in text_string_to_metric_families(second)}
        for name in (
            "irqtune_softirq_duration_seconds",
            "irqtune_softirq_wait_seconds",
            "irqtune_hardirq_handler_duration_seconds",
            "irqtune_block_completion_latency_seconds",
        ):
            assert found[name].type == "histogram"  # fmt: skip
        assert value(second, "irqtune_probe_loaded", probe="hardirq") == 1
        assert value(second, "irqtune_probe_loaded", probe="softirq") == 1
        for family in (f for f in found.values() if f.type == "histogram"):
            series: dict[tuple, dict] = {}
            for s in family.samples:
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                series.setdefault(key, {})[s.labels.get("le", s.name.rsplit("_", 1)[1])] = s.value
            for key, values in series.items():
                buckets = [v for le, v in values.items() if le not in ("sum", "count")]
                assert buckets == sorted(buckets) and values["+Inf"] == values["count"], (family.name, key)
        assert 0 < value(first, count, vector="timer") <= value(second, count, vector="timer")  # cumulative
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(timeout=30) == 0
    finally:
        if exporter.poll() is None:
            exporter.kill()
    deadline = time.monotonic() + 10  # the kernel frees a detached program after an RCU grace period
    while ours & set(kstats.prog_ids()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ours & set(kstats.prog_ids()), "programs left attached after SIGTERM"
