"""The tenancy matrix: every route of the running server, WebSockets included, against another
user's credentials and against none.

The routes come from the server itself (its `/openapi.json`) and from the application its
factory builds (the WebSocket routes, which OpenAPI does not describe); each must have a case
in `CASES`, so a route added without one fails `test_every_route_has_a_tenancy_case`. For a
route naming the first user's resource, the second user's API key and session token get
`404` (per-user routes: under their own user id and under the owner's), the response carries
nothing of the owner's, and the owner's state is unchanged; the owner's own credentials get
`200` on the same reads, so a 404 is never merely a bad fixture. Without credentials every
route but the two system ones is `401`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIWebSocketRoute
from starlette.routing import BaseRoute, Mount, WebSocketRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from berth.server.app import create_app
from berth.testing.waiting import wait_for
from tests.support.api import create, open_shell, wait_workload
from tests.support.keys import new_public_key
from tests.support.server import TEST_IMAGE, BerthServer, Tenant
from tests.support.streams import read_ws_until

pytestmark = pytest.mark.engine

SECRET_VALUE = "owners-only-v4lue-7d1c"
OWNER_NAMES = ("owners-svc", "owners-box")


@dataclass
class Ids:
    """The owner's resources a route can name, and the intruder's own user id."""

    owner: str
    intruder: str
    workload: str
    run: str
    key: str
    session: str
    approval: str
    container: str
    ssh_key: int
    port: int


@dataclass
class Estate:
    server: BerthServer
    http: httpx.Client
    """Without credentials of its own: each request says whose it is (`as_`)."""
    owner: Tenant
    owner_token: str
    intruder: Tenant
    intruder_token: str
    intruder_ssh_key: int
    ids: Ids
    baseline: dict[str, Any]
    """The owner's state (`owner_state`) once everything was set up."""

    def intruder_credentials(self) -> list[str]:
        return [self.intruder.key, self.intruder_token]


