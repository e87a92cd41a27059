"""The HTTP gateway's header hygiene (RFC 9110 section 7.6.1) and status lines.

Hop-by-hop headers, the standard ones and those a message names in its `Connection` header,
never cross the gateway in either direction; `Proxy-Authorization` (credentials meant for a
proxy) never reaches a service. Statuses the gateway does not know (an upstream's 599, 218)
are relayed as they are, and its own answers carry the standard reason phrase for any
status. The gateway and the upstreams are real sockets on loopback, as in
test_http_gateway.py.
"""

from __future__ import annotations

import asyncio

import httpx

from berth.gateway.http.proxy import WakeOutcome
from berth.gateway.http.route_table import Route
from tests.support.http_gateway import (
    Upstream,
    connect_through,
    echo_behind_gateway,
    gateway,
    http_response,
    key,
)


class HeaderUpstream(Upstream):
    """`Upstream`, plus: GET /status/N answers status N; GET /bare-status answers 599 with a
    bare HTTP/1.0 status line; GET /hop answers with hop-by-hop headers (standard ones and one
    its `Connection` header names) beside end-to-end ones."""

    async def _route(
        self,
        target: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        if target == "/bare-status":  # No reason phrase, not even the space before it.
            writer.write(b"HTTP/1.0 599\r\nContent-Length: 7\r\n\r\nunusual")
        elif target.startswith("/status/"):
            status = int(target.rsplit("/", 1)[1])
            writer.write(http_response(status, b"unusual"))
        elif target == "/hop":
            writer.write(
                b"HTTP/1.1 200 OK\r\n"
                b"X-Internal: upstream-only\r\n"
                b"Connection: keep-alive, X-Internal\r\n"
                b"Keep-Alive: timeout=5\r\n"
                b"Proxy-Authenticate: Basic realm=upstream\r\n"
                b"Proxy-Connection: keep-alive\r\n"
                b"Trailer: X-Checksum\r\n"
                b"X-End-To-End: kept\r\n"
                b"Content-Length: 2\r\n\r\nok"
            )
        else:
            await super()._route(target, headers, reader, writer)


def _seen_headers(text: str) -> dict[str, str]:
    """The headers `/headers` reports, lower-cased names to values."""
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


async def _raw_exchange(port: int, request: bytes) -> bytes:
    """Send `request` on a fresh connection and return everything until the gateway closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_headers_named_in_connection_never_reach_the_upstream() -> None:
    async with HeaderUpstream("a") as up, gateway() as (gw, table, url):
        table.set_routes({key(gw, "app"): Route("app", (up.address,))})
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            seen = await client.get(
                "/headers",
                headers={
                    "Host": "app.localhost",
                    "Connection": "close, X-Secret",
                    "X-Secret": "1",
                    "X-Kept": "yes",
                },
            )
        assert seen.status_code == 200
        headers = _seen_headers(seen.text)
        assert "x-secret" not in headers
        assert headers["x-kept"] == "yes"
        assert headers["host"] == "app.localhost"

        # Several Connection headers, any case, the named header before or after them.
        answer = await _raw_exchange(
            gw.ports[0],
            b"GET /headers HTTP/1.1\r\nHost: app.localhost\r\nx-one: 1\r\n"
            b"Connection: X-ONE\r\nConnection: x-Two , close\r\nX-Two: 2\r\nX-Three: 3\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 200")
        headers = _seen_headers(answer.split(b"\r\n\r\n", 1)[1].decode())
        assert "x-one" not in headers and "x-two" not in headers
        assert headers["x-three"] == "3"


async def test_proxy_credentials_and_standard_hop_by_hop_headers_are_not_forwarded() -> None:
    async with HeaderUpstream("a") as up, gateway() as (gw, table, url):
        table.set_routes({key(gw, "app"): Route("app", (up.address,))})
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            seen = await client.get(
                "/headers",
                headers={
                    "Host": "app.localhost",
                    "Proxy-Authorization": "Basic c2VjcmV0OnNlY3JldA==",
                    "Proxy-Connection": "keep-alive",
                    "Keep-Alive": "timeout=5",
                    "TE": "trailers",
                    "Trailer": "X-Checksum",
                    "Upgrade": "h2c",
                    "Authorization": "Bearer end-to-end",
                },
            )
        headers = _seen_headers(seen.text)
        for name in ("proxy-authorization", "proxy-connection", "keep-alive", "te", "trailer"):
            assert name not in headers, name
        assert "upgrade" not in headers  # Only WebSocket upgrades are passed on.
        assert headers["authorization"] == "Bearer end-to-end"


async def test_an_upgrade_other_than_websocket_is_served_as_a_plain_request() -> None:
    """`h2c` (or any protocol but WebSocket) is not switched to behind the gateway, where it
    would escape the gateway's per-request handling: the request is answered as HTTP/1.1."""
    async with HeaderUpstream("a") as up, gateway() as (gw, table, _url):
        table.set_routes({key(gw, "app"): Route("app", (up.address,))})
        answer = await _raw_exchange(
            gw.ports[0],
            b"GET /headers HTTP/1.1\r\nHost: app.localhost\r\n"
            b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
    headers = _seen_headers(body.decode())
    assert "upgrade" not in headers and "http2-settings" not in headers
    assert "connection" not in headers


async def test_a_connection_option_cannot_remove_the_host_or_the_body_framing() -> None:
    """Naming Content-Length in Connection must not strip the length of a body that is still
    forwarded: the upstream would read the body as a next request."""
    async with HeaderUpstream("a") as up, gateway() as (gw, table, url):
        table.set_routes({key(gw, "app"): Route("app", (up.address,))})
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            seen = await client.post(
                "/sha",
                content=b"body",
                headers={"Host": "app.localhost", "Connection": "Content-Length, Host"},
            )
        assert seen.status_code == 200
        assert seen.text == "230d8358dc8e8890b4c58deeb62912ee2f20357ae92a5cc861b98e68fe31acb5"
        assert up.requests == 1


async def test_hop_by_hop_response_headers_are_not_relayed() -> None:
    async with HeaderUpstream("a") as up, gateway() as (gw, table, url):
        table.set_routes({key(gw, "app"): Route("app", (up.address,))})
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            answer = await client.get("/hop", headers={"Host": "app.localhost"})
            assert answer.status_code == 200 and answer.text == "ok"
            for name in ("x-internal", "keep-alive", "proxy-authenticate", "proxy-connection"):
                assert name not in answer.headers, name
            assert "trailer" not in answer.headers
            assert answer.headers["x-end-to-end"] == "kept"
            assert answer.headers["connection"] == "keep-alive"
            again = await client.get("/who", headers={"Host": "app.localhost"})
            assert again.text == "a"


async def test_unusual_upstream_statuses_are_relayed() -> None:
    async with HeaderUpstream("a") as up, gateway() as (gw, table, url):
        table.set_routes({key(gw, "app"): Route("app", (up.address,))})
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for status in (599, 218, 299, 499):
                answer = await client.get(f"/status/{status}", headers={"Host": "app.localhost"})
                assert answer.status_code == status
                assert answer.text == "unusual"
            assert (await client.get("/who", headers={"Host": "app.localhost"})).text == "a"
        answer = await _raw_exchange(
            gw.ports[0],
            b"GET /bare-status HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 599 \r\n")  # The space the syntax requires.
        assert answer.endswith(b"\r\n\r\nunusual")


class RefusingWaker:
    """A scale-to-zero waker that turns every request away with one status."""

    def __init__(self, status: int) -> None:
        self.status = status

    async def wake(self, workload_id: str, listen_port: int) -> WakeOutcome:
        return WakeOutcome(None, self.status, "refused", f"{workload_id} stays asleep")


async def test_the_gateways_own_answers_carry_a_reason_for_any_status() -> None:
    for status, reason in ((507, b"Insufficient Storage"), (599, b"")):
        async with gateway() as (gw, table, _url):
            gw.waker = RefusingWaker(status)
            table.set_routes({key(gw, "sleepy"): Route("sleepy", ())})
            answer = await _raw_exchange(
                gw.ports[0],
                b"GET / HTTP/1.1\r\nHost: sleepy.localhost\r\nConnection: close\r\n\r\n",
            )
        status_line = answer.split(b"\r\n", 1)[0]
        assert status_line == b"HTTP/1.1 %d %b" % (status, reason)
        assert b'"code": "refused"' in answer


async def test_websocket_upgrades_still_pass() -> None:
    async with echo_behind_gateway() as gw, connect_through(gw) as ws:
        await ws.send("still here")
        assert await ws.recv() == "still here"
