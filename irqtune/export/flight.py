"""Concurrent scrapes share one collection and one rendering of it (single-flight).

A scrape of a large host takes a while (about 150 ms for the 1152-CPU fixture), and each one used
to take its own snapshot and render its own copy of the exposition: 200 concurrent scrapes queued
for tens of seconds behind each other and held hundreds of MB of copies. Now a scrape that arrives
while a collection is being built waits for that one and gets its result; a scrape that arrives
after it finished starts a new one, so no answer is older than the scrape that asked for it.
Each flight renders each format (text or OpenMetrics, gzip or not) once, and every waiting scrape
sends those same bytes.
"""

from __future__ import annotations

import gzip
import queue
import threading
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector, CollectorRegistry


class Flight:
    """One collection and its renderings; a collector itself (`collect()`), for the encoders."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.families: list = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._bodies: dict[tuple[str, bool], bytes] = {}

    def collect(self) -> list:
        return self.families

    def body(self, encoder: Callable, content_type: str, gzipped: bool) -> bytes:
        """The exposition in one format, rendered by the first scrape that asks and shared with the rest."""
        with self._lock:
            key = (content_type, gzipped)
            if key not in self._bodies:
                text = encoder(self)
                self._bodies[key] = gzip.compress(text) if gzipped else text
            return self._bodies[key]


class SingleFlight:
    """Hands every scrape the collection being built when it arrived, or has a new one built.

    Collections run in one thread of their own, not in whichever handler came first: a collection
    allocates tens of MB for a moment, and glibc keeps freed memory in the arena of the thread that
    used it, so collecting in whichever handler came first left the RSS at twice its idle size.
    """

    def __init__(self, registry: Collector) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._building: Flight | None = None
        self._closed = False
        self._wanted: queue.SimpleQueue[Flight | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="irqtune-collect", daemon=True)
        self._thread.start()

    def join(self) -> Flight:
        with self._lock:
            if self._closed:
                raise RuntimeError("the metrics server is closing")
            flight = self._building
            if flight is None:
                flight = self._building = Flight()
                self._wanted.put(flight)
        flight.done.wait()
        if flight.error is not None:
            raise RuntimeError("collection failed") from flight.error
        return flight

    def close(self, timeout: float) -> None:
        """Stop the collecting thread once the collection asked for is done."""
        with self._lock:
            self._closed = True
            self._wanted.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (flight := self._wanted.get()) is not None:
            try:
                flight.families = list(self._registry.collect())
            except Exception as err:  # every waiting scrape gets the error (500), not a hang
                flight.error = err
            finally:
                with self._lock:
                    self._building = None
                flight.done.set()


class SharedApp:
    """prometheus_client's WSGI app, but with scrapes coalesced: same paths, methods, formats, gzip and name[]."""

    def __init__(self, registry: Collector) -> None:
        self.flights = SingleFlight(registry)
        self._no_data = make_wsgi_app(CollectorRegistry(auto_describe=False))  # OPTIONS, 405, favicon

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] != "GET" or environ.get("PATH_INFO") == "/favicon.ico":
            return self._no_data(environ, start_response)
        flight = self.flights.join()
        if "name[]" in parse_qs(environ.get("QUERY_STRING", "")):  # rare: filtered from the shared collection
            restricted = CollectorRegistry(support_collectors_without_names=True)
            restricted.register(flight)
            return make_wsgi_app(restricted)(environ, start_response)
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        gzipped = gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", ""))
        body = flight.body(encoder, content_type, gzipped)
        headers = [("Content-Type", content_type)]
        if gzipped:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]

    def close(self, timeout: float = 5.0) -> None:
        self.flights.close(timeout)