def as_(credential: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"} if credential else {}


def ws_url(server: BerthServer, path: str) -> str:
    return server.url.replace("http", "ws", 1) + path


def rolled_out(state: dict[str, Any], *, replaced: str) -> bool:
    """Whether a roll is over: one task runs, none starts, and the replaced run has ended
    (so no shell or exec below can land in a task being stopped)."""
    runs = {r["id"]: r["status"] for r in state["recent_runs"]}
    active = [status for status in runs.values() if status in ("pending", "running")]
    return active == ["running"] and runs.get(replaced, "running") not in ("pending", "running")


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    """A server of its own with `exec` gated (so an approval exists), the owner's running
    service with a secret, a finished shell session, an approval, and a running dev box with
    an SSH key and an ingress rule (~10 s on a loaded machine)."""
    tmp = Path(tmp_path_factory.mktemp("tenancy-routes"))
    srv = BerthServer(tmp / "data", env={"BERTH_DEFAULT_GATED_ACTIONS": '["exec"]'})
    srv.start()
    http = httpx.Client(base_url=srv.url, timeout=30)
    try:
        owner, intruder = srv.new_tenant(), srv.new_tenant()
        svc = create(owner.client, name="owners-svc", type="service", command="exec sleep 600")
        first = wait_workload(
            owner.client, svc["id"], lambda s: s["running_tasks"] == 1, timeout=60
        )
        first_run = next(r["id"] for r in first["recent_runs"] if r["status"] == "running")
        secret = owner.client.post(
            f"/v1/compute/{svc['id']}/secrets", json={"key": "TOKEN", "value": SECRET_VALUE}
        )
        assert secret.status_code == 200, secret.text
        state = wait_workload(
            owner.client,
            svc["id"],
            lambda s: s["generation"] == 2 and rolled_out(s, replaced=first_run),
            timeout=60,
            what="the owner's service rolled onto its secret, its first task gone",
        )
        run_id = next(r["id"] for r in state["recent_runs"] if r["status"] == "running")

        shell = open_shell(owner, svc["id"])["session"]
        with connect(f"{shell['streamUrl']}?token={shell['tokenValue']}") as ws:
            ws.send(b"echo owners-shell-$((40+2))\n")
            read_ws_until(ws, "owners-shell-42")
            ws.send(b"exit\n")

        gated = owner.client.post(f"/v1/compute/{svc['id']}/exec", json={"command": "true"})
        assert gated.status_code == 202, gated.text

        keys = {}
        for who, tenant in (("owner", owner), ("intruder", intruder)):
            public_key = new_public_key(tmp, who)
            added = tenant.client.post(
                "/compute/ssh-keys", json={"name": who, "public_key": public_key}
            )
            assert added.status_code == 201, added.text
            keys[who] = int(added.json()["id"])
        box = owner.client.post(
            "/compute/containers", json={"name": "owners-box", "ssh_key_ids": [keys["owner"]]}
        )
        assert box.status_code == 201, box.text
        box_id = box.json()["id"]
        rule = owner.client.post(
            f"/compute/containers/{box_id}/ingress", json={"port": 80, "target_port": 8080}
        )
        assert rule.status_code == 201, rule.text
        wait_for(
            lambda: owner.client.get(f"/compute/containers/{box_id}").json()["status"] == "running",
            timeout=60,
            what="the owner's dev box to run",
        )
        ids = Ids(
            owner=owner.user_id,
            intruder=intruder.user_id,
            workload=svc["id"],
            run=run_id,
            key="TOKEN",
            session=shell["sessionId"],
            approval=gated.json()["approval_id"],
            container=box_id,
            ssh_key=keys["owner"],
            port=80,
        )
        made = Estate(
            server=srv,
            http=http,
            owner=owner,
            owner_token=srv.session_token(owner.user_id),
            intruder=intruder,
            intruder_token=srv.session_token(intruder.user_id),
            intruder_ssh_key=keys["intruder"],
            ids=ids,
            baseline={},
        )
        made.baseline = owner_state(made)
        yield made
    finally:
        http.close()
        srv.stop()
        srv.remove_containers()


# --- the cases ------------------------------------------------------------------------------

OWNED = "owned"
"""Names the owner's resource: 404 for anyone else, the owner's state untouched."""
LISTING = "listing"
"""A collection of the caller's own: shows nothing of the owner's."""
CREATING = "creating"
"""Creates something of the caller's own: the owner's state untouched."""
COMPANY = "company"
"""The company's approval policy, the same for all its users: holds no user's data."""
PUBLIC = "public"
"""No credentials needed, no user's data."""
EVENTS = "events"
"""The containers' status WebSocket: only the caller's containers (its own test)."""
SIGN_IN = "sign-in"
"""Takes an e-mail address and password instead of credentials (test_sign_in.py)."""

Body = Callable[[Estate], dict[str, Any]] | None


@dataclass(frozen=True)
class Case:
    kind: str
    body: Body = None


def const(body: dict[str, Any]) -> Body:
    return lambda _estate: body


W = "/v1/compute"
U = "/v1/users/{user_id}/compute"
C = "/compute"
SCALE = const({"count": 3})
SECRET = const({"key": "TOKEN", "value": "overwritten"})
EXEC = const({"command": "echo intruder"})
YEARLY = const({"name": "planted", "type": "schedule", "image": TEST_IMAGE,
                "schedule_expr": "0 0 1 1 *"})  # fmt: skip

WORKLOAD_CASES: dict[str, tuple[str, Body, str]] = {
    # path below the prefix -> (method, body, kind)
    "": ("GET", None, LISTING),
    "/{workload_id}": ("GET", None, OWNED),
    "/{workload_id}/runs": ("GET", None, OWNED),
    "/{workload_id}/runs/{run_id}/logs": ("GET", None, OWNED),
    "/{workload_id}/logs": ("GET", None, OWNED),
    "/{workload_id}/secrets": ("GET", None, OWNED),
    "/{workload_id}/secrets/{key}/reveal": ("GET", None, OWNED),
    "/{workload_id}/shell/sessions": ("GET", None, OWNED),
    "/{workload_id}/shell/sessions/{session_id}/transcript": ("GET", None, OWNED),
    "/{workload_id}/files": ("GET", None, OWNED),
}
WORKLOAD_WRITES: dict[tuple[str, str], Body] = {
    ("DELETE", "/{workload_id}"): None,
    ("POST", "/{workload_id}/start"): None,
    ("POST", "/{workload_id}/stop"): None,
    ("POST", "/{workload_id}/pause"): None,
    ("POST", "/{workload_id}/resume"): None,
    ("POST", "/{workload_id}/scale"): SCALE,
    ("POST", "/{workload_id}/run"): None,
    ("POST", "/{workload_id}/secrets"): SECRET,
    ("DELETE", "/{workload_id}/secrets/{key}"): None,
    ("POST", "/{workload_id}/exec"): EXEC,
    ("POST", "/{workload_id}/shell"): None,
    ("PUT", "/{workload_id}/files"): const({"planted": True}),
    ("DELETE", "/{workload_id}/files"): None,
}

CASES: dict[tuple[str, str], Case] = {
    ("GET", "/healthz"): Case(PUBLIC),
    ("GET", "/readyz"): Case(PUBLIC),
    ("GET", "/v1/system"): Case(PUBLIC),
    ("POST", "/v1/auth/sign-in"): Case(SIGN_IN),
    ("GET", "/v1/approvals"): Case(LISTING),
    ("GET", "/v1/usage"): Case(LISTING),
    ("GET", "/v1/approvals/policy"): Case(COMPANY),
    ("PUT", "/v1/approvals/policy"): Case(
        COMPANY, const({"gated_actions": ["exec"], "ttl_seconds": 86400})
    ),
    ("GET", "/v1/approvals/{approval_id}"): Case(OWNED),
    ("GET", "/v1/approvals/{approval_id}/events"): Case(OWNED),
    ("POST", "/v1/approvals/{approval_id}/approve"): Case(OWNED, const({"note": "mine now"})),
    ("POST", "/v1/approvals/{approval_id}/reject"): Case(OWNED, const({"note": "no"})),
    ("GET", f"{C}/containers"): Case(LISTING),
    ("POST", f"{C}/containers"): Case(
        CREATING, lambda e: {"name": "intruders-box", "ssh_key_ids": [e.intruder_ssh_key]}
    ),
    ("GET", f"{C}/containers/{{container_id}}"): Case(OWNED),
    ("DELETE", f"{C}/containers/{{container_id}}"): Case(OWNED),
    ("POST", f"{C}/containers/{{container_id}}/start"): Case(OWNED),
    ("POST", f"{C}/containers/{{container_id}}/stop"): Case(OWNED),
    ("POST", f"{C}/containers/{{container_id}}/pause"): Case(OWNED),
    ("POST", f"{C}/containers/{{container_id}}/resume"): Case(OWNED),
    ("GET", f"{C}/ssh-keys"): Case(LISTING),
    ("POST", f"{C}/ssh-keys"): Case(
        CREATING,
        const(
            {
                "name": "intruders",
                "public_key": "ssh-ed25519 "
                "AAAAC3NzaC1lZDI1NTE5AAAAIG6wq0mQzGv2Hk3cX6rjOqvXGjv1m0ZcY0pZ4sD2mW7u x",
            }
        ),
    ),
    ("DELETE", f"{C}/ssh-keys/{{key_id}}"): Case(OWNED),
    ("GET", f"{C}/containers/{{container_id}}/ssh"): Case(OWNED),
    ("PUT", f"{C}/containers/{{container_id}}/ssh"): Case(OWNED, const({"ssh_enabled": True})),
    ("GET", f"{C}/containers/{{container_id}}/ingress"): Case(OWNED),
    ("POST", f"{C}/containers/{{container_id}}/ingress"): Case(
        OWNED, const({"port": 80, "target_port": 9999})
    ),
    ("DELETE", f"{C}/containers/{{container_id}}/ingress/{{port}}"): Case(OWNED),
    ("GET", f"{C}/containers/{{container_id}}/mounts"): Case(OWNED),
    ("PUT", f"{C}/containers/{{container_id}}/mounts"): Case(
        OWNED, const({"mount_paths": ["/root", "/planted"]})
    ),
    ("POST", W): Case(CREATING, YEARLY),
    ("POST", U): Case(CREATING, YEARLY),
    **{
        (method, prefix + path): Case(kind, body)
        for prefix in (W, U)
        for path, (method, body, kind) in WORKLOAD_CASES.items()
    },
    **{
        (method, prefix + path): Case(OWNED, body)
        for prefix in (W, U)
        for (method, path), body in WORKLOAD_WRITES.items()
    },
    ("GET", f"{C}/containers/{{container_id}}/files"): Case(OWNED),
    ("PUT", f"{C}/containers/{{container_id}}/files"): Case(OWNED, const({"planted": True})),
    ("DELETE", f"{C}/containers/{{container_id}}/files"): Case(OWNED),
    ("WS", "/compute/ws"): Case(EVENTS),
    ("WS", "/compute/containers/{container_id}/terminal"): Case(OWNED),
    ("WS", "/v1/shell/sessions/{session_id}/stream"): Case(OWNED),
}


def params_for(path: str) -> dict[str, str] | None:
    """The query a route needs besides its path (the files API's `path`)."""
    return {"path": "/etc/hostname"} if path.endswith("/files") else None


def case_params(*kinds: str, http_only: bool = True) -> list[Any]:
    return [
        pytest.param(method, path, case, id=f"{method} {path}")
        for (method, path), case in sorted(CASES.items())
        if case.kind in kinds and not (http_only and method == "WS")
    ]


# --- completeness ---------------------------------------------------------------------------


def websocket_paths(routes: list[BaseRoute], prefix: str = "") -> Iterator[str]:
    """The WebSocket routes of an application, through included routers and mounts."""
    for route in routes:
        if isinstance(route, WebSocketRoute | APIWebSocketRoute):
            yield prefix + route.path
        elif isinstance(route, Mount):
            yield from websocket_paths(list(route.routes), prefix + route.path)
        elif (included := getattr(route, "original_router", None)) is not None:
            # FastAPI keeps an included router as one route naming the original router.
            context_prefix = getattr(getattr(route, "include_context", None), "prefix", "")
            yield from websocket_paths(list(included.routes), prefix + context_prefix)


def test_every_route_has_a_tenancy_case(estate: Estate) -> None:
    document = httpx.get(f"{estate.server.url}/openapi.json", timeout=30).json()
    served = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    app = create_app(estate.server.settings())  # the factory the server runs; not started
    websockets = {("WS", path) for path in websocket_paths(list(app.routes))}
    assert len(websockets) >= 3, "the WebSocket routes could not be enumerated"
    assert len(served) >= 60, "the OpenAPI document lists too few routes"

    routes = served | websockets
    assert sorted(routes - set(CASES)) == [], "routes without a tenancy case"
    assert sorted(set(CASES) - routes) == [], "tenancy cases for routes that do not exist"


# --- another user's resource ----------------------------------------------------------------


def fill(path: str, ids: Ids, user_id: str) -> str:
    return path.format(
        user_id=user_id,
        workload_id=ids.workload,
        run_id=ids.run,
        key=ids.key,
        session_id=ids.session,
        approval_id=ids.approval,
        container_id=ids.container,
        key_id=ids.ssh_key,
        port=ids.port,
    )


def owner_state(estate: Estate) -> dict[str, Any]:
    """Everything another user's request could have changed of the owner's."""
    ids = estate.ids

    def get(path: str) -> Any:
        response = estate.http.get(path, headers=as_(estate.owner_token))
        assert response.status_code == 200, (path, response.text)
        return response.json()

    workload = get(f"{W}/{ids.workload}")
    box = f"{C}/containers/{ids.container}"
    approval = get(f"/v1/approvals/{ids.approval}")
    return {
        "workload": {
            k: workload[k] for k in ("updated_at", "generation", "replicas", "secret_keys")
        },
        "runs": [r["id"] for r in workload["recent_runs"]],
        "secret": get(f"{W}/{ids.workload}/secrets/TOKEN/reveal"),
        "sessions": [s["id"] for s in get(f"{W}/{ids.workload}/shell/sessions")["sessions"]],
        "approval": (approval["status"], approval["result"]),
        "box": {k: v for k, v in get(box).items() if k in ("status", "name", "memory_mb")},
        "ssh": get(f"{box}/ssh"),
        "ingress": get(f"{box}/ingress"),
        "mounts": get(f"{box}/mounts"),
        "ssh_keys": [k["id"] for k in get(f"{C}/ssh-keys")["ssh_keys"]],
    }


def private_strings(estate: Estate) -> list[str]:
    return [SECRET_VALUE, estate.owner.key, estate.owner_token, "owners-shell", *OWNER_NAMES]


def user_ids_for(path: str, estate: Estate) -> list[str]:
    """A per-user route is tried under the intruder's own id and under the owner's."""
    if "{user_id}" in path:
        return [estate.ids.intruder, estate.ids.owner]
    return [estate.ids.intruder]


@pytest.mark.parametrize(("method", "path", "case"), case_params(OWNED))
def test_another_users_resource_is_404_on_every_route_and_stays_untouched(
    estate: Estate, method: str, path: str, case: Case
) -> None:
    """The intruder's API key and session token, under each user id the route can take."""
    body = case.body(estate) if case.body else None
    for credential in estate.intruder_credentials():
        for user_id in user_ids_for(path, estate):
            response = estate.http.request(
                method,
                fill(path, estate.ids, user_id),
                json=body,
                params=params_for(path),
                headers=as_(credential),
            )
            assert response.status_code == 404, (user_id, response.text)
            assert response.json()["code"] == "not_found"
            for private in private_strings(estate):
                assert private not in response.text
    if method != "GET":
        assert owner_state(estate) == estate.baseline


@pytest.mark.parametrize(
    ("method", "path", "case"),
    [p for p in case_params(OWNED, LISTING) if p.values[0] == "GET"],
)
def test_the_owners_own_credentials_read_the_same_routes(
    estate: Estate, method: str, path: str, case: Case
) -> None:
    """The positive control of the matrix: what is 404 for the intruder exists."""
    for credential in (estate.owner_token, estate.owner.key):
        response = estate.http.get(
            fill(path, estate.ids, estate.ids.owner),
            params=params_for(path),
            headers=as_(credential),
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(("method", "path", "case"), case_params(LISTING))
def test_another_users_things_are_never_listed(
    estate: Estate, method: str, path: str, case: Case
) -> None:
    ids = estate.ids
    owners = [ids.workload, ids.run, ids.approval, ids.container, ids.owner, *OWNER_NAMES]
    for credential in estate.intruder_credentials():
        response = estate.http.get(fill(path, ids, ids.intruder), headers=as_(credential))
        assert response.status_code == 200, response.text
        for private in [*owners, *private_strings(estate)]:
            assert private not in response.text
        if path.endswith("ssh-keys"):
            listed = [k["id"] for k in response.json()["ssh_keys"]]
            assert listed == [estate.intruder_ssh_key]
        if "{user_id}" in path:  # the owner's list, asked for by id
            owners_list = estate.http.get(fill(path, ids, ids.owner), headers=as_(credential))
            assert owners_list.status_code == 404, owners_list.text
            assert owners_list.json()["code"] == "not_found"


@pytest.mark.parametrize(("method", "path", "case"), case_params(CREATING))
def test_what_another_user_creates_is_their_own(
    estate: Estate, method: str, path: str, case: Case
) -> None:
    assert case.body is not None
    for credential in estate.intruder_credentials():
        headers = as_(credential)
        if "{user_id}" in path:  # creating under the owner's id plants nothing
            url = fill(path, estate.ids, estate.ids.owner)
            planted = estate.http.post(url, json=case.body(estate), headers=headers)
            assert planted.status_code == 404, planted.text
        url = fill(path, estate.ids, estate.ids.intruder)
        response = estate.http.post(url, json=case.body(estate), headers=headers)
        assert response.status_code == 201, response.text
        made = response.json()
        if path.startswith(W) or path.startswith("/v1/users"):
            assert made["user_id"] == estate.ids.intruder
            estate.http.delete(f"{W}/{made['id']}", headers=headers)
        elif path.endswith("/containers"):
            estate.http.delete(f"{C}/containers/{made['id']}", headers=headers)
        else:
            estate.http.delete(f"{C}/ssh-keys/{made['id']}", headers=headers)
    assert owner_state(estate) == estate.baseline


def test_the_company_policy_holds_no_users_data_and_keys_cannot_change_it(
    estate: Estate,
) -> None:
    same = {"gated_actions": ["exec"], "ttl_seconds": 86400}
    for credential in estate.intruder_credentials():
        read = estate.http.get("/v1/approvals/policy", headers=as_(credential))
        assert read.status_code == 200 and read.json() == same
        written = estate.http.put("/v1/approvals/policy", json=same, headers=as_(credential))
        # Humans of the company set its policy; an agent's key never does.
        expected = 403 if credential == estate.intruder.key else 200
        assert written.status_code == expected, written.text


# --- without credentials --------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "case"), case_params(OWNED, LISTING, CREATING, COMPANY))
def test_without_valid_credentials_every_route_is_401(
    estate: Estate, method: str, path: str, case: Case
) -> None:
    """None at all, an unknown API key, a forged session token."""
    body = case.body(estate) if case.body else None
    url = fill(path, estate.ids, estate.ids.owner)
    for credential in (None, "nv_sk_not-a-key", "not.a.token"):
        response = estate.http.request(
            method, url, json=body, params=params_for(path), headers=as_(credential)
        )
        assert response.status_code == 401, (credential, response.text)
        assert response.json()["code"] == "unauthenticated"
        for private in private_strings(estate):
            assert private not in response.text


@pytest.mark.parametrize(("method", "path", "case"), case_params(PUBLIC))
def test_the_system_routes_need_no_credentials(
    estate: Estate, method: str, path: str, case: Case
) -> None:
    assert estate.http.request(method, path).status_code == 200


@pytest.mark.parametrize("path", [p for (m, p) in CASES if m == "WS"])
def test_without_valid_credentials_every_websocket_is_refused_with_401(
    estate: Estate, path: str
) -> None:
    url = ws_url(estate.server, fill(path, estate.ids, estate.ids.owner))
    for suffix in ("", "?token=nv_sk_not-a-key"):
        with pytest.raises(InvalidStatus) as refused:
            connect(url + suffix, open_timeout=30).close()
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body)["code"] == "unauthenticated"


# --- WebSockets with another user's credentials ---------------------------------------------


def test_another_users_terminal_is_refused_at_the_handshake(estate: Estate) -> None:
    path = fill("/compute/containers/{container_id}/terminal", estate.ids, estate.ids.owner)
    for credential in estate.intruder_credentials():
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{ws_url(estate.server, path)}?token={credential}", open_timeout=30)
        assert refused.value.response.status_code == 404
        assert json.loads(refused.value.response.body)["code"] == "not_found"
    # The owner's own key opens the same terminal.
    with connect(f"{ws_url(estate.server, path)}?token={estate.owner.key}") as ws:
        ws.send(b"echo owners-terminal-$((6*7))\n")
        read_ws_until(ws, "owners-terminal-42")


def test_another_users_credentials_cannot_claim_a_shell_session(estate: Estate) -> None:
    session = open_shell(estate.owner, estate.ids.workload)["session"]
    for credential in estate.intruder_credentials():
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{session['streamUrl']}?token={credential}", open_timeout=30)
        assert refused.value.response.status_code == 401
    # The refusals did not use the session up: its own token still opens it.
    with connect(f"{session['streamUrl']}?token={session['tokenValue']}") as ws:
        ws.send(b"echo owners-shell-$((7*6))\n")
        read_ws_until(ws, "owners-shell-42")
        ws.send(b"exit\n")


def collect(ws: ClientConnection, into: list[dict[str, Any]], until: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not until():
        assert time.monotonic() < deadline, f"timed out; got {into}"
        into.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))


