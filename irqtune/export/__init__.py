"""Prometheus exporter: irqtune's measurements as metrics (`irqtune export`, or inside the agent).

Use from code (the agent does this):

    from irqtune.export import AgentStats, ExportOptions, IrqtuneCollector, make_registry, serve

    stats = AgentStats()
    collector = IrqtuneCollector(host, ExportOptions(), agent=stats)
    server = serve(make_registry(collector), "127.0.0.1:9731")   # tls=TlsConfig(...), auth=BasicAuth...
    ...                                                         # stats.record_pass(seconds) per pass
    server.close()

Every scrape takes a fresh snapshot; metric names, labels and cardinality rules are in
docs/metrics.md.
"""

from __future__ import annotations

from .agent_stats import AgentStats
from .auth import AuthFileError, BasicAuth
from .collector import IrqtuneCollector, make_registry
from .select import DEFAULT_MAX_SERIES, ExportOptions, Filters
from .server import DEFAULT_LISTEN, MetricsServer, TlsConfig, serve

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_MAX_SERIES",
    "AgentStats",
    "AuthFileError",
    "BasicAuth",
    "ExportOptions",
    "Filters",
    "IrqtuneCollector",
    "MetricsServer",
    "TlsConfig",
    "make_registry",
    "serve",
]
