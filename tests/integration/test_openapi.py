"""The served API description and the system endpoints.

`GET /openapi.json` describes every route of the Workloads API contract (the seed document's
endpoint table, copied below) under both the company-scoped and the per-user prefix; `/docs`
serves the interactive documentation; `/healthz` and `/v1/system` say whether berth is up and
can reach its container engine.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.support.server import BerthServer

pytestmark = pytest.mark.engine

SEED_ENDPOINTS = """
| GET | /v1/compute | List the user's workloads |
| POST | /v1/compute | Create a workload (type: service | job | schedule) — sensitive |
| GET | /v1/compute/:id | Get a workload (status, public URL, recent runs, secret keys) |
| DELETE | /v1/compute/:id | Delete a workload + stop in-flight runs |
| POST | /v1/compute/:id/start | Wake a scaled-to-zero service |
| POST | /v1/compute/:id/stop | Scale a service to zero |
| POST | /v1/compute/:id/scale | Set the replica count ({ count }) |
| POST | /v1/compute/:id/run | Trigger a job/schedule run now |
| GET | /v1/compute/:id/runs | List runs (status, exit code, credits) |
| GET | /v1/compute/:id/runs/:runId/logs | CloudWatch logs for a run |
| GET | /v1/compute/:id/logs | Logs for the latest run / live service task |
| POST | /v1/compute/:id/exec | One-off command in a running task (ECS Exec) — sensitive |
| POST | /v1/compute/:id/shell | Broker an interactive shell session (SSM) — sensitive |
| GET | /v1/compute/:id/secrets | List secret keys |
| POST | /v1/compute/:id/secrets | Set an encrypted env var (auto-redeploys) |
| DELETE | /v1/compute/:id/secrets/:key | Delete a secret |
| GET | /v1/compute/:id/secrets/:key/reveal | Reveal a secret value |
"""
"""The endpoint table of the Workloads API contract (`seeds/000_3c9ce835d2bf49e4.txt`)."""

EXTRAS = {
    ("GET", "/v1/compute/:id/shell/sessions"),
    ("GET", "/v1/compute/:id/shell/sessions/:sessionId/transcript"),
    ("GET", "/v1/compute/:id/files"),
    ("PUT", "/v1/compute/:id/files"),
    ("DELETE", "/v1/compute/:id/files"),
    ("POST", "/v1/compute/:id/pause"),
    ("POST", "/v1/compute/:id/resume"),
}
"""berth's own additions under the Workloads prefixes (documented in docs/api.md)."""

CONTAINERS_SEED_ENDPOINTS = """
| `GET` | `/compute/containers` | List containers |
| `POST` | `/compute/containers` | Create container |
| `GET` | `/compute/containers/:id` | Get container |
| `DELETE` | `/compute/containers/:id` | Delete container |
| `POST` | `/compute/containers/:id/start` | Start container |
| `POST` | `/compute/containers/:id/stop` | Stop container |
| `GET` | `/compute/ssh-keys` | List SSH keys |
| `POST` | `/compute/ssh-keys` | Add SSH key |
| `DELETE` | `/compute/ssh-keys/:id` | Delete SSH key |
| `GET` | `/compute/containers/:id/ssh` | Get SSH status |
| `PUT` | `/compute/containers/:id/ssh` | Toggle SSH access |
| `GET` | `/compute/containers/:id/ingress` | List ingress rules |
| `POST` | `/compute/containers/:id/ingress` | Add ingress rule |
| `DELETE` | `/compute/containers/:id/ingress/:port` | Remove ingress rule |
| `GET` | `/compute/containers/:id/mounts` | Get mount paths |
| `PUT` | `/compute/containers/:id/mounts` | Update mount paths |
"""
"""The HTTP routes of the Containers API contract (`seeds/003_e9aab752ef6a63a9.txt`); its two
WebSockets are not HTTP operations and are tested in test_containers.py."""

PREFIXES = ["/v1/compute", "/v1/users/{user_id}/compute"]


def seed_routes() -> list[tuple[str, str]]:
    routes = []
    for line in SEED_ENDPOINTS.strip().splitlines():
        method, path = (cell.strip() for cell in line.strip("|").split("|")[:2])
        routes.append((method, path))
    return routes


def shape(path: str) -> str:
    """A path with every parameter blanked: `/v1/compute/:id` and `/v1/compute/{x}` agree."""
    return re.sub(r"\{[^}]+\}|:[A-Za-z_]+", "{}", path)


def expected_operations() -> list[tuple[str, str]]:
    expected = []
    for method, path in seed_routes():
        for prefix in PREFIXES:
            expected.append((method, shape(prefix + path.removeprefix("/v1/compute"))))
    return sorted(expected)


@pytest.fixture(scope="module")
def openapi(server: BerthServer) -> dict[str, Any]:
    response = httpx.get(server.url + "/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def described_operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (method.upper(), shape(path))
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )


def test_the_seed_table_is_read_whole() -> None:
    assert len(seed_routes()) == 17
    assert len(expected_operations()) == 2 * 17


def test_openapi_describes_every_route_of_the_contract_under_both_prefixes(
    openapi: dict[str, Any],
) -> None:
    described = described_operations(openapi)
    missing = sorted(set(expected_operations()) - set(described))
    assert missing == [], f"routes of the contract missing from /openapi.json: {missing}"


