"""Input limits of both API dialects, against a real server: request bodies (413), request
heads (431), and every bounded field of the create and update bodies.

Each over-limit request gets its 4xx JSON error naming the field and the rule, and leaves
nothing behind; each request exactly at a limit succeeds. WebSocket messages are capped like
bodies. Rate limiting and the log cap need a server with small settings: test_rate_limit.py.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from berth.schemas.limits import (
    MAX_COMMAND_ARGS,
    MAX_COMMAND_CHARS,
    MAX_ENV_TOTAL_BYTES,
    MAX_ENVIRONMENT_BYTES,
    MAX_EXEC_STDIN_CHARS,
    MAX_SECRETS,
)
from tests.support.api import assert_refused, create, wait_workload
from tests.support.keys import new_public_key
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine

MAX_BODY = 1024 * 1024
"""The default `BERTH_MAX_REQUEST_BYTES`, which the shared test server keeps."""
MAX_HEAD = 64 * 1024
"""The default `BERTH_MAX_REQUEST_HEAD_BYTES`."""
YEARLY = "0 0 1 1 *"


def schedule(**overrides: Any) -> dict[str, Any]:
    """A schedule that fires once a year: creating it starts no task."""
    base = {"name": "yearly", "type": "schedule", "image": TEST_IMAGE, "schedule_expr": YEARLY}
    return base | overrides


def names(client: httpx.Client) -> list[str]:
    return sorted(w["name"] for w in client.get("/v1/compute").json()["workloads"])


@pytest.fixture
def account(tenant: Tenant) -> Iterator[Tenant]:
    """The tenant, checked to hold no workload after the test beyond the ones it made."""
    assert names(tenant.client) == []
    yield tenant


def raw_request(server: BerthServer, head: bytes) -> tuple[int | None, bytes]:
    """Send bytes on a fresh connection; the status and body of the answer (read to close).

    The status is None when the server reset the connection before any answer arrived (it
    closes with part of a refused request unread, which the kernel turns into a reset)."""
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        try:
            sock.sendall(head)
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    if not received:
        return None, b""
    head_part, _, payload = received.partition(b"\r\n\r\n")
    return int(head_part.split(b" ", 2)[1]), payload


# Request bodies ------------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
    server: BerthServer, account: Tenant
) -> None:
    """The 413 comes back while the client has sent only the head: the body is never read."""
    head = (
        "POST /v1/compute HTTP/1.1\r\nHost: berth\r\n"
        f"Authorization: Bearer {account.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * MAX_BODY}\r\n\r\n"
    ).encode()
    status, payload = raw_request(server, head)
    assert status == 413
    body = json.loads(payload)
    assert body["code"] == "request_too_large" and body["limit_bytes"] == MAX_BODY
    assert "BERTH_MAX_REQUEST_BYTES" in body["error"] and str(MAX_BODY) in body["error"]
    assert names(account.client) == []


@pytest.mark.parametrize("path", ["/v1/compute", "/compute/containers"])
def test_a_streamed_body_is_cut_at_the_limit(
    server: BerthServer, account: Tenant, path: str
) -> None:
    """No Content-Length (chunked): counted while it streams, refused once past the limit,
    in both dialects, and nothing is created."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield json.dumps(schedule())[:-1].encode() + b', "pad": "'
        while sent < 4 * MAX_BODY:
            sent += 65536
            yield b"x" * 65536

    response = account.client.post(path, content=chunks())
    assert_refused(response, status=413, field=None, code="request_too_large")
    assert names(account.client) == []
    assert account.client.get("/compute/containers").json()["containers"] == []


def test_a_body_exactly_at_the_limit_is_read(account: Tenant) -> None:
    body = json.dumps(schedule()).encode()
    padded = body[:-1] + b" " * (MAX_BODY - len(body)) + b"}"
    assert len(padded) == MAX_BODY
    response = account.client.post("/v1/compute", content=padded)
    assert response.status_code == 201, response.text
    over = body[:-1] + b" " * (MAX_BODY - len(body) + 1) + b"}"
    assert_refused(account.client.post("/v1/compute", content=over), status=413, field=None)
    assert names(account.client) == ["yearly"]


# Request heads ---------------------------------------------------------------------------


