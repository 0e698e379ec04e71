"""The HTTP API of Incident Intelligence: tool calls, the release gate, learning
velocity, an on-call dashboard, health and metrics, over a :class:`LiveView`.

Mount it standalone with :func:`create_api` or on the Faust worker's web
server with :func:`register_routes`; see :mod:`app.api.routes`. Connection
bounds: :mod:`app.api.connections` (``serve``) and
:mod:`app.api.worker_web` (the worker).
"""

from app.api.live import InMemoryLiveView, LiveView
from app.api.readiness import Readiness, ReadinessProvider
from app.api.routes import create_api, register_routes
from app.api.tokens import TokenRoles, ensure_local_token, load_tokens

__all__ = [
    "InMemoryLiveView",
    "LiveView",
    "Readiness",
    "ReadinessProvider",
    "TokenRoles",
    "create_api",
    "ensure_local_token",
    "load_tokens",
    "register_routes",
]
