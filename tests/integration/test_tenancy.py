"""Tenancy: who acts, and what another user sees of your workloads (nothing).

Route by route, another user's key and token get `404` (`test_tenancy_routes.py`, the matrix
over every route the server serves). Here: per-user routes take the user's own credentials for
their own id, or an operator key for any user of the company; company-scoped routes of an
operator key act as the company's default user, its first user.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import create, wait_workload
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine

ONCE_A_YEAR = "0 0 1 1 *"
SECRET_VALUE = "owner-only-s3cr3t"


def yearly(name: str) -> dict[str, Any]:
    """A schedule that exists without starting a task while the tests run."""
    return {"name": name, "type": "schedule", "image": TEST_IMAGE, "schedule_expr": ONCE_A_YEAR}


def bearer(server: BerthServer, credential: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {credential}"}, timeout=30
    )


def session_token(server: BerthServer, user_id: str) -> str:
    token: str = server.session_token(user_id)
    return token


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [w["id"] for w in response.json()["workloads"]]


@dataclass
class Owned:
    """The first user's workload, with one finished run and one secret."""

    owner: Tenant
    workload_id: str
    run_id: str
    secret_key: str = "TOKEN"


@pytest.fixture(scope="module")
def owned(server: BerthServer) -> Iterator[Owned]:
    owner = server.new_tenant()
    workload = create(owner.client, **yearly("private"), command="echo owner-output")
    run = owner.client.post(f"/v1/compute/{workload['id']}/run")
    assert run.status_code == 201, run.text
    wait_workload(
        owner.client,
        workload["id"],
        lambda s: s["recent_runs"][0]["status"] == "succeeded",
        what="the owner's run to finish",
    )
    secret = owner.client.post(
        f"/v1/compute/{workload['id']}/secrets", json={"key": "TOKEN", "value": SECRET_VALUE}
    )
    assert secret.status_code == 200, secret.text
    yield Owned(owner=owner, workload_id=workload["id"], run_id=run.json()["id"])
    owner.client.delete(f"/v1/compute/{workload['id']}")
    owner.client.close()


@pytest.fixture(scope="module")
def intruder(server: BerthServer) -> Iterator[Tenant]:
    """A second user of the same company, with a key and a workload of their own."""
    t = server.new_tenant()
    create(t.client, **yearly("intruders-own"))
    yield t
    for workload_id in ids(t.client.get("/v1/compute")):
        t.client.delete(f"/v1/compute/{workload_id}")
    t.client.close()


@pytest.fixture(scope="module")
def intruder_token(server: BerthServer, intruder: Tenant) -> str:
    return session_token(server, intruder.user_id)


@pytest.fixture(scope="module")
def owner_token(server: BerthServer, owned: Owned) -> str:
    return session_token(server, owned.owner.user_id)


@pytest.fixture(scope="module")
def operator(server: BerthServer) -> Iterator[httpx.Client]:
    """A client with an operator key of the company (`create-key --operator`)."""
    with bearer(server, operator_key(server)) as client:
        yield client


def operator_key(server: BerthServer) -> str:
    key: str = server.admin("create-key", "--operator", "--name", "ops")["key"]
    return key


CREDENTIALS = [pytest.param("key", id="api-key"), pytest.param("token", id="session-token")]


def test_another_users_run_is_404_even_under_ones_own_workload(
    owned: Owned, intruder: Tenant
) -> None:
    (own_workload,) = ids(intruder.client.get("/v1/compute"))
    response = intruder.client.get(f"/v1/compute/{own_workload}/runs/{owned.run_id}/logs")
    assert response.status_code == 404, response.text
    assert "owner-output" not in response.text


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize(
    "prefix",
    [pytest.param("/v1/compute", id="company"), pytest.param("/v1/users/{me}/compute", id="own")],
)
def test_another_users_workload_is_not_listed(
    server: BerthServer,
    owned: Owned,
    intruder: Tenant,
    intruder_token: str,
    credential: str,
    prefix: str,
) -> None:
    with bearer(server, intruder.key if credential == "key" else intruder_token) as client:
        listed = client.get(prefix.format(me=intruder.user_id))
    assert owned.workload_id not in ids(listed)
    assert [w["name"] for w in listed.json()["workloads"]] == ["intruders-own"]


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_a_users_own_key_and_token_work_on_their_per_user_routes(
    server: BerthServer, owned: Owned, owner_token: str, credential: str
) -> None:
    owner = owned.owner
    secret = owner.key if credential == "key" else owner_token
    base = f"/v1/users/{owner.user_id}/compute"
    with bearer(server, secret) as client:
        assert ids(client.get(base)) == [owned.workload_id]
        got = client.get(f"{base}/{owned.workload_id}")
        assert got.status_code == 200 and got.json()["secret_keys"] == ["TOKEN"]
        reveal = client.get(f"{base}/{owned.workload_id}/secrets/TOKEN/reveal")
        assert reveal.json() == {"key": "TOKEN", "value": SECRET_VALUE}
        runs = client.get(f"{base}/{owned.workload_id}/runs").json()["runs"]
        assert [r["id"] for r in runs] == [owned.run_id]
        logs = client.get(f"{base}/{owned.workload_id}/runs/{owned.run_id}/logs").json()
        assert [e["message"] for e in logs["events"]] == ["owner-output"]


