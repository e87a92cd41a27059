"""The public HTTP(S) gateway as one unit: listeners, routes, route refresh, scale to zero.

`PublicGateway.start` listens on the HTTP port (and the HTTPS port when a certificate is
configured: one certificate for `*.<public domain>`, routing by the Host header and SNI
name alike), loads the routes, and keeps them and the extra listeners that containers'
ingress rules need (8000-8999) in step with the store; a request for a workload the routes
do not know yet looks that one workload up (`route_lookup`). Its ports must be decided first
(`berth.gateway.http.default_ports.resolve_gateway_ports`). Both listeners share one limit of new
connections per client address (`BERTH_GATEWAY_CONNECTIONS_PER_SECOND`, `..._BURST`).

`open_rule_port` is what adding an ingress rule asks first (`domain.ingress.RuleListeners`):
it opens the rule's listener at once, or raises `OSError` when the gateway cannot, so a rule
the gateway could not serve is refused rather than stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import ssl
import time
from collections.abc import Callable

from berth.config import Settings
from berth.domain.context import Domain
from berth.gateway.http.proxy import HttpGateway
from berth.gateway.http.route_lookup import RouteLookup
from berth.gateway.http.route_refresh import RouteRefresher
from berth.gateway.http.route_table import RouteTable, gateway_port_for
from berth.gateway.http.scale_to_zero import IdleScaler, ServiceWaker
from berth.runtime.base import Runtime
from berth.token_buckets import TokenBuckets

log = logging.getLogger("berth.gateway")

CLAIM_SECONDS = 10.0
"""How long a listener `open_rule_port` opened stays open without a rule needing it: the
rule is stored just after, and a route reload in between must not close it."""


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The HTTPS listener's context, or None when no certificate is configured."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


def connection_limit(settings: Settings) -> TokenBuckets | None:
    """The buckets of new connections per client address; None when the limit is off."""
    rate, burst = settings.gateway_connections_per_second, settings.gateway_connection_burst
    return TokenBuckets(rate=rate, burst=burst) if rate > 0 and burst > 0 else None


class PublicGateway:
    def __init__(
        self,
        settings: Settings,
        domain: Domain,
        runtime: Runtime,
        *,
        start_now: Callable[[str], None] | None = None,
    ) -> None:
        if settings.gateway_port is None or (
            settings.tls_configured() and settings.gateway_tls_port is None
        ):
            raise ValueError("the gateway's ports are decided first: resolve_gateway_ports")
        self.routes = RouteTable(settings.public_domain)
        context = tls_context(settings)
        self.http_port = settings.gateway_port
        self.https_port = settings.gateway_tls_port if context is not None else None
        limit = connection_limit(settings)
        self._activity: asyncio.Task[None] | None = None
        self.idle = IdleScaler(
            domain,
            interval=min(settings.reconcile_interval_seconds, 5.0),
            box_idle_seconds=settings.dev_box_idle_pause_seconds,
        )
        waker = ServiceWaker(
            domain,
            self.routes,
            runtime,
            http_port=self.http_port,
            timeout=settings.gateway_wake_timeout_seconds,
            start_now=start_now,
        )
        self.lookup = RouteLookup(
            domain, self.routes, http_port=self.http_port, https_port=self.https_port
        )
        self.http = HttpGateway(
            host=settings.gateway_host,
            port=self.http_port,
            route_table=self.routes,
            runtime=runtime,
            waker=waker,
            route_finder=self.lookup,
            on_request=self.idle.saw_request,
            connection_limit=limit,
        )
        self.https = (
            HttpGateway(
                host=settings.gateway_host,
                port=self.https_port,
                route_table=self.routes,
                runtime=runtime,
                waker=waker,
                route_finder=self.lookup,
                on_request=self.idle.saw_request,
                ssl_context=context,
                scheme="https",
                connection_limit=limit,
            )
            if context is not None and self.https_port is not None
            else None
        )
        self._fixed_ports = {self.http_port} | ({self.https_port} if self.https_port else set())
        self._claims: dict[int, float] = {}
        """Ports `open_rule_port` opened, and until when they stay open without a rule."""
        self.refresher = RouteRefresher(
            domain,
            self.routes,
            http_port=self.http_port,
            https_port=self.https_port,
            interval=settings.reconcile_interval_seconds,
            on_reload=self._follow_rule_ports,
            on_change=self.lookup.forget,
        )

    async def open_rule_port(self, port: int) -> None:
        """Make sure rules on external `port` can be served: 80 and 443 are the gateway's own
        HTTP and HTTPS listeners (a rule on 443 without a certificate is kept, and served
        once one is configured); 8000-8999 is listened on now. Raises `OSError` when the port
        is taken by another program or is one of the gateway's own."""
        listen = gateway_port_for(port, http_port=self.http_port, https_port=self.https_port)
        if listen is None or port in (80, 443):
            return
        if listen in self._fixed_ports:
            which = "HTTP" if listen == self.http_port else "HTTPS"
            raise OSError(errno.EADDRINUSE, f"it is the gateway's own {which} port")
        await self.http.listen_on(listen)
        self._claims[listen] = time.monotonic() + CLAIM_SECONDS

    async def _follow_rule_ports(self) -> None:
        # A claim ends once the table lists its port (the rule was stored) or it expires.
        listed, now = self.routes.listen_ports(), time.monotonic()
        self._claims = {
            port: until
            for port, until in self._claims.items()
            if until > now and port not in listed
        }
        await self.http.listen_also((listed | set(self._claims)) - self._fixed_ports)

    async def start(self) -> None:
        await self.http.start()
        if self.https is not None:
            await self.https.start()
        https = f", HTTPS on port {self.https_port}" if self.https is not None else ""
        log.info("HTTP gateway on %s port %d%s", self.http.host, self.http_port, https)
        await self.refresher.start()
        self._activity = asyncio.create_task(self.idle.follow_activity(), name="activity")

    async def stop(self) -> None:
        if self._activity is not None:
            self._activity.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._activity
        await self.refresher.stop()
        if self.https is not None:
            await self.https.stop()
        await self.http.stop()
