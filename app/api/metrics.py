"""The API's counters, kept in the worker's :class:`~app.metrics.MetricsRegistry`.

Route labels are route templates, never raw paths, so a scanner cannot blow
up the label cardinality (the registry caps it besides).
"""

from __future__ import annotations

from app.metrics import MetricsRegistry

__all__ = ["ApiMetrics"]


class ApiMetrics:
    """Requests by route, method and code; refusals by action or reason; engine reads."""

    def __init__(self, registry: MetricsRegistry | None = None) -> None:
        self.registry = registry if registry is not None else MetricsRegistry()

    def count_request(self, route: str, method: str, status: int) -> None:
        self.registry.http_requests.inc(route=route, method=method, code=status)

    def count_rate_limited(self, action: str) -> None:
        self.registry.http_rate_limited.inc(action=action)

    def count_denied(self, action: str) -> None:
        self.registry.http_denied.inc(action=action)

    def count_connection_refused(self, reason: str) -> None:
        self.registry.http_connections_refused.inc(reason=reason)

    def count_engine_read(self) -> None:
        self.registry.http_engine_reads.inc()

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """Every metric of the registry (the API's and the worker's) in the format the
        scraper's ``Accept`` asks for, with its ``Content-Type``."""
        return self.registry.exposition(accept)

    def render(self) -> str:
        """Every metric of the registry in the Prometheus text format."""
        return self.registry.render()
