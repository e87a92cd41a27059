"""The public HTTP(S) gateway as one unit: listeners, routes, route refresh, scale to zero.

`PublicGateway.start` listens on the HTTP port (and the HTTPS port when a certificate is
configured: one certificate for `*.<public domain>`, routing by the Host header and SNI
name alike), loads the routes, and keeps them and the extra listeners that containers'
ingress rules need (8000-8999) in step with the store.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from berth.config import Settings
from berth.domain.context import Domain
from berth.gateway.http_proxy import HttpGateway
from berth.gateway.route_refresh import RouteRefresher
from berth.gateway.routes import RouteTable
from berth.gateway.scale_to_zero import IdleScaler, ServiceWaker
from berth.runtime.base import Runtime


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The HTTPS listener's context, or None when no certificate is configured."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


class PublicGateway:
    def __init__(
        self,
        settings: Settings,
        domain: Domain,
        runtime: Runtime,
        *,
        start_now: Callable[[str], None] | None = None,
    ) -> None:
        self.routes = RouteTable(settings.public_domain)
        context = tls_context(settings)
        self.https_port = settings.gateway_tls_port if context is not None else None
        self.idle = IdleScaler(domain, interval=min(settings.reconcile_interval_seconds, 5.0))
        waker = ServiceWaker(
            domain,
            self.routes,
            runtime,
            http_port=settings.gateway_port,
            timeout=settings.gateway_wake_timeout_seconds,
            start_now=start_now,
        )
        self.http = HttpGateway(
            host=settings.gateway_host,
            port=settings.gateway_port,
            route_table=self.routes,
            runtime=runtime,
            waker=waker,
            on_request=self.idle.saw_request,
        )
        self.https = (
            HttpGateway(
                host=settings.gateway_host,
                port=settings.gateway_tls_port,
                route_table=self.routes,
                runtime=runtime,
                waker=waker,
                on_request=self.idle.saw_request,
                ssl_context=context,
                scheme="https",
            )
            if context is not None
            else None
        )
        self._fixed_ports = {settings.gateway_port, settings.gateway_tls_port}
        self.refresher = RouteRefresher(
            domain,
            self.routes,
            http_port=settings.gateway_port,
            https_port=self.https_port,
            interval=settings.reconcile_interval_seconds,
            on_reload=self._follow_rule_ports,
        )

    async def _follow_rule_ports(self) -> None:
        await self.http.listen_also(self.routes.listen_ports() - self._fixed_ports)

    async def start(self) -> None:
        await self.http.start()
        if self.https is not None:
            await self.https.start()
        await self.refresher.start()
        self.idle.start()

    async def stop(self) -> None:
        await self.idle.stop()
        await self.refresher.stop()
        if self.https is not None:
            await self.https.stop()
        await self.http.stop()
