"""The HTTP(S) endpoint: a bounded pool of handler threads, optionally with TLS and basic auth.

`serve()` listens with a backlog of `LISTEN_BACKLOG`, accepts in one thread and hands each
connection to one of `WORKERS` handler threads (wsgiref, as prometheus_client's own server);
when they are all busy, new connections wait in the listen queue instead of being reset or
starting a thread each. The app is prometheus_client's, except that concurrent scrapes share one
collection and its rendered exposition (flight.py): memory stays bounded under a scrape storm and
goes back down after it. Basic auth wraps the app when asked. Every path answers with the metrics
(the library's behaviour); `/metrics` is the documented one.

A slow or idle client cannot stall the others for long: TLS handshakes run in the handler
thread, not the accept loop, and each connection times out after `REQUEST_TIMEOUT`.

The default listen address is 127.0.0.1 (the library's default would be 0.0.0.0):
`0.0.0.0:PORT`, `[::]:PORT` or `:PORT` expose the interrupt counters to every host
that can reach this one.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client.registry import Collector, CollectorRegistry

from ..config import DEFAULT_LISTEN, parse_listen
from .auth import BasicAuth
from .flight import SharedApp

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30.0  # seconds a connection may take to send its request
LISTEN_BACKLOG = 1024  # connections the kernel queues while every handler is busy (capped by net.core.somaxconn)
WORKERS = 256  # handler threads: the scrapes that can wait on one shared collection at once
STOP_TIMEOUT = 5.0  # seconds close() waits for requests in progress


@dataclass(frozen=True, slots=True)
class TlsConfig:
    certfile: str
    keyfile: str
    client_cafile: str | None = None  # when set, clients must present a certificate signed by it


def is_loopback(addr: str) -> bool:
    if addr == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


class _Handler(WSGIRequestHandler):
    """wsgiref's handler with a timeout on every connection and no access log."""

    timeout = REQUEST_TIMEOUT
    wbufsize = 1 << 16  # status line, headers and the start of the body leave in one send, not five

    def log_message(self, format: str, *args: object) -> None:
        """Log nothing: a scrape every few seconds is not news."""


class PooledServer(WSGIServer):
    """A WSGI server whose accept loop hands connections to a bounded pool of handler threads, each started when a
    connection finds none idle (at most `workers`: the semaphore bounds the connections in flight).

    The accept loop takes a connection only when a handler is free; the others wait in the kernel's
    listen queue (`LISTEN_BACKLOG`), not in memory here. Idle handlers sleep on the queue (no polling).
    """

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, workers: int = WORKERS) -> None:
        self.address_family = family
        super().__init__(address, _Handler)
        self._jobs: queue.SimpleQueue[tuple[socket.socket, tuple] | None] = queue.SimpleQueue()
        self._free = threading.Semaphore(workers)
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._idle = 0  # started workers waiting for a job that no request has claimed yet
        self._workers: list[threading.Thread] = []  # started when a request finds none idle: a scrape at a time
        # (Prometheus) needs one, and each idle thread costs resident memory

    def process_request(self, request: socket.socket, client_address: tuple) -> None:
        while not self._free.acquire(timeout=0.5):
            if self._closing.is_set():
                self.shutdown_request(request)
                return
        with self._lock:
            if self._idle:
                self._idle -= 1  # claimed: that worker (or another idle one) takes this job
            else:
                worker = threading.Thread(target=self._work, name=f"irqtune-http-{len(self._workers)}", daemon=True)
                self._workers.append(worker)
                worker.start()
        self._jobs.put((request, client_address))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            request, client_address = job
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
                with self._lock:
                    self._idle += 1
                self._free.release()

    def handle_error(self, request: socket.socket, client_address: tuple) -> None:
        """Port scans, resets and plain HTTP on the TLS port: debug, not a traceback on stderr."""
        log.debug("request from %s failed", client_address, exc_info=True)

    def stop(self) -> None:
        """Stop accepting, let the handlers finish their requests (`STOP_TIMEOUT` at most), close the socket."""
        self._closing.set()
        self.shutdown()
        with self._lock:
            workers = list(self._workers)
        for _ in workers:
            self._jobs.put(None)
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        self.server_close()


class MetricsServer:
    """A running endpoint: `.port`, `.url`, `.close()`."""

    def __init__(self, httpd: PooledServer, thread: threading.Thread, app: SharedApp, tls: bool) -> None:
        self.httpd = httpd
        self.thread = thread
        self.app = app
        self.address, self.port = httpd.server_address[:2]
        scheme = "https" if tls else "http"
        host = f"[{self.address}]" if ":" in self.address else self.address
        self.url = f"{scheme}://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving (waits for the accept loop and the handlers) and close the socket."""
        self.httpd.stop()
        self.thread.join(timeout=STOP_TIMEOUT)
        self.app.close(STOP_TIMEOUT)


def _tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """A server context; with client_cafile, clients must present a certificate signed by it. The handshake
    runs on the handler's first read, not in the accept loop, so one silent client cannot block accepting."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if tls.client_cafile:
        context.load_verify_locations(tls.client_cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(certfile=tls.certfile, keyfile=tls.keyfile)
    return context


def _bind(addr: str, port: int, tls: TlsConfig | None) -> PooledServer:
    family, _, _, _, sockaddr = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    context = _tls_context(tls) if tls is not None else None  # unusable TLS files fail before we listen
    httpd = PooledServer((sockaddr[0], port), family)
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    return httpd


def serve(
    registry_or_collector: CollectorRegistry | Collector,
    listen: str | tuple[str, int] = DEFAULT_LISTEN,
    tls: TlsConfig | None = None,
    auth: BasicAuth | None = None,
) -> MetricsServer:
    """Serve the metrics; returns at once (daemon threads serve). Raises OSError when it cannot listen,
    ValueError for a bad `listen`, and ssl/OSError errors for unusable TLS files."""
    if isinstance(registry_or_collector, CollectorRegistry):
        registry = registry_or_collector
    else:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(registry_or_collector)
    addr, port = parse_listen(listen) if isinstance(listen, str) else listen
    httpd = _bind(addr, port, tls)
    app = SharedApp(registry)
    httpd.set_app(auth.wrap(app) if auth is not None else app)
    thread = threading.Thread(target=httpd.serve_forever, name="irqtune-http-accept", daemon=True)
    thread.start()
    server = MetricsServer(httpd, thread, app, tls is not None)
    if not is_loopback(server.address) and (tls is None or auth is None):
        missing = " and ".join(w for w, on in (("TLS", tls is None), ("basic auth", auth is None)) if on)
        log.warning("serving on %s without %s: every host that reaches it can read the metrics", server.url, missing)
    return server
