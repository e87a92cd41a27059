"""The HTTP gateway limits new connections per client address: past the burst, a client's
new connection is answered 429 with Retry-After, while other clients, and requests on
connections already open, are not affected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from berth.gateway.http.proxy import HttpGateway
from berth.gateway.http.route_table import Route, RouteTable
from berth.testing.server import free_port
from berth.token_buckets import TokenBuckets
from tests.support.http_gateway import Upstream
from tests.support.server import BerthServer

BURST = 3


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """A server whose gateway lets each address open 3 connections, then one per 100 s."""
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("connlimit")) / "data",
        env={
            "BERTH_GATEWAY_CONNECTIONS_PER_SECOND": "0.01",
            "BERTH_GATEWAY_CONNECTION_BURST": str(BURST),
        },
    )
    srv.start()
    yield srv
    srv.stop()


def client_from(server: BerthServer, address: str) -> httpx.Client:
    """A client whose connections come from `address` (all of 127/8 is loopback)."""
    return httpx.Client(
        base_url=f"http://127.0.0.1:{server.gateway_port}",
        transport=httpx.HTTPTransport(local_address=address),
        headers={"Host": "nothing-here.localhost"},
        timeout=10,
    )


@pytest.mark.engine
def test_a_client_past_its_connection_burst_gets_429_and_others_get_through(
    limited_server: BerthServer,
) -> None:
    for _ in range(BURST):  # each a new connection (an error answer closes it)
        with client_from(limited_server, "127.0.0.1") as fresh:
            assert fresh.get("/").json()["code"] == "no_route"
    with client_from(limited_server, "127.0.0.1") as over:
        refused = over.get("/")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 100
    body = refused.json()
    assert body["code"] == "rate_limited" and body["workload"] is None
    assert body["error"].startswith("too many new connections from 127.0.0.1")
    with client_from(limited_server, "127.0.0.2") as other:
        assert other.get("/").json()["code"] == "no_route"


async def test_requests_on_a_kept_alive_connection_are_not_limited() -> None:
    """Only opening a connection takes from the bucket (in-process gateway, loopback
    upstream): a client's kept-alive connection serves any number of requests."""
    async with Upstream("a") as upstream:
        table = RouteTable("localhost")
        gateway = HttpGateway(
            host="127.0.0.1",
            port=free_port(),
            route_table=table,
            runtime=None,
            connection_limit=TokenBuckets(rate=0.01, burst=2),
        )
        await gateway.start()
        port = gateway.ports[0]
        table.set_routes({("app", port): Route("app", (upstream.address,))})
        url, host = f"http://127.0.0.1:{port}/who", {"Host": "app.localhost"}
        try:
            async with httpx.AsyncClient(timeout=10) as kept_alive:
                for _ in range(20):
                    assert (await kept_alive.get(url, headers=host)).text == "a"
                async with httpx.AsyncClient(timeout=10) as second:
                    assert (await second.get(url, headers=host)).text == "a"
                async with httpx.AsyncClient(timeout=10) as third:
                    assert (await third.get(url, headers=host)).status_code == 429
                assert (await kept_alive.get(url, headers=host)).text == "a"
        finally:
            await gateway.stop()
