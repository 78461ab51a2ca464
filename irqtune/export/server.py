"""The HTTP(S) endpoint: prometheus-client's own server, optionally with TLS and basic auth.

`serve()` starts prometheus_client's `start_http_server` (a threaded WSGI server in a
daemon thread; TLS through its certfile/keyfile/client_cafile arguments) and then
installs the app: `make_wsgi_app(registry)`, wrapped in the basic-auth check when
asked. Until that switch the library's own app serves an empty registry, so no
request is ever answered with data it was not meant to get. Every path answers with
the metrics (the library's behaviour); `/metrics` is the documented one.

A slow or idle client cannot stall the others: TLS handshakes run in the request's
thread, not the accept loop, and each connection times out after `REQUEST_TIMEOUT`.

The default listen address is 127.0.0.1 (the library's default would be 0.0.0.0):
`0.0.0.0:PORT`, `[::]:PORT` or `:PORT` expose the interrupt counters to every host
that can reach this one.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass

from prometheus_client import make_wsgi_app, start_http_server
from prometheus_client.registry import Collector, CollectorRegistry

from ..config import DEFAULT_LISTEN, parse_listen
from .auth import BasicAuth

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30.0  # seconds a connection may take to send its request


@dataclass(frozen=True, slots=True)
class TlsConfig:
    certfile: str
    keyfile: str
    client_cafile: str | None = None  # when set, clients must present a certificate signed by it


class _Empty:
    """A registry with nothing in it: what the library's app serves before ours is installed."""

    def collect(self) -> list:
        return []


def is_loopback(addr: str) -> bool:
    if addr == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


class MetricsServer:
    """A running endpoint: `.port`, `.url`, `.close()`."""

    def __init__(self, httpd, thread: threading.Thread, tls: bool) -> None:
        self.httpd = httpd
        self.thread = thread
        self.address, self.port = httpd.server_address[:2]
        scheme = "https" if tls else "http"
        host = f"[{self.address}]" if ":" in self.address else self.address
        self.url = f"{scheme}://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving (waits for the serving thread) and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _harden(httpd, tls: bool) -> None:
    """Keep one slow or broken client from stalling every scrape.

    The library wraps the listening socket so that accept() does the TLS handshake in
    the serving loop: one idle TCP connection would block all scrapes. The handshake is
    moved to the request's own thread (OpenSSL does it on the first read), every
    connection gets a timeout, and failed requests (port scans, plain HTTP on the TLS
    port) are logged at debug level instead of a traceback on stderr.
    """
    if tls:
        httpd.socket.do_handshake_on_connect = False
    httpd.RequestHandlerClass = type("_TimedHandler", (httpd.RequestHandlerClass,), {"timeout": REQUEST_TIMEOUT})

    def handle_error(request, client_address) -> None:
        log.debug("request from %s failed", client_address, exc_info=True)

    httpd.handle_error = handle_error


def serve(
    registry_or_collector: CollectorRegistry | Collector,
    listen: str | tuple[str, int] = DEFAULT_LISTEN,
    tls: TlsConfig | None = None,
    auth: BasicAuth | None = None,
) -> MetricsServer:
    """Serve the metrics; returns at once (a daemon thread serves). Raises OSError when it cannot listen,
    ValueError for a bad `listen`, and ssl/OSError errors for unusable TLS files."""
    if isinstance(registry_or_collector, CollectorRegistry):
        registry = registry_or_collector
    else:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(registry_or_collector)
    addr, port = parse_listen(listen) if isinstance(listen, str) else listen
    kwargs = {}
    if tls is not None:
        kwargs = {"certfile": tls.certfile, "keyfile": tls.keyfile}
        if tls.client_cafile:
            kwargs |= {"client_cafile": tls.client_cafile, "client_auth_required": True}
    httpd, thread = start_http_server(port, addr=addr, registry=_Empty(), **kwargs)  # type: ignore[arg-type]
    _harden(httpd, tls is not None)
    app = make_wsgi_app(registry)
    httpd.set_app(auth.wrap(app) if auth is not None else app)
    server = MetricsServer(httpd, thread, tls is not None)
    if not is_loopback(server.address) and (tls is None or auth is None):
        missing = " and ".join(w for w, on in (("TLS", tls is None), ("basic auth", auth is None)) if on)
        log.warning("serving on %s without %s: every host that reaches it can read the metrics", server.url, missing)
    return server