def test_request_heads_over_the_limit_get_431(server: BerthServer, account: Tenant) -> None:
    """Headers are capped by berth (uvicorn's httptools parser would buffer any size)."""
    start = f"GET /v1/compute HTTP/1.1\r\nHost: berth\r\nAuthorization: Bearer {account.key}\r\n"
    under = "".join(f"X-Pad-{i}: {'a' * 90}\r\n" for i in range(600))  # ~60 KB
    status, payload = raw_request(server, (start + under + "Connection: close\r\n\r\n").encode())
    assert status == 200, payload
    many = "".join(f"X-Pad-{i}: {'a' * 90}\r\n" for i in range(1200))  # ~120 KB
    status, payload = raw_request(server, (start + many + "\r\n").encode())
    assert status == 431
    body = json.loads(payload)
    assert body["code"] == "request_head_too_large" and body["limit_bytes"] == MAX_HEAD
    assert "BERTH_MAX_REQUEST_HEAD_BYTES" in body["error"]
    one_huge = start + "X-Big: " + "a" * (4 * MAX_HEAD) + "\r\n\r\n"
    status, _ = raw_request(server, one_huge.encode())
    assert status in (431, None)  # refused, whether or not the answer outran the reset
    assert account.client.get("/v1/compute").status_code == 200


