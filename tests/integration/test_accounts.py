"""Accounts through the admin CLI, run as a real subprocess on the data directory.

`create-user` prints the user (the first founds the company and is its default user),
`create-key` prints an `nv_sk_` key once and stores only its hash, `token` prints a session
token usable as a Bearer credential, and `update-user` changes the AccountKit: compute off is
`403` on every compute route, no credits is `402` on work that would start a task, and
per-user limits are a `422` naming the field. Failures exit non-zero with a message on stderr.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from berth.testing.server import BERTH
from tests.support import postgres
from tests.support.api import create
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine

ONCE_A_YEAR = "0 0 1 1 *"


def yearly(name: str) -> dict[str, Any]:
    """A schedule that exists without starting a task while the tests run."""
    return {"name": name, "type": "schedule", "image": TEST_IMAGE, "schedule_expr": ONCE_A_YEAR}


def idle_service(name: str) -> dict[str, Any]:
    """A service scaled to zero: it exists, and starting or scaling it would start a task."""
    return {"name": name, "type": "service", "image": TEST_IMAGE, "replicas": 0}


def unique_email(label: str) -> str:
    """The session's server is shared by every test: e-mail addresses must not collide."""
    return f"{label}-{time.monotonic_ns()}@example.com"


def ed25519_key() -> str:
    """A new public key in OpenSSH's one-line form."""
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def admin_process(server: BerthServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`berth admin ...` as an operator runs it beside `server` (its data directory and
    environment, so its database), whatever it answers."""
    return subprocess.run(
        [*BERTH, "admin", *args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        check=False,
        env=server.env,
    )


def bearer(server: BerthServer, credential: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {credential}"}, timeout=30
    )


def names(client: httpx.Client, prefix: str = "/v1/compute") -> list[str]:
    response = client.get(prefix)
    assert response.status_code == 200, response.text
    return sorted(w["name"] for w in response.json()["workloads"])


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BerthServer, dict[str, Any]]]:
    """A data directory whose first user is created by the CLI before any server runs on it,
    then a server on it (~2 s to start)."""
    srv = BerthServer(Path(tmp_path_factory.mktemp("accounts")) / "data")
    srv.data_dir.mkdir(parents=True)
    founder = srv.admin("create-user", "--email", "founder@example.com", "--name", "Founder")
    srv.start()
    try:
        yield srv, founder
    finally:
        srv.stop()
        srv.remove_containers()


def test_create_user_prints_the_user_with_id_email_and_credits(server: BerthServer) -> None:
    email = unique_email("ada")
    user = server.admin("create-user", "--email", email, "--name", "Ada", "--credits", "12.5")
    assert user["id"].startswith("usr_")
    assert (user["email"], user["name"], user["credits"]) == (email, "Ada", 12.5)
    assert user["account_kit"]["compute"] is True
    assert user["company_id"]


def test_a_new_user_gets_the_default_credits(server: BerthServer) -> None:
    user = server.admin("create-user", "--email", unique_email("grace"))
    assert user["credits"] == 100.0


def test_the_admin_cli_needs_no_server_and_its_first_user_is_the_company_default(
    fresh: tuple[BerthServer, dict[str, Any]],
) -> None:
    srv, founder = fresh
    second = srv.admin("create-user", "--email", "second@example.com")
    assert second["company_id"] == founder["company_id"]
    with bearer(srv, srv.admin("create-key", "--operator")["key"]) as operator:
        response = operator.post("/v1/compute", json=yearly("acts-as-founder"))
        assert response.status_code == 201, response.text
        assert response.json()["user_id"] == founder["id"]
        assert operator.delete(f"/v1/compute/{response.json()['id']}").status_code == 200


def test_create_key_prints_an_nv_sk_key_once_and_stores_only_its_hash(
    fresh: tuple[BerthServer, dict[str, Any]],
) -> None:
    srv, founder = fresh
    created = srv.admin("create-key", "--user", founder["id"], "--name", "laptop")
    key = created["key"]
    assert key.startswith("nv_sk_") and len(key) > 30
    assert (created["user_id"], created["name"], created["operator"]) == (
        founder["id"],
        "laptop",
        False,
    )
    assert key not in {v for k, v in created.items() if k != "key"}

    with bearer(srv, key) as client:
        assert client.get("/v1/compute").status_code == 200

    stored = [path for path in srv.data_dir.rglob("*") if path.is_file()]
    assert postgres.wanted() or any(path.name == "berth.db" for path in stored)
    rows = srv.stored_rows()
    assert b"laptop" in rows  # the key's row is there
    assert key[len("nv_sk_") :].encode() not in rows
    for path in stored:  # the database (on SQLite) and its WAL, the keys, any archive
        content = path.read_bytes()
        assert key.encode() not in content, path
        assert key[len("nv_sk_") :].encode() not in content, path


def test_a_session_token_works_as_a_bearer_credential(server: BerthServer, tenant: Tenant) -> None:
    printed = server.admin("token", "--user", tenant.user_id)
    assert printed["token"].count(".") == 2  # a JWT
    create(tenant.client, **yearly("seen-by-token"))
    with bearer(server, printed["token"]) as client:
        assert names(client) == ["seen-by-token"]
        assert names(client, f"/v1/users/{tenant.user_id}/compute") == ["seen-by-token"]


def test_an_expired_session_token_is_refused_saying_so(
    fresh: tuple[BerthServer, dict[str, Any]],
) -> None:
    srv, founder = fresh
    token = srv.admin("token", "--user", founder["id"], "--ttl", "0")["token"]
    with bearer(srv, token) as client:
        response = client.get("/v1/compute")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_update_user_sets_and_show_user_shows_the_containers_apis_limits(
    server: BerthServer,
) -> None:
    t = server.new_tenant()
    kit = server.admin(
        "update-user", "--user", t.user_id, "--max-containers", "1", "--max-ssh-keys", "2"
    )["account_kit"]
    assert (kit["max_containers"], kit["max_ssh_keys"]) == (1, 2)
    shown = server.admin("show-user", "--user", t.user_id)["account_kit"]
    assert (shown["max_containers"], shown["max_ssh_keys"]) == (1, 2)
    keys = [
        t.client.post("/compute/ssh-keys", json={"name": f"k{i}", "public_key": ed25519_key()})
        for i in range(3)
    ]
    assert [k.status_code for k in keys] == [201, 201, 400], keys[-1].text
    assert "limit reached (2)" in keys[-1].json()["error"]
    t.client.close()


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        pytest.param("--max-containers", "-1", "max_containers", id="max-containers"),
        pytest.param("--max-ssh-keys", "-3", "max_ssh_keys", id="max-ssh-keys"),
        pytest.param("--max-cpu", "0", "max_cpu", id="max-cpu"),
        pytest.param("--credits", "-5", "credits", id="credits"),
        pytest.param("--add-credits", "-1000000", "credits", id="add-credits-below-zero"),
    ],
)
def test_update_user_refuses_a_limit_below_its_floor_and_changes_nothing(
    server: BerthServer, flag: str, value: str, field: str
) -> None:
    t = server.new_tenant()
    before = server.admin("show-user", "--user", t.user_id)
    result = admin_process(server, "update-user", "--user", t.user_id, flag, value)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.startswith(f"error: {field}: must") or "below 0" in result.stderr
    assert field in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert server.admin("show-user", "--user", t.user_id) == before
    t.client.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(["create-user", "--email", "not-an-email"], "email", id="invalid-email"),
        pytest.param(["create-key", "--user", "usr_nobody"], "usr_nobody", id="key-unknown-user"),
        pytest.param(["create-key"], "operator", id="key-without-user-or-operator"),
        pytest.param(["token", "--user", "usr_nobody"], "usr_nobody", id="token-unknown-user"),
        pytest.param(
            ["update-user", "--user", "usr_nobody", "--credits", "5"],
            "usr_nobody",
            id="update-unknown-user",
        ),
    ],
)
def test_a_failing_admin_command_exits_non_zero_with_a_message_on_stderr(
    server: BerthServer, args: list[str], says: str
) -> None:
    result = admin_process(server, *args)
    assert result.returncode != 0
    assert result.stdout == ""
    assert says in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_creating_a_user_with_a_taken_email_fails_with_a_message_on_stderr(
    server: BerthServer,
) -> None:
    email = unique_email("taken")
    first = server.admin("create-user", "--email", email)
    result = admin_process(server, "create-user", "--email", email)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "already exists" in result.stderr and email in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert server.admin("show-user", "--user", first["id"])["email"] == email


# --- compute off --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compute_off(server: BerthServer) -> Iterator[tuple[Tenant, str]]:
    """A user with a workload, whose compute primitive is then switched off."""
    t = server.new_tenant()
    workload = create(t.client, **yearly("before-the-switch"))
    updated = server.admin("update-user", "--user", t.user_id, "--compute", "off")
    assert updated["account_kit"]["compute"] is False
    yield t, workload["id"]
    if t.client.get("/v1/compute").status_code == 200:  # switched back on by a test
        t.client.delete(f"/v1/compute/{workload['id']}")
    t.client.close()


EVERY_ROUTE = [
    pytest.param("GET", "", None, id="list"),
    pytest.param("POST", "", yearly("after-the-switch"), id="create"),
    pytest.param("GET", "/{workload}", None, id="get"),
    pytest.param("DELETE", "/{workload}", None, id="delete"),
    pytest.param("POST", "/{workload}/start", None, id="start"),
    pytest.param("POST", "/{workload}/stop", None, id="stop"),
    pytest.param("POST", "/{workload}/scale", {"count": 1}, id="scale"),
    pytest.param("POST", "/{workload}/run", None, id="run"),
    pytest.param("GET", "/{workload}/runs", None, id="runs"),
    pytest.param("GET", "/{workload}/runs/run_x/logs", None, id="run-logs"),
    pytest.param("GET", "/{workload}/logs", None, id="logs"),
    pytest.param("GET", "/{workload}/secrets", None, id="secrets-list"),
    pytest.param("POST", "/{workload}/secrets", {"key": "K", "value": "v"}, id="secrets-set"),
    pytest.param("DELETE", "/{workload}/secrets/K", None, id="secrets-delete"),
    pytest.param("GET", "/{workload}/secrets/K/reveal", None, id="secrets-reveal"),
]


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("/v1/compute", id="company"),
        pytest.param("/v1/users/{user}/compute", id="user"),
    ],
)
@pytest.mark.parametrize(("method", "route", "body"), EVERY_ROUTE)
def test_with_compute_off_every_compute_route_is_403_saying_compute_is_not_enabled(
    server: BerthServer,
    compute_off: tuple[Tenant, str],
    prefix: str,
    method: str,
    route: str,
    body: dict[str, Any] | None,
) -> None:
    tenant, workload_id = compute_off
    url = (prefix + route).format(user=tenant.user_id, workload=workload_id)
    response = tenant.client.request(method, url, json=body)
    assert response.status_code == 403, response.text
    error = response.json()
    assert error["code"] == "primitive_disabled"
    assert "compute" in error["error"] and "not enabled" in error["error"]


def test_switching_compute_back_on_restores_access_to_what_was_there(
    server: BerthServer, compute_off: tuple[Tenant, str]
) -> None:
    tenant, workload_id = compute_off
    server.admin("update-user", "--user", tenant.user_id, "--compute", "on")
    assert names(tenant.client) == ["before-the-switch"]
    assert tenant.client.get(f"/v1/compute/{workload_id}").status_code == 200


# --- no credits ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broke(server: BerthServer) -> Iterator[tuple[Tenant, dict[str, str]]]:
    """A user with an idle service and a schedule, whose balance is then set to zero."""
    t = server.new_tenant()
    made = {
        "service": create(t.client, **idle_service("idle"))["id"],
        "schedule": create(t.client, **yearly("nightly"))["id"],
    }
    assert server.admin("update-user", "--user", t.user_id, "--credits", "0")["credits"] == 0
    yield t, made
    for workload_id in [w["id"] for w in t.client.get("/v1/compute").json()["workloads"]]:
        t.client.delete(f"/v1/compute/{workload_id}")
    t.client.close()


@pytest.mark.parametrize(
    ("route", "body"),
    [
        pytest.param("", {"name": "j", "type": "job", "image": TEST_IMAGE}, id="create-a-job"),
        pytest.param(
            "", {"name": "s", "type": "service", "image": TEST_IMAGE}, id="create-a-service"
        ),
        pytest.param("/{schedule}/run", None, id="run-a-schedule"),
        pytest.param("/{service}/start", None, id="start-a-service"),
        pytest.param("/{service}/scale", {"count": 1}, id="scale-up-a-service"),
    ],
)
def test_without_credits_work_that_would_start_a_task_is_402(
    broke: tuple[Tenant, dict[str, str]], route: str, body: dict[str, Any] | None
) -> None:
    tenant, made = broke
    response = tenant.client.post("/v1/compute" + route.format(**made), json=body)
    assert response.status_code == 402, response.text
    error = response.json()
    assert error["code"] == "payment_required" and "credits" in error["error"]
    assert names(tenant.client) == ["idle", "nightly"]
    service = tenant.client.get(f"/v1/compute/{made['service']}").json()
    assert (service["replicas"], service["running_tasks"]) == (0, 0)
    assert tenant.client.get(f"/v1/compute/{made['schedule']}/runs").json()["runs"] == []


@pytest.mark.parametrize(
    "route",
    [
        pytest.param("", id="list"),
        pytest.param("/{service}", id="get"),
        pytest.param("/{schedule}/runs", id="runs"),
        pytest.param("/{schedule}/logs", id="logs"),
        pytest.param("/{service}/secrets", id="secrets"),
    ],
)
def test_without_credits_reads_still_work(broke: tuple[Tenant, dict[str, str]], route: str) -> None:
    tenant, made = broke
    response = tenant.client.get("/v1/compute" + route.format(**made))
    assert response.status_code == 200, response.text


def test_without_credits_work_that_starts_no_task_still_works(
    broke: tuple[Tenant, dict[str, str]],
) -> None:
    tenant, made = broke
    schedule = create(tenant.client, **yearly("another-schedule"))
    idle = create(tenant.client, **idle_service("another-idle"))
    stopped = tenant.client.post(f"/v1/compute/{made['service']}/stop")
    assert stopped.status_code == 200, stopped.text
    scaled = tenant.client.post(f"/v1/compute/{made['service']}/scale", json={"count": 0})
    assert scaled.status_code == 200, scaled.text
    secret = tenant.client.post(
        f"/v1/compute/{made['schedule']}/secrets", json={"key": "K", "value": "v"}
    )
    assert secret.status_code == 200, secret.text
    for workload in (schedule, idle):
        assert tenant.client.delete(f"/v1/compute/{workload['id']}").status_code == 200


# --- per-user limits ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(server: BerthServer) -> Iterator[Tenant]:
    t = server.new_tenant()
    kit = server.admin(
        "update-user",
        "--user",
        t.user_id,
        "--max-replicas",
        "2",
        "--max-cpu",
        "1",
        "--max-memory-mb",
        "512",
        "--max-workloads",
        "2",
    )["account_kit"]
    assert (kit["max_replicas"], kit["max_cpu"], kit["max_memory_mb"]) == (2, 1.0, 512)
    yield t
    for workload_id in [w["id"] for w in t.client.get("/v1/compute").json()["workloads"]]:
        t.client.delete(f"/v1/compute/{workload_id}")
    t.client.close()


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        pytest.param(
            {**idle_service("wide"), "replicas": 3}, "replicas", "at most 2", id="replicas"
        ),
        pytest.param({**yearly("hungry"), "cpu": 2}, "cpu", "at most 1 vCPU", id="cpu"),
        pytest.param({**yearly("greedy"), "memory_mb": 1024}, "memory_mb", "512", id="memory"),
    ],
)
def test_a_create_beyond_the_users_limits_is_a_422_naming_the_field(
    limited: Tenant, body: dict[str, Any], field: str, says: str
) -> None:
    response = limited.client.post("/v1/compute", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert (error["code"], error["field"]) == ("quota_exceeded", field)
    assert error["error"].startswith(f"{field}: ") and says in error["error"]
    assert names(limited.client) == []


def test_scaling_beyond_the_users_replica_limit_is_a_422_naming_replicas(
    limited: Tenant,
) -> None:
    service = create(limited.client, **idle_service("narrow"))
    try:
        response = limited.client.post(f"/v1/compute/{service['id']}/scale", json={"count": 3})
        assert response.status_code == 422, response.text
        assert "replicas" in response.json()["error"] and "at most 2" in response.json()["error"]
        assert limited.client.get(f"/v1/compute/{service['id']}").json()["replicas"] == 0
    finally:
        limited.client.delete(f"/v1/compute/{service['id']}")


def test_the_workload_count_limit_refuses_one_more(limited: Tenant) -> None:
    made = [create(limited.client, **yearly(name)) for name in ("first", "second")]
    try:
        response = limited.client.post("/v1/compute", json=yearly("third"))
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "quota_exceeded"
        assert "limit" in response.json()["error"] and "2" in response.json()["error"]
    finally:
        for workload in made:
            limited.client.delete(f"/v1/compute/{workload['id']}")
