"""The API's own Prometheus counters, rendered in the text exposition format.

Kept by hand (a few counters) rather than with a client library: the worker
already renders its own lines through :meth:`LiveView.metrics_text`, and the
two are concatenated on ``/metrics``. Route labels are route templates, never
raw paths, so a scanner cannot blow up the label cardinality.
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["ApiMetrics", "label_value"]


def label_value(value: str) -> str:
    """Escape a label value as the exposition format requires."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class ApiMetrics:
    """Requests by route and status, refusals by action or reason, engine reads."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.denied: Counter[str] = Counter()
        self.connections_refused: Counter[str] = Counter()
        self.engine_reads = 0
        self._lock = threading.Lock()

    def count_request(self, route: str, method: str, status: int) -> None:
        with self._lock:
            self.requests[(route, method, status)] += 1

    def count_rate_limited(self, action: str) -> None:
        with self._lock:
            self.rate_limited[action] += 1

    def count_denied(self, action: str) -> None:
        with self._lock:
            self.denied[action] += 1

    def count_connection_refused(self, reason: str) -> None:
        with self._lock:
            self.connections_refused[reason] += 1

    def count_engine_read(self) -> None:
        with self._lock:
            self.engine_reads += 1

    def render(self) -> str:
        """Every counter, sorted, with its HELP and TYPE lines."""
        with self._lock:
            requests = sorted(self.requests.items())
            limited = sorted(self.rate_limited.items())
            denied = sorted(self.denied.items())
            refused = sorted(self.connections_refused.items())
            reads = self.engine_reads
        lines = [
            "# HELP intel_api_requests_total HTTP requests answered by the API.",
            "# TYPE intel_api_requests_total counter",
        ]
        lines += [
            f'intel_api_requests_total{{route="{label_value(route)}",method="{method}",'
            f'status="{status}"}} {n}'
            for (route, method, status), n in requests
        ]
        lines += [
            "# HELP intel_api_rate_limited_total Calls refused with 429, by action.",
            "# TYPE intel_api_rate_limited_total counter",
        ]
        lines += [f'intel_api_rate_limited_total{{action="{label_value(a)}"}} {n}'
                  for a, n in limited]
        lines += [
            "# HELP intel_api_denied_total Calls refused with 403, by action.",
            "# TYPE intel_api_denied_total counter",
        ]
        lines += [f'intel_api_denied_total{{action="{label_value(a)}"}} {n}' for a, n in denied]
        lines += [
            "# HELP intel_api_connections_refused_total Connections closed by the "
            "connection guard, by reason.",
            "# TYPE intel_api_connections_refused_total counter",
        ]
        lines += [f'intel_api_connections_refused_total{{reason="{label_value(r)}"}} {n}'
                  for r, n in refused]
        lines += [
            "# HELP intel_api_engine_reads_total Engine reads started by the API.",
            "# TYPE intel_api_engine_reads_total counter",
            f"intel_api_engine_reads_total {reads}",
        ]
        return "\n".join(lines) + "\n"
