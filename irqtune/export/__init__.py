"""Prometheus exporter: irqtune's measurements as metrics (`irqtune export`, or inside the agent).

Use from code (the agent does this):

    from irqtune.export import AgentStats, ExportOptions, IrqtuneCollector, make_registry, serve

    stats = AgentStats()
    collector = IrqtuneCollector(host, ExportOptions(), agent=stats)
    server = serve(make_registry(collector), "127.0.0.1:9731")   # tls=TlsConfig(...), auth=BasicAuth...
    ...                                                         # stats.record_pass(seconds) per pass
    server.close()

Every scrape takes a fresh snapshot (scrapes that arrive while one is taken share it); metric names,
labels and cardinality rules are in docs/metrics.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .agent_stats import AgentStats
    from .server import MetricsServer

# name -> its module: imported when first used (PEP 562), so the agent's AgentStats or AuthFileError do not load
# the collector, the server and prometheus_client into an agent that serves no metrics
_LAZY = {
    "AgentStats": ".agent_stats", "AuthFileError": ".auth", "BasicAuth": ".auth", "IrqtuneCollector": ".collector",
    "make_registry": ".collector", "DEFAULT_MAX_SERIES": ".select", "ExportOptions": ".select", "Filters": ".select",
    "DEFAULT_LISTEN": ".server", "MetricsServer": ".server", "TlsConfig": ".server", "serve": ".server",
}  # fmt: skip


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def serve_agent(host, exporter, stats: AgentStats, state_dir: str | None = None) -> MetricsServer:
    """The agent's metrics server: `irqtune export`'s collector plus the agent's stats, set up from the
    config's [exporter] table (listen, tls_cert, tls_key, basic_auth_file, per_cpu, max_series); the pods' held
    CPUs from the agent's `state_dir`."""
    from .auth import BasicAuth
    from .collector import IrqtuneCollector, make_registry
    from .select import ExportOptions, Filters
    from .server import TlsConfig, serve

    auth = BasicAuth.from_file(exporter.basic_auth_file) if exporter.basic_auth_file else None
    tls = TlsConfig(exporter.tls_cert, exporter.tls_key or exporter.tls_cert) if exporter.tls_cert else None
    options = ExportOptions(per_cpu=exporter.per_cpu, filters=Filters.parse((), ()), max_series=exporter.max_series)
    collector = IrqtuneCollector(host, options, agent=stats, state_dir=state_dir)
    return serve(make_registry(collector), exporter.listen, tls=tls, auth=auth)


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
    "serve_agent",
]
