"""The HTTP gateway's own ports when the operator names none.

Containers' ingress rules own 80, 443 and 8000-8999: a rule on 80 is served on the gateway's
HTTP port, a rule on 443 on its HTTPS port, and a rule on 8000-8999 gets a listener on that very
port. So the gateway's own ports must lie outside 8000-8999, or a dev box with rules on both 80
and (say) 8080 would lose one. Unset, they are what a server's gateway uses, 80 and 443, when
berth can bind them (it runs as root or with `CAP_NET_BIND_SERVICE`, and nothing else holds
them); otherwise 9080 and 9443. Each port is decided on its own, once, at start-up, by binding
it on the gateway's address; the HTTPS port only when a certificate is configured.
"""

from __future__ import annotations

import contextlib
import socket

from berth.config import Settings

HTTP_PORTS = (80, 9080)
"""The HTTP port unset: the first, when it can be bound; else the second."""
HTTPS_PORTS = (443, 9443)
"""The HTTPS port unset, likewise."""


def resolve_gateway_ports(settings: Settings) -> Settings:
    """`settings` with the gateway's ports decided: those the operator set are kept; an unset
    HTTP port becomes 80 or 9080, an unset HTTPS port (with a certificate) 443 or 9443."""
    update: dict[str, int] = {}
    if settings.gateway_port is None:
        update["gateway_port"] = _first_bindable(settings.gateway_host, HTTP_PORTS)
    if settings.tls_configured() and settings.gateway_tls_port is None:
        update["gateway_tls_port"] = _first_bindable(settings.gateway_host, HTTPS_PORTS)
    return settings.model_copy(update=update) if update else settings


def _first_bindable(host: str, choices: tuple[int, int]) -> int:
    preferred, fallback = choices
    return preferred if can_listen(host, preferred) else fallback


def can_listen(host: str, port: int) -> bool:
    """Whether a listener on `host`:`port` could be opened now, bound as the gateway binds
    (every address `host` resolves to, with `SO_REUSEADDR`). The socket is closed again."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError:
        return False
    with contextlib.ExitStack() as stack:
        for family, kind, proto, _name, address in infos:
            sock = stack.enter_context(socket.socket(family, kind, proto))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError:
                return False
    return True