def test_openapi_describes_nothing_under_the_workloads_prefixes_beyond_the_contract(
    openapi: dict[str, Any],
) -> None:
    workload_routes = {
        op for op in described_operations(openapi) if op[1].startswith(("/v1/compute", "/v1/users"))
    }
    extras = {
        (method, shape(prefix + path.removeprefix("/v1/compute")))
        for method, path in EXTRAS
        for prefix in PREFIXES
    }
    assert workload_routes - extras == set(expected_operations())


def test_openapi_describes_every_route_of_the_containers_contract(
    openapi: dict[str, Any],
) -> None:
    expected = {
        (cells[0].strip(" `"), shape(cells[1].strip(" `")))
        for line in CONTAINERS_SEED_ENDPOINTS.strip().splitlines()
        for cells in [line.strip("|").split("|")]
    }
    assert len(expected) == 16
    assert expected <= set(described_operations(openapi))


def test_every_operation_has_a_summary_and_a_unique_id(openapi: dict[str, Any]) -> None:
    operations = [op for item in openapi["paths"].values() for op in item.values()]
    assert all(op.get("summary") for op in operations)
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))


def test_the_create_body_documents_each_field_with_a_description(
    openapi: dict[str, Any],
) -> None:
    body = openapi["paths"]["/v1/compute"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[1]
    schema = openapi["components"]["schemas"][ref]
    fields = set(schema["properties"])
    assert {
        "name",
        "type",
        "image",
        "command",
        "env",
        "port",
        "cpu",
        "memory_mb",
        "replicas",
        "schedule_expr",
        "timeout_seconds",
    } <= fields
    assert sorted(schema["required"]) == ["image", "name", "type"]
    undocumented = [f for f, spec in schema["properties"].items() if not spec.get("description")]
    assert undocumented == []
    assert "additionalProperties" not in schema  # unknown fields are ignored, with a warning


def test_the_per_user_routes_document_the_user_id_path_parameter(openapi: dict[str, Any]) -> None:
    for path, item in openapi["paths"].items():
        if not path.startswith("/v1/users/"):
            continue
        for operation in item.values():
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
            assert "user_id" in names, (path, names)


def test_the_docs_are_served_as_html(server: BerthServer) -> None:
    response = httpx.get(server.url + "/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


def test_healthz_says_ok(server: BerthServer) -> None:
    response = httpx.get(server.url + "/healthz")
    assert (response.status_code, response.text) == (200, "ok")


def test_readyz_says_ok_while_the_database_answers(server: BerthServer) -> None:
    response = httpx.get(server.url + "/readyz")
    assert (response.status_code, response.text) == (200, "ok")


def test_system_status_shows_the_engine_reachable(server: BerthServer) -> None:
    response = httpx.get(server.url + "/v1/system")
    assert response.status_code == 200
    status = response.json()
    assert status["engine"] == {"reachable": True, "error": None}
    assert status["version"]


def _error_ref(response: dict[str, Any]) -> str | None:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref: str | None = schema.get("$ref")
    return ref


def test_every_error_response_is_declared_with_berths_error_body(openapi: dict[str, Any]) -> None:
    """FastAPI's own 422 body (`HTTPValidationError`) is never what berth answers."""
    assert "HTTPValidationError" not in openapi["components"]["schemas"]
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert _error_ref(response) == "#/components/schemas/ErrorOut", (
                        method,
                        path,
                        status,
                    )


def test_input_errors_are_422_for_workloads_and_400_for_containers(
    openapi: dict[str, Any],
) -> None:
    create = openapi["paths"]["/v1/compute"]["post"]["responses"]
    assert {"400", "401", "402", "409", "422"} <= set(create)
    for path, item in openapi["paths"].items():
        if path.startswith("/compute/"):
            for operation in item.values():
                assert "422" not in operation["responses"], path
    assert "400" in openapi["paths"]["/compute/containers"]["post"]["responses"]


def test_authenticated_operations_declare_bearer_security_and_401(
    openapi: dict[str, Any],
) -> None:
    scheme = openapi["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    public = {("get", "/healthz"), ("get", "/readyz"), ("get", "/v1/system")}
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if (method, path) in public:
                assert "security" not in operation
                continue
            if (method, path) == ("post", "/v1/auth/sign-in"):
                assert operation["security"] == []  # It is how a human gets a credential.
                assert "Retry-After" in operation["responses"]["429"]["headers"]
                continue
            assert operation.get("security") == [{"bearer": []}], (method, path)
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]


PAGED_LISTS = {
    "/v1/compute": ("workloads", {"limit", "cursor", "type", "status", "name_prefix"}),
    "/v1/users/{user_id}/compute": ("workloads", {"limit", "cursor", "type", "status"}),
    "/v1/compute/{workload_id}/runs": ("runs", {"limit", "cursor"}),
    "/v1/approvals": ("approvals", {"limit", "cursor", "status"}),
    "/compute/containers": ("containers", {"limit", "cursor"}),
    "/compute/ssh-keys": ("ssh_keys", {"limit", "cursor"}),
}


@pytest.mark.parametrize("path", sorted(PAGED_LISTS))
def test_every_list_declares_its_paging_parameters_and_next_cursor(
    openapi: dict[str, Any], path: str
) -> None:
    field, parameters = PAGED_LISTS[path]
    operation = openapi["paths"][path]["get"]
    declared = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    assert parameters <= set(declared), declared
    limit = declared["limit"]["schema"]["anyOf"][0]
    assert (limit["minimum"], limit["maximum"]) == (1, 500)
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    properties = openapi["components"]["schemas"][answer.rsplit("/", 1)[1]]["properties"]
    assert {field, "next_cursor"} <= set(properties)