def statuses(messages: list[dict[str, Any]], container_id: str) -> list[str]:
    return [
        m["data"]["status"]
        for m in messages
        if m["type"] == "container_status" and m["data"]["container_id"] == container_id
    ]


def test_the_status_websocket_carries_only_the_callers_containers(estate: Estate) -> None:
    """The owner creates, stops and deletes a container while the intruder listens with its
    key and with its token; then the intruder does the same with one of its own. Events are
    delivered in order, so by the time the intruder sees its own container deleted, every
    event of the owner's has passed its stream."""
    server, owner, intruder = estate.server, estate.owner, estate.intruder
    seen: list[list[dict[str, Any]]] = [[], [], []]
    with contextlib.ExitStack() as stack:
        streams = [
            stack.enter_context(connect(f"{ws_url(server, '/compute/ws')}?token={credential}"))
            for credential in (owner.key, intruder.key, estate.intruder_token)
        ]
        for ws, messages in zip(streams, seen, strict=True):
            messages.append(json.loads(ws.recv(timeout=30)))
            assert messages[0]["type"] == "containers"
        owners_listed = [c["id"] for c in seen[0][0]["data"]]
        assert owners_listed == [estate.ids.container]
        for messages in seen[1:]:
            assert messages[0]["data"] == []

        def lifecycle(tenant: Tenant, ssh_key: int, name: str) -> str:
            made = tenant.client.post(
                "/compute/containers", json={"name": name, "ssh_key_ids": [ssh_key]}
            )
            assert made.status_code == 201, made.text
            box = str(made.json()["id"])
            wait_for(
                lambda: (
                    tenant.client.get(f"/compute/containers/{box}").json()["status"] == "running"
                ),
                timeout=60,
                what=f"{name} to run",
            )
            assert tenant.client.post(f"/compute/containers/{box}/stop").status_code == 200
            wait_for(
                lambda: (
                    tenant.client.get(f"/compute/containers/{box}").json()["status"] == "stopped"
                ),
                timeout=60,
                what=f"{name} to stop",
            )
            assert tenant.client.delete(f"/compute/containers/{box}").status_code == 200
            return box

        owners_box = lifecycle(owner, estate.ids.ssh_key, "owners-tmp")
        collect(streams[0], seen[0], lambda: "deleted" in statuses(seen[0], owners_box))
        assert {"running", "stopped", "deleted"} <= set(statuses(seen[0], owners_box))

        intruders_box = lifecycle(intruder, estate.intruder_ssh_key, "intruders-tmp")
        for ws, messages in zip(streams[1:], seen[1:], strict=True):
            collect(ws, messages, lambda m=messages: "deleted" in statuses(m, intruders_box))
            assert {"running", "stopped", "deleted"} <= set(statuses(messages, intruders_box))
            foreign = [
                m
                for m in messages
                if m["type"] == "container_status" and m["data"]["container_id"] != intruders_box
            ]
            assert foreign == []
            assert owners_box not in json.dumps(messages)
        assert intruders_box not in json.dumps(seen[0])
