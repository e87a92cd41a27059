"""The HTTP gateway: routing by Host to a real berth service, error pages, streaming a large
body without buffering, WebSocket passthrough, replica spreading and route swaps under load.

The gateway runs in the test process on a free loopback port; the service test builds its
table with `load_routes` from a real server's store and engine, the others route to small
Python upstreams on loopback through `RouteTable.set_routes`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from berth.domain import labels
from berth.gateway.http.proxy import GatewayTimeouts
from berth.gateway.http.route_table import (
    LoopbackAddress,
    Route,
    TaskPort,
    load_routes,
)
from berth.runtime.factory import create_runtime
from berth.server.bootstrap import open_domain
from berth.testing.server import free_port
from berth.testing.waiting import poll
from tests.support.api import create, wait_workload
from tests.support.http_gateway import Upstream, connect_through, echo_behind_gateway, gateway, key
from tests.support.server import BerthServer, Tenant

HTTPD = "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www"


# --- a real berth service through the gateway ------------------------------------------------


@pytest.mark.engine
async def test_a_service_is_routed_by_host_and_unknown_hosts_get_503(
    tenant: Tenant, server: BerthServer
) -> None:
    svc = await asyncio.to_thread(
        create, tenant.client, name="web", type="service", command=HTTPD, port=8080, replicas=2
    )
    await asyncio.to_thread(
        wait_workload,
        tenant.client,
        svc["id"],
        lambda s: s["status"] == "running" and s["running_tasks"] == 2,
    )
    runtime = create_runtime(server.settings().docker_host)
    domain = await open_domain(server.settings(), runtime=runtime)
    try:
        async with gateway(runtime=runtime) as (gw, table, url):
            listen = gw.ports[0]
            routes = await load_routes(domain, http_port=listen)
            route = routes[(svc["id"], listen)]
            assert len(route.upstreams) == 2
            assert all(isinstance(u, LoopbackAddress) for u in route.upstreams)
            table.set_routes(routes)
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                host = f"{svc['id']}.localhost:{listen}"

                async def served() -> bool:
                    response = await client.get("/", headers={"Host": host})
                    return response.status_code == 200 and response.text.strip() == "hi"

                # httpd may still be coming up right after the task starts.
                await poll(served, 15, interval=0.2, what="the service to answer")
                for _ in range(6):  # both replicas, keep-alive to the client
                    assert await served()

                missing = await client.get("/", headers={"Host": "nothere.localhost"})
                assert missing.status_code == 503
                assert missing.json() == {
                    "error": "no service at nothere.localhost",
                    "code": "no_route",
                    "workload": None,
                }
                foreign = await client.get("/", headers={"Host": "example.com"})
                assert foreign.status_code == 503

                # A port the task does not publish (a container's ingress target) is reached
                # inside the task's network namespace.
                tasks = await runtime.list_tasks(
                    labels.workload_selector(domain.instance_id, svc["id"])
                )
                inside = TaskPort(tasks[0].task_id, 8080)
                table.set_routes({**routes, ("inner", listen): Route("inner", (inside,))})
                for _ in range(3):
                    through = await client.get("/", headers={"Host": "inner.localhost"})
                    assert through.status_code == 200 and through.text.strip() == "hi"

            # Stopped: the route stays but has no task, and the answer says so.
            stopped = await asyncio.to_thread(tenant.client.post, f"/v1/compute/{svc['id']}/stop")
            assert stopped.status_code == 200
            await asyncio.to_thread(
                wait_workload, tenant.client, svc["id"], lambda s: s["running_tasks"] == 0
            )
            table.set_routes(await load_routes(domain, http_port=listen))
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                down = await client.get("/", headers={"Host": f"{svc['id']}.localhost"})
                assert down.status_code == 503
                assert down.json()["code"] == "no_running_task"
                assert svc["id"] in down.json()["error"]
    finally:
        await domain.store.close()
        await runtime.close()


# --- protocol behaviour against loopback upstreams ------------------------------------------


async def test_forwarded_headers_and_error_pages() -> None:
    async with (
        Upstream("a") as up,
        gateway(timeouts=GatewayTimeouts(upstream=0.5)) as (gw, table, url),
    ):
        table.set_routes(
            {
                key(gw, "app"): Route("app", (up.address,)),
                key(gw, "dead"): Route("dead", (LoopbackAddress("127.0.0.1", free_port()),)),
                key(gw, "idle"): Route("idle", ()),
            }
        )
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            seen = await client.get(
                "/headers",
                headers={"Host": "App.localhost:8080", "X-Forwarded-For": "10.1.1.1"},
            )
            assert seen.status_code == 200
            assert "x-forwarded-for: 10.1.1.1, 127.0.0.1" in seen.text
            assert "x-forwarded-proto: http" in seen.text
            assert "x-forwarded-host: App.localhost:8080" in seen.text

            refused = await client.get("/", headers={"Host": "dead.localhost"})
            assert refused.status_code == 502
            assert refused.json()["workload"] == "dead"
            assert "dead" in refused.json()["error"]

            slow = await client.get("/hang", headers={"Host": "app.localhost"})
            assert slow.status_code == 504
            assert slow.json()["code"] == "upstream_timeout"

            idle = await client.get("/", headers={"Host": "idle.localhost"})
            assert idle.status_code == 503 and idle.json()["code"] == "no_running_task"

            # The connection survives error pages and keeps working.
            again = await client.get("/who", headers={"Host": "app.localhost"})
            assert again.text == "a"


async def test_large_bodies_stream_both_ways_without_buffering() -> None:
    size = 50 * 1024 * 1024
    block = b"z" * (1024 * 1024)
    async with Upstream("a") as up, gateway() as (gw, table, url):
        table.set_routes({key(gw, "app"): Route("app", (up.address,))})

        # Upload with Content-Length, checked end to end.
        async def body() -> AsyncIterator[bytes]:
            for _ in range(size // len(block)):
                yield block

        expected = hashlib.sha256(block * (size // len(block))).hexdigest()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            sha = await client.post(
                "/sha",
                content=body(),
                headers={"Host": "app.localhost", "Content-Length": str(size)},
            )
            assert sha.status_code == 200 and sha.text == expected

            # Chunked download of 50 MB.
            received = 0
            async with client.stream("GET", "/big?mb=50", headers={"Host": "app.localhost"}) as r:
                async for chunk in r.aiter_raw():
                    received += len(chunk)
            assert received == size

        # Echo: the first echoed bytes come back while most of the upload is still to send,
        # so the gateway forwards as it goes instead of collecting the body.
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.ports[0])
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        sent_at_first_byte: int | None = None

        async def upload() -> None:
            nonlocal sent
            for _ in range(size // len(block)):
                writer.write(b"%x\r\n%b\r\n" % (len(block), block))
                await writer.drain()
                sent += len(block)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

        sending = asyncio.create_task(upload())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        echoed = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            n = int(line.strip(), 16)
            if n == 0:
                await reader.readuntil(b"\r\n")
                break
            await reader.readexactly(n + 2)
            if sent_at_first_byte is None:
                sent_at_first_byte = sent
            echoed += n
        await sending
        writer.close()
        assert echoed == size
        assert sent_at_first_byte is not None and sent_at_first_byte < size // 4


async def test_websocket_echo_through_the_gateway() -> None:
    async with echo_behind_gateway() as gw, connect_through(gw, "/chat") as ws:
        for text in ("hello", "x" * 200_000):
            await ws.send(text)
            assert await ws.recv() == text
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"


async def test_replicas_share_requests_round_robin() -> None:
    async with Upstream("a") as a, Upstream("b") as b, gateway() as (gw, table, url):
        table.set_routes({key(gw, "app"): Route("app", (a.address, b.address))})
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            names = [
                (await client.get("/who", headers={"Host": "app.localhost"})).text
                for _ in range(10)
            ]
        assert names.count("a") == 5 and names.count("b") == 5

        # A replica that went away costs no request: the next one is tried.
        dead = LoopbackAddress("127.0.0.1", free_port())
        table.set_routes({key(gw, "app"): Route("app", (dead, a.address))})
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for _ in range(4):
                assert (await client.get("/who", headers={"Host": "app.localhost"})).text == "a"


async def test_route_updates_under_load_drop_no_request() -> None:
    async with Upstream("a") as a, Upstream("b") as b, gateway() as (gw, table, url):
        tables = [
            {key(gw, "app"): Route("app", (a.address,))},
            {key(gw, "app"): Route("app", (b.address,))},
            {key(gw, "app"): Route("app", (a.address, b.address))},
        ]
        table.set_routes(tables[2])
        stop = asyncio.Event()
        statuses: list[int] = []

        async def load(path: str) -> None:
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                while not stop.is_set():
                    response = await client.get(path, headers={"Host": "app.localhost"})
                    statuses.append(response.status_code)

        workers = [asyncio.create_task(load("/who")) for _ in range(6)]
        workers += [asyncio.create_task(load("/slow")) for _ in range(2)]
        # Bounded by work done, not by time: a busy machine takes longer to do as much.
        deadline = time.monotonic() + 60
        turn = 0
        while turn < 150 or len(statuses) < 300:
            assert time.monotonic() < deadline, f"{turn} swaps, {len(statuses)} answers in 60 s"
            table.set_routes(tables[turn % 3])
            turn += 1
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*workers)
        assert set(statuses) == {200}
        assert a.requests > 0 and b.requests > 0


# --- pipelining, deadlines and closing (each of these once failed) ---------------------------


async def _read_answers(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    """`count` whole responses (each with a Content-Length) from a raw connection."""
    answers = []
    for _ in range(count):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        answers.append(head + await reader.readexactly(length))
    return answers


async def test_many_pipelined_requests_behind_a_slow_one_are_all_answered_in_order() -> None:
    """Requests answered at once (no route) behind a slow one: all answered, in order,
    and the gateway's timeouts still work afterwards."""
    timeouts = GatewayTimeouts(upstream=1.0)
    async with Upstream("a") as a, gateway(timeouts=timeouts) as (gw, table, _url):
        table.set_routes({key(gw, "app"): Route("app", (a.address,))})
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.ports[0])
        unknown = b"GET / HTTP/1.1\r\nHost: nothing.localhost\r\n\r\n" * 600
        writer.write(b"GET /slow HTTP/1.1\r\nHost: app.localhost\r\n\r\n" + unknown)
        answers = await _read_answers(reader, 601)
        assert answers[0].startswith(b"HTTP/1.1 200") and answers[0].endswith(b"a")
        assert all(answer.startswith(b"HTTP/1.1 503") for answer in answers[1:])
        # The deadline sweep survived: a request the upstream never answers gets its 504.
        writer.write(b"GET /hang HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        (timed_out,) = await _read_answers(reader, 1)
        assert timed_out.startswith(b"HTTP/1.1 504")
        writer.close()


async def test_a_pipelined_request_keeps_its_deadline_and_its_body() -> None:
    timeouts = GatewayTimeouts(upstream=1.0)
    async with Upstream("a") as a, gateway(timeouts=timeouts) as (gw, table, _url):
        table.set_routes({key(gw, "app"): Route("app", (a.address,))})
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.ports[0])
        # A request in flight keeps its deadline when another is pipelined behind it.
        writer.write(b"GET /hang HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        await asyncio.sleep(0.2)
        writer.write(b"GET /who HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        hang, who = await _read_answers(reader, 2)
        assert hang.startswith(b"HTTP/1.1 504") and who.endswith(b"a")
        # A pipelined request's body that arrives later still reaches its upstream.
        body = b"pipelined body"
        writer.write(
            b"GET /slow HTTP/1.1\r\nHost: app.localhost\r\n\r\n"
            b"POST /sha HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        await asyncio.sleep(0.1)
        writer.write(body)
        slow, sha = await _read_answers(reader, 2)
        assert slow.startswith(b"HTTP/1.1 200")
        assert sha.endswith(hashlib.sha256(body).hexdigest().encode())
        writer.close()


async def test_a_websocket_closed_half_by_half_leaves_nothing_open() -> None:
    async with echo_behind_gateway() as gw:
        for _ in range(5):
            async with connect_through(gw) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
        for _ in range(200):  # up to 10 s: the sockets close as both sides' FINs arrive
            if not gw.clients and not gw.upstreams:
                break
            await asyncio.sleep(0.05)
        assert not gw.clients and not gw.upstreams