def test_an_idle_keep_alive_connection_outlives_the_clients_own_idle_timeout(
    server: BerthServer,
) -> None:
    """A connection idle for longer than httpx's 5 s keep-alive (uvicorn's default too)
    still answers: berth keeps idle connections 75 s, so a client or load balancer closes
    them first, and never sends a request into a close (which meets a reset)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: berth\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        stream = sock.makefile("rb")
        for attempt in range(2):
            if attempt:
                time.sleep(6)  # the idle time under test, not a wait for an event
            sock.sendall(request)
            status_line = stream.readline()
            assert status_line.startswith(b"HTTP/1.1 200"), status_line
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            stream.read(length)


# Fields of the Workloads API -----------------------------------------------------------

WORKLOAD_OVER_LIMIT = [
    pytest.param(
        {"command": "x" * (MAX_COMMAND_CHARS + 1)},
        "command",
        "at most 65536 characters",
        id="command-string",
    ),
    pytest.param(
        {"command": ["x"] * (MAX_COMMAND_ARGS + 1)},
        "command",
        "at most 1000 arguments",
        id="command-args",
    ),
    pytest.param(
        {"command": ["true", "x" * (MAX_COMMAND_CHARS + 1)]},
        "command",
        "argument 1 is longer than 65536",
        id="command-one-argument",
    ),
    pytest.param(
        {"command": ["x" * MAX_COMMAND_CHARS] * 4 + ["y"]},
        "command",
        "262144 characters in all",
        id="command-total",
    ),
    pytest.param(
        {"env": {f"V{i}": "" for i in range(201)}}, "env", "at most 200", id="env-entries"
    ),
    pytest.param({"env": {"V": "x" * 65537}}, "env.V", "at most 65536 characters", id="env-value"),
    pytest.param({"env": {"K" * 129: ""}}, "env", "128", id="env-name-length"),
    pytest.param({"env": {"BAD-NAME": ""}}, "env", "pattern", id="env-name-charset"),
    pytest.param(
        {"env": {f"V{i}": "x" * 60000 for i in range(5)}},
        "env",
        "262144 bytes of names and values",
        id="env-total",
    ),
    pytest.param({"name": "n" * 64}, "name", "pattern", id="name-length"),
    pytest.param({"name": "Not_A_Label"}, "name", "pattern", id="name-charset"),
    pytest.param({"image": "i" * 513}, "image", "at most 512", id="image-length"),
    pytest.param({"image": "bad image"}, "image", "pattern", id="image-charset"),
    pytest.param(
        {"schedule_expr": "*" * 201}, "schedule_expr", "at most 200", id="schedule-length"
    ),
]


@pytest.mark.parametrize(("override", "field", "rule"), WORKLOAD_OVER_LIMIT)
def test_workload_fields_over_their_limits_are_refused(
    account: Tenant, override: dict[str, Any], field: str, rule: str
) -> None:
    response = account.client.post("/v1/compute", json=schedule(**override))
    body = assert_refused(response, status=422, field=field, code="invalid_request")
    assert rule in body["error"], body
    assert names(account.client) == []


def test_workload_fields_exactly_at_their_limits_are_accepted(account: Tenant) -> None:
    env_value = "x" * (MAX_ENV_TOTAL_BYTES // 4 - len("V0") - 2)
    at_limit = [
        {"name": "a" * 63, "command": "x" * MAX_COMMAND_CHARS, "image": "i" * 512},
        {"name": "args", "command": ["x"] * MAX_COMMAND_ARGS},
        {"name": "total", "command": ["x" * MAX_COMMAND_CHARS] * 4},
        {"name": "entries", "env": {f"V{i}": "" for i in range(200)}},
        {"name": "envtotal", "env": {f"V{i}": env_value for i in range(4)}},
    ]
    for override in at_limit:
        response = account.client.post("/v1/compute", json=schedule(**override))
        assert response.status_code == 201, (override.keys(), response.text[:300])
    assert len(names(account.client)) == len(at_limit)


def test_secrets_are_bounded_per_value_and_per_environment(account: Tenant) -> None:
    """Each value is at most 64 KiB; env and secrets together at most 512 KiB (so a task
    can always start); a refused secret is not stored."""
    workload = create(account.client, **schedule(env={"BASE": "b" * 60000}))
    secrets_url = f"/v1/compute/{workload['id']}/secrets"
    too_long = account.client.post(secrets_url, json={"key": "S", "value": "x" * 65537})
    assert_refused(too_long, status=422, field="value")
    budget = MAX_ENVIRONMENT_BYTES - (len("BASE") + 60000 + 2)
    value = "v" * 60000
    count = 0
    while budget >= len(value) + 4:
        set_ = account.client.post(secrets_url, json={"key": f"S{count}", "value": value})
        assert set_.status_code == 200, set_.text
        budget -= len(value) + len(f"S{count}") + 2
        count += 1
    refused = account.client.post(secrets_url, json={"key": "LAST", "value": value})
    body = assert_refused(refused, status=422, field="value", code="invalid_request")
    assert "524288 bytes" in body["error"] and "env and secrets" in body["error"]
    keys = [s["key"] for s in account.client.get(secrets_url).json()["secrets"]]
    assert "LAST" not in keys and len(keys) == count
    fits = account.client.post(secrets_url, json={"key": "LAST", "value": "v" * (budget - 6)})
    assert fits.status_code == 200, fits.text


def test_the_number_of_secrets_is_bounded(account: Tenant) -> None:
    workload = create(account.client, **schedule())
    secrets_url = f"/v1/compute/{workload['id']}/secrets"
    for i in range(MAX_SECRETS):
        response = account.client.post(secrets_url, json={"key": f"K{i}", "value": "v"})
        assert response.status_code == 200, response.text
    refused = account.client.post(secrets_url, json={"key": "ONE_MORE", "value": "v"})
    body = assert_refused(refused, status=422, field="key")
    assert f"at most {MAX_SECRETS} secrets" in body["error"]
    replaced = account.client.post(secrets_url, json={"key": "K0", "value": "new"})
    assert replaced.status_code == 200, replaced.text
    assert len(account.client.get(secrets_url).json()["secrets"]) == MAX_SECRETS


# Exec and shell -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        pytest.param(
            {"command": "cat", "stdin": "x" * (MAX_EXEC_STDIN_CHARS + 1)},
            "stdin",
            "at most 524288",
            id="stdin",
        ),
        pytest.param(
            {"command": "x" * (MAX_COMMAND_CHARS + 1)}, "command", "at most 65536", id="command"
        ),
        pytest.param({"command": "true", "task": "r" * 65}, "task", "at most 64", id="task"),
    ],
)
def test_exec_fields_over_their_limits_are_refused(
    account: Tenant, body: dict[str, Any], field: str, rule: str
) -> None:
    """Refused on the body alone, before any task is looked for (there is none here)."""
    response = account.client.post("/v1/compute/000000000000/exec", json=body)
    refused = assert_refused(response, status=422, field=field)
    assert rule in refused["error"]


def test_a_shell_request_naming_an_overlong_task_is_refused(account: Tenant) -> None:
    response = account.client.post("/v1/compute/000000000000/shell", json={"task": "r" * 65})
    assert_refused(response, status=422, field="task")


def test_exec_stdin_at_its_limit_reaches_the_command(server: BerthServer) -> None:
    """512 KiB of stdin fits in a request under the 1 MiB body limit. (Exec output is
    capped at 1 MiB per stream: test_exec_and_shell.py proves it through the API.)"""
    tenant = server.new_tenant()
    svc = create(tenant.client, name="box", type="service", command="exec sleep 3600")
    try:
        wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 1, timeout=60)
        response = tenant.client.post(
            f"/v1/compute/{svc['id']}/exec",
            json={"command": "wc -c", "stdin": "s" * MAX_EXEC_STDIN_CHARS},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert response.json()["stdout"].strip() == str(MAX_EXEC_STDIN_CHARS)
    finally:
        tenant.client.delete(f"/v1/compute/{svc['id']}")
        tenant.client.close()


# Approvals ------------------------------------------------------------------------------


def test_approval_fields_over_their_limits_are_refused(account: Tenant) -> None:
    note = account.client.post("/v1/approvals/apr_x/reject", json={"note": "n" * 2001})
    assert_refused(note, status=422, field="note")
    policy = account.client.put(
        "/v1/approvals/policy", json={"gated_actions": ["exec"] * 11, "ttl_seconds": 3600}
    )
    assert_refused(policy, status=422, field="gated_actions")


# Fields of the Containers API (400, as its document says) ------------------------------


@pytest.fixture
def key_id(account: Tenant, tmp_path: Path) -> int:
    response = account.client.post(
        "/compute/ssh-keys", json={"name": "k" * 100, "public_key": new_public_key(tmp_path)}
    )
    assert response.status_code == 201, response.text  # a name at its limit
    created: int = response.json()["id"]
    return created


@pytest.mark.parametrize(
    ("override", "field", "rule"),
    [
        pytest.param({"name": "n" * 64}, "name", "at most 63", id="name-length"),
        pytest.param({"name": "two\nlines"}, "name", "pattern", id="name-control-chars"),
        pytest.param(
            {"instance_type": "t" * 65}, "instance_type", "at most 64", id="instance-type"
        ),
        pytest.param(
            {"ssh_key_ids": list(range(1, 102))}, "ssh_key_ids", "at most 100", id="key-ids"
        ),
        pytest.param({"ssh_key_ids": [2**31]}, "ssh_key_ids", "2147483647", id="key-id-beyond-ids"),
        pytest.param(
            {"mount_paths": [f"/d{i}" for i in range(21)]},
            "mount_paths",
            "at most 20",
            id="mount-count",
        ),
        pytest.param(
            {"mount_paths": ["/" + "m" * 255]}, "mount_paths", "at most 255", id="mount-length"
        ),
        pytest.param({"image": "i" * 513}, "image", "at most 512", id="image"),
    ],
)
def test_container_fields_over_their_limits_are_refused(
    account: Tenant, key_id: int, override: dict[str, Any], field: str, rule: str
) -> None:
    body = {"name": "box", "ssh_key_ids": [key_id], **override}
    response = account.client.post("/compute/containers", json=body)
    refused = assert_refused(response, status=400, field=field)
    assert rule in refused["error"], refused
    assert account.client.get("/compute/containers").json()["containers"] == []


@pytest.mark.parametrize(
    ("override", "field"),
    [
        pytest.param({"name": "k" * 101}, "name", id="name-length"),
        pytest.param({"name": "tab\there"}, "name", id="name-control-chars"),
        pytest.param({"public_key": "ssh-ed25519 " + "A" * 16384}, "public_key", id="key-size"),
    ],
)
def test_ssh_key_fields_over_their_limits_are_refused(
    account: Tenant, tmp_path: Path, override: dict[str, Any], field: str
) -> None:
    body = {"name": "laptop", "public_key": new_public_key(tmp_path), **override}
    response = account.client.post("/compute/ssh-keys", json=body)
    assert_refused(response, status=400, field=field)
    assert account.client.get("/compute/ssh-keys").json()["ssh_keys"] == []


def test_an_ssh_key_id_beyond_every_id_is_refused(account: Tenant) -> None:
    """No key has an id over 2**31 - 1 (a 32-bit column on PostgreSQL): a larger one is
    refused naming `key_id`, on either store, rather than reaching the database."""
    refused = assert_refused(
        account.client.delete(f"/compute/ssh-keys/{2**31}"), status=400, field="key_id"
    )
    assert "2147483647" in refused["error"], refused
    assert account.client.delete(f"/compute/ssh-keys/{2**31 - 1}").status_code == 404


def test_a_websocket_message_over_the_body_limit_closes_the_connection(
    server: BerthServer, account: Tenant
) -> None:
    url = server.url.replace("http", "ws") + f"/compute/ws?token={account.key}"
    with connect(url, open_timeout=30) as socket:
        assert '"containers"' in str(socket.recv(timeout=30))
        socket.send("x" * (MAX_BODY + 1))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                socket.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_the_openapi_document_declares_413_and_429(server: BerthServer) -> None:
    paths = httpx.get(server.url + "/openapi.json", timeout=30).json()["paths"]
    create_ = paths["/v1/compute"]["post"]["responses"]
    assert {"413", "429"} <= create_.keys()
    assert "Retry-After" in create_["429"]["headers"]
    assert "413" in paths["/compute/containers"]["post"]["responses"]
    listing = paths["/compute/containers"]["get"]["responses"]
    assert "429" in listing and "413" not in listing  # no body, so no body limit
    assert "429" not in paths["/healthz"]["get"]["responses"]