def test_a_session_token_on_company_routes_acts_as_its_user(
    server: BerthServer, owned: Owned, owner_token: str
) -> None:
    with bearer(server, owner_token) as client:
        assert ids(client.get("/v1/compute")) == [owned.workload_id]


def test_an_operator_key_works_on_the_per_user_routes_of_any_user_of_its_company(
    operator: httpx.Client, owned: Owned, intruder: Tenant
) -> None:
    owner_base = f"/v1/users/{owned.owner.user_id}/compute"
    assert ids(operator.get(owner_base)) == [owned.workload_id]
    got = operator.get(f"{owner_base}/{owned.workload_id}")
    assert got.status_code == 200 and got.json()["user_id"] == owned.owner.user_id
    reveal = operator.get(f"{owner_base}/{owned.workload_id}/secrets/TOKEN/reveal")
    assert reveal.json()["value"] == SECRET_VALUE
    listed = operator.get(f"/v1/users/{intruder.user_id}/compute").json()["workloads"]
    assert [w["name"] for w in listed] == ["intruders-own"]


def test_an_operator_key_still_names_the_right_user_and_a_real_one(
    operator: httpx.Client, owned: Owned, intruder: Tenant
) -> None:
    under_wrong_user = operator.get(f"/v1/users/{intruder.user_id}/compute/{owned.workload_id}")
    assert under_wrong_user.status_code == 404
    nobody = operator.get("/v1/users/usr_nobody/compute")
    assert nobody.status_code == 404 and nobody.json()["code"] == "not_found"


def test_a_workload_an_operator_creates_for_a_user_is_that_users_own(
    operator: httpx.Client, owned: Owned, intruder: Tenant
) -> None:
    response = operator.post(f"/v1/users/{intruder.user_id}/compute", json=yearly("made-by-ops"))
    assert response.status_code == 201, response.text
    made = response.json()
    try:
        assert made["user_id"] == intruder.user_id
        assert made["id"] in ids(intruder.client.get("/v1/compute"))
        assert intruder.client.get(f"/v1/compute/{made['id']}").json()["name"] == "made-by-ops"
        assert owned.owner.client.get(f"/v1/compute/{made['id']}").status_code == 404
    finally:
        intruder.client.delete(f"/v1/compute/{made['id']}")


# --- the company's default user (needs a server of its own: the first user is the default) --


@dataclass
class Company:
    server: BerthServer
    founder: Tenant
    """The first user created on the server: the company's default user."""
    member: Tenant
    operator: httpx.Client


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Company]:
    """A berth server of its own (~2 s to start), so that its first user is known."""
    srv = BerthServer(Path(tmp_path_factory.mktemp("tenancy")) / "data")
    srv.start()
    try:
        founder, member = srv.new_tenant(), srv.new_tenant()
        with founder.client, member.client, bearer(srv, operator_key(srv)) as operator:
            yield Company(srv, founder, member, operator)
    finally:
        srv.stop()
        srv.remove_containers()


def test_company_routes_with_an_operator_key_act_as_the_first_user(company: Company) -> None:
    response = company.operator.post("/v1/compute", json=yearly("company-wide"))
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["user_id"] == company.founder.user_id

    assert ids(company.operator.get("/v1/compute")) == [made["id"]]
    assert ids(company.founder.client.get("/v1/compute")) == [made["id"]]
    assert ids(company.member.client.get("/v1/compute")) == []
    assert company.operator.get(f"/v1/compute/{made['id']}").status_code == 200
    assert company.member.client.get(f"/v1/compute/{made['id']}").status_code == 404
    assert company.operator.delete(f"/v1/compute/{made['id']}").status_code == 200
    assert ids(company.founder.client.get("/v1/compute")) == []


def test_the_founders_own_key_sees_what_the_operator_made_on_company_routes(
    company: Company,
) -> None:
    made = company.founder.client.post("/v1/compute", json=yearly("founders"))
    assert made.status_code == 201, made.text
    try:
        listed = company.operator.get(f"/v1/users/{company.founder.user_id}/compute")
        assert ids(listed) == [made.json()["id"]] == ids(company.operator.get("/v1/compute"))
    finally:
        company.founder.client.delete(f"/v1/compute/{made.json()['id']}")
