"""The worker's web server with the API's connection bounds.

Faust's aiohttp driver makes its own runner and TCP site, so the bounds of
:mod:`app.api.connections` cannot be added from outside. :class:`GuardedWeb`
is that driver with two changes: :meth:`GuardedWeb.guard` remakes the runner
with the request-handler options (header sizes, the parser logger that drops
detail) and the TCP site is a :class:`~app.api.connections.GuardedSite`.

The worker selects it when it makes its Faust app::

    app = faust.App(..., web=guarded_web_driver())

and :func:`app.api.register_routes` then calls :meth:`GuardedWeb.guard` with
``rate_limits.yml``'s ``http`` bounds.
"""

from __future__ import annotations

from aiohttp import web
from faust.web import drivers
from faust.web.drivers.aiohttp import Web

from app.policy import HttpLimits

from .connections import ConnectionGuard, GuardedSite, server_options
from .metrics import ApiMetrics

__all__ = ["DRIVER_NAME", "GuardedWeb", "guarded_web_driver"]

DRIVER_NAME = "intel-aiohttp"


class GuardedWeb(Web):
    """Faust's aiohttp web driver behind a :class:`ConnectionGuard` once guarded."""

    _connection_guard: ConnectionGuard | None = None

    def guard(self, limits: HttpLimits, metrics: ApiMetrics | None = None) -> None:
        """Apply ``limits`` to the server; call before the web server starts."""
        if self.web_app.frozen:
            raise RuntimeError("guard the web server before it starts")
        self._connection_guard = ConnectionGuard(limits, metrics)
        self._runner = web.AppRunner(self.web_app, access_log=None, **server_options(limits))

    def _new_transport_tcp(self) -> web.BaseSite:
        if self._connection_guard is None:
            return super()._new_transport_tcp()
        return GuardedSite(self._runner, self.app.conf.web_bind, self.app.conf.web_port,
                           self._connection_guard, ssl_context=self.app.conf.web_ssl_context)


def guarded_web_driver() -> str:
    """The ``web`` setting that selects :class:`GuardedWeb` (registers it on first use)."""
    drivers.DRIVERS.aliases.setdefault(DRIVER_NAME, f"{__name__}:GuardedWeb")
    return f"{DRIVER_NAME}://"
