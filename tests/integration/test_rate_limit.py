"""Rate limiting per caller, and the per-task log cap, on a server with small settings.

The shared test server raises the rate limit (its suites poll the API); this module's own
server (about 2 s to start) allows 1 request per second with bursts of 3, and keeps at most
64 KiB of output per task.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response
from websockets.sync.client import connect

from berth.testing.waiting import wait_for
from tests.support.api import create
from tests.support.server import BerthServer

pytestmark = pytest.mark.engine

PER_SECOND = 1
BURST = 3
LOG_MAX_BYTES = 65536


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("berth-limited")) / "data",
        env={
            "BERTH_RATE_LIMIT_PER_SECOND": str(PER_SECOND),
            "BERTH_RATE_LIMIT_BURST": str(BURST),
            "BERTH_LOG_MAX_BYTES": str(LOG_MAX_BYTES),
        },
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def exhaust(
    client: httpx.Client, path: str = "/v1/compute", *, at_least: int = BURST
) -> httpx.Response:
    """Request until refused; the refusal. At least `at_least` requests must have been
    served first (more only if the machine is slow enough for the bucket to refill)."""
    served = 0
    for _ in range(BURST + 20):
        response = client.get(path)
        if response.status_code == 429:
            assert served >= at_least, f"refused after only {served} requests"
            return response
        assert response.status_code == 200, response.text
        served += 1
    raise AssertionError(f"never refused after {served} requests")


def test_a_key_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected(
    limited: BerthServer,
) -> None:
    first, second = limited.new_tenant(), limited.new_tenant()
    refused = exhaust(first.client)
    retry_after = int(refused.headers["Retry-After"])
    assert retry_after >= 1
    body = refused.json()
    assert body["code"] == "rate_limited" and body["retry_after"] == retry_after
    assert body["limit"] == {"per_second": PER_SECOND, "burst": BURST, "per": "api_key"}
    assert "BERTH_RATE_LIMIT_PER_SECOND" in body["error"]
    # Another key, from the same address, still has its whole burst.
    for _ in range(BURST):
        assert second.client.get("/v1/compute").status_code == 200
    # The Containers API is limited the same way (the same bucket: nothing is left of it).
    containers = exhaust(first.client, "/compute/containers", at_least=0)
    assert containers.json()["code"] == "rate_limited" and "Retry-After" in containers.headers
    # Health checks are never limited.
    for _ in range(BURST + 2):
        assert httpx.get(limited.url + "/healthz", timeout=10).status_code == 200
        assert httpx.get(limited.url + "/readyz", timeout=10).status_code == 200
    # The bucket refills: the refused key is served again, having done nothing but wait.
    wait_for(
        lambda: first.client.get("/v1/compute").status_code == 200,
        timeout=30,
        interval=0.5,
        what="the first key's bucket to refill",
    )


def test_a_websocket_handshake_counts_as_a_request(limited: BerthServer) -> None:
    tenant = limited.new_tenant()
    ws_url = limited.url.replace("http", "ws") + f"/compute/ws?token={tenant.key}"
    with connect(ws_url, open_timeout=30) as socket:
        assert '"containers"' in str(socket.recv(timeout=30))

    def refused_handshake() -> Response | None:
        exhaust(tenant.client, "/compute/containers", at_least=0)
        try:
            connect(ws_url, open_timeout=30).close()  # a token came back in between
        except InvalidStatus as refused:
            return refused.response
        return None

    response = wait_for(refused_handshake, timeout=60, interval=0, what="a refused handshake")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1


def test_a_job_keeps_at_most_the_log_cap_of_output(limited: BerthServer) -> None:
    """A job printing 1 MB keeps at most `BERTH_LOG_MAX_BYTES` of it, read after the run
    (from the archive); the polling below stays within the rate limit by honouring 429s."""
    tenant = limited.new_tenant()
    job = create(
        tenant.client,
        name="chatty",
        type="job",
        command="yes $(head -c 999 /dev/zero | tr '\\0' y) | head -n 1000",
    )

    def finished() -> bool:
        response = tenant.client.get(f"/v1/compute/{job['id']}")
        if response.status_code == 429:
            return False
        runs = response.json()["recent_runs"]
        return bool(runs) and runs[0]["status"] == "succeeded"

    wait_for(finished, timeout=60, interval=1.1, what="the job to succeed")
    logs = wait_for(
        lambda: (
            (r := tenant.client.get(f"/v1/compute/{job['id']}/logs")).status_code == 200
            and r.json()
        ),
        timeout=30,
        interval=1.1,
        what="the job's logs",
    )
    kept = sum(len(event["message"]) + 1 for event in logs["events"])
    assert 0 < kept <= LOG_MAX_BYTES, kept
    assert logs["live"] is False


def test_sign_in_attempts_are_limited_per_client_address(limited: BerthServer) -> None:
    """Sign-in takes no credential, so its attempts are charged to the client address,
    whichever e-mail addresses they try. (From 127.0.0.2: an address of its own, leaving
    127.0.0.1's bucket to the test below.)"""
    elsewhere = httpx.Client(
        base_url=limited.url,
        timeout=30,
        transport=httpx.HTTPTransport(local_address="127.0.0.2"),
    )
    for attempt in range(BURST + 20):
        response = elsewhere.post(
            "/v1/auth/sign-in",
            json={"email": f"guess-{attempt}@example.com", "password": "guess"},
        )
        if response.status_code == 429:
            break
        assert response.status_code == 401, response.text
    else:
        raise AssertionError("sign-in attempts were never limited")
    assert attempt >= BURST
    assert response.json()["code"] == "rate_limited"
    assert response.json()["limit"]["per"] == "client_address"
    elsewhere.close()


def test_unauthenticated_and_made_up_credentials_are_limited_per_address(
    limited: BerthServer,
) -> None:
    """Runs last: it empties the address's bucket, which then refuses every caller from
    that address until it refills. Rotating made-up keys buys no extra attempts."""
    anonymous = httpx.Client(base_url=limited.url, timeout=30)
    failures = 0
    for attempt in range(BURST + 20):
        made_up = {"Authorization": f"Bearer nv_sk_made-up-{attempt}"}
        response = anonymous.get("/v1/compute", headers=made_up)
        if response.status_code == 429:
            break
        assert response.status_code == 401, response.text
        failures += 1
    else:
        raise AssertionError("made-up keys were never refused")
    assert failures >= BURST
    assert response.json()["limit"]["per"] == "client_address"
    assert anonymous.get("/v1/compute").status_code == 429
    assert httpx.get(limited.url + "/healthz", timeout=10).status_code == 200
    wait_for(
        lambda: anonymous.get("/v1/compute").status_code == 401,
        timeout=30,
        interval=0.5,
        what="the address's bucket to refill",
    )
    anonymous.close()
