"""Bad input to the Workloads API, and requests without valid credentials.

Every refusal is a 4xx JSON body `{"error": "...", "code": "...", "field": ...}` whose `field`
names the offending input (and whose message says it too); a refused create leaves nothing
behind. Requests are sent the way curl sends them as well: raw bytes, no JSON content type.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.support.api import assert_refused, create
from tests.support.engine import engine_machine
from tests.support.server import TEST_IMAGE, BerthServer, Tenant

pytestmark = pytest.mark.engine

ONCE_A_YEAR = "0 0 1 1 *"
"""A schedule that exists without starting a task while the tests run."""


def schedule(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "yearly",
        "type": "schedule",
        "image": TEST_IMAGE,
        "schedule_expr": ONCE_A_YEAR,
        **overrides,
    }


def service(**overrides: Any) -> dict[str, Any]:
    """A service body; zero replicas, so a create that wrongly succeeds starts no task."""
    return {"name": "web", "type": "service", "image": TEST_IMAGE, "replicas": 0, **overrides}


def job(**overrides: Any) -> dict[str, Any]:
    return {"name": "batch", "type": "job", "image": TEST_IMAGE, "command": "true", **overrides}


def without(body: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != field}


@pytest.fixture(scope="module")
def account(server: BerthServer) -> Iterator[Tenant]:
    """One user for the whole module (creating a user costs two admin-CLI runs), holding a
    service with no replicas, a yearly schedule and a one-shot job: nothing that keeps a task
    running."""
    t = server.new_tenant()
    create(t.client, **service())
    create(t.client, **schedule())
    create(t.client, **job())
    yield t
    for workload in t.client.get("/v1/compute").json()["workloads"]:
        t.client.delete(f"/v1/compute/{workload['id']}")
    t.client.close()


@pytest.fixture(scope="module")
def workload_ids(account: Tenant) -> dict[str, str]:
    return {w["type"]: w["id"] for w in account.client.get("/v1/compute").json()["workloads"]}


@pytest.fixture
def client(
    server: BerthServer, account: Tenant, workload_ids: dict[str, str]
) -> Iterator[httpx.Client]:
    """A client of the account, new for each test (the server drops a connection on which it
    answered a 500, which must not fail the next test); after the test, the account holds
    exactly what it held before."""
    headers = {"Authorization": f"Bearer {account.key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        yield client
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as cleaner:
        for workload in cleaner.get("/v1/compute").json()["workloads"]:
            if workload["id"] not in workload_ids.values():
                cleaner.delete(f"/v1/compute/{workload['id']}")


def workload_names(client: httpx.Client) -> list[str]:
    return sorted(w["name"] for w in client.get("/v1/compute").json()["workloads"])


ORIGINAL_NAMES = sorted([service()["name"], schedule()["name"], job()["name"]])


BAD_CREATES = [
    # (body, status, field, code)
    pytest.param(job(type="vm"), 422, "type", "invalid_request", id="unknown-type"),
    pytest.param(
        without(schedule(name="s1"), "schedule_expr"),
        422,
        "schedule_expr",
        "invalid_request",
        id="schedule-without-schedule_expr",
    ),
    pytest.param(
        schedule(name="s2", schedule_expr="61 * * * *"), 422, "schedule_expr", None, id="cron-61"
    ),
    pytest.param(
        schedule(name="s3", schedule_expr="* * *"), 422, "schedule_expr", None, id="cron-3-fields"
    ),
    pytest.param(
        schedule(name="s4", schedule_expr="every day"), 422, "schedule_expr", None, id="cron-words"
    ),
    pytest.param(
        schedule(name="s5", schedule_expr="cron(0 12 * * ? 2030)"),
        422,
        "schedule_expr",
        None,
        id="cron-fn-with-a-year",
    ),
    pytest.param(
        schedule(name="s6", schedule_expr="rate(0 minutes)"),
        422,
        "schedule_expr",
        None,
        id="rate-0-minutes",
    ),
    pytest.param(
        schedule(name="s7", schedule_expr="rate(5 weeks)"),
        422,
        "schedule_expr",
        None,
        id="rate-5-weeks",
    ),
    pytest.param(
        schedule(name="s8", schedule_expr=""), 422, "schedule_expr", None, id="schedule-expr-empty"
    ),
    pytest.param(
        schedule(name="s9", schedule_expr="0 0 31 2 *"),
        422,
        "schedule_expr",
        None,
        id="cron-february-31st-never-comes",
    ),
    pytest.param(
        schedule(name="s10", schedule_expr="cron(0 12 ? * 8 *)"),
        422,
        "schedule_expr",
        None,
        id="cron-fn-weekday-8",
    ),
    pytest.param(
        schedule(name="s11", schedule_expr="rate(10000000 days)"),
        422,
        "schedule_expr",
        None,
        id="rate-past-the-year-9999",
    ),
    pytest.param(
        schedule(name="s12", schedule_expr="rate(99999999999999 days)"),
        422,
        "schedule_expr",
        None,
        id="rate-beyond-any-interval",
    ),
    pytest.param(service(name="w1", replicas=-1), 422, "replicas", None, id="replicas-negative"),
    pytest.param(service(name="w2", port=0), 422, "port", None, id="port-0"),
    pytest.param(service(name="w3", port=70000), 422, "port", None, id="port-70000"),
    pytest.param(job(name="j1", cpu=0), 422, "cpu", None, id="cpu-0"),
    pytest.param(job(name="j2", cpu=-1), 422, "cpu", None, id="cpu-negative"),
    pytest.param(job(name="j3", cpu=1000), 422, "cpu", None, id="cpu-above-any-machine"),
    pytest.param(
        job(name="j4", cpu=5), 422, "cpu", "quota_exceeded", id="cpu-above-the-users-limit"
    ),
    pytest.param(job(name="j5", memory_mb=8), 422, "memory_mb", None, id="memory-too-small"),
    pytest.param(
        job(name="j6", memory_mb=10_000_000), 422, "memory_mb", None, id="memory-too-large"
    ),
    pytest.param(
        job(name="j7", memory_mb=9000),
        422,
        "memory_mb",
        "quota_exceeded",
        id="memory-above-the-users-limit",
    ),
    pytest.param(
        service(name="w4", replicas=11),
        422,
        "replicas",
        "quota_exceeded",
        id="replicas-above-the-users-limit",
    ),
    pytest.param(job(name="j8", timeout_seconds=0), 422, "timeout_seconds", None, id="timeout-0"),
    pytest.param(
        service(name="w5", timeout_seconds=60),
        422,
        "timeout_seconds",
        None,
        id="timeout-on-a-service",
    ),
    pytest.param(job(name="j9", port=8080), 422, "port", None, id="port-on-a-job"),
    pytest.param(job(name="j10", replicas=2), 422, "replicas", None, id="replicas-on-a-job"),
    pytest.param(
        job(name="j11", schedule_expr=ONCE_A_YEAR),
        422,
        "schedule_expr",
        None,
        id="schedule_expr-on-a-job",
    ),
    pytest.param(job(name="j13", command=42), 422, "command", None, id="command-a-number"),
    pytest.param(without(job(), "name"), 422, "name", None, id="missing-name"),
    pytest.param(without(job(name="j14"), "type"), 422, "type", None, id="missing-type"),
    pytest.param(without(job(name="j15"), "image"), 422, "image", None, id="missing-image"),
    pytest.param(job(name="j16", image=""), 422, "image", None, id="image-empty"),
    pytest.param(job(name="Batch"), 422, "name", None, id="name-uppercase"),
    pytest.param(job(name="b" * 64), 422, "name", None, id="name-64-chars"),
    pytest.param(job(name="-batch"), 422, "name", None, id="name-leading-dash"),
    pytest.param(job(name="my_batch"), 422, "name", None, id="name-underscore"),
    pytest.param(job(name=""), 422, "name", None, id="name-empty"),
    pytest.param(job(name=7), 422, "name", None, id="name-a-number"),
    pytest.param(job(name="j17", env={"1BAD": "x"}), 422, "env", None, id="env-leading-digit"),
    pytest.param(job(name="j18", env={"A-B": "x"}), 422, "env", None, id="env-dash"),
    pytest.param(job(name="j19", env={"": "x"}), 422, "env", None, id="env-empty-name"),
    pytest.param(job(name="j20", env={"OK": 1}), 422, "env", None, id="env-value-a-number"),
    pytest.param(job(name="j21", env=["A=1"]), 422, "env", None, id="env-a-list"),
]


@pytest.mark.parametrize(("body", "status", "field", "code"), BAD_CREATES)
def test_a_bad_create_is_refused_naming_the_field_and_creates_nothing(
    client: httpx.Client, body: dict[str, Any], status: int, field: str, code: str | None
) -> None:
    assert_refused(client.post("/v1/compute", json=body), status=status, field=field, code=code)
    assert workload_names(client) == ORIGINAL_NAMES


def test_a_schedule_without_schedule_expr_is_refused_naming_the_field(
    client: httpx.Client,
) -> None:
    body = assert_refused(
        client.post("/v1/compute", json=without(schedule(name="nightly"), "schedule_expr")),
        status=422,
        field="schedule_expr",
    )
    assert "required" in body["error"]


@pytest.mark.parametrize(
    ("expr", "hint"),
    [
        pytest.param("61 * * * *", "not a valid cron", id="minute-61"),
        pytest.param("rate(0 minutes)", "at least 1", id="rate-zero"),
        pytest.param("rate(5 weeks)", "rate(N minutes|hours|days)", id="rate-weeks"),
    ],
)
def test_an_invalid_schedule_is_refused_quoting_the_expression_and_the_rule(
    client: httpx.Client, expr: str, hint: str
) -> None:
    body = assert_refused(
        client.post("/v1/compute", json=schedule(name="bad", schedule_expr=expr)),
        status=422,
        field="schedule_expr",
    )
    assert expr in body["error"] and hint in body["error"]


def test_cpu_above_the_users_limit_says_what_the_limit_is(client: httpx.Client) -> None:
    body = assert_refused(
        client.post("/v1/compute", json=job(name="big", cpu=5)),
        status=422,
        field="cpu",
        code="quota_exceeded",
    )
    assert "at most 4" in body["error"]


def test_a_misspelt_field_is_named_first_not_the_field_it_was_meant_to_be(
    client: httpx.Client,
) -> None:
    """`{"nmae": ...}` is first of all an unknown field; "name: required" follows from it.
    Without strictness the unknown field is only a warning, and "name: required" the error."""
    misspelt = {**without(job(), "name"), "nmae": "batch"}
    response = client.post("/v1/compute", json=misspelt, params={"strict": "true"})
    body = assert_refused(response, status=422, field="nmae", code="invalid_request")
    assert "unknown field" in body["error"]
    assert {detail["field"] for detail in body["errors"]} == {"nmae", "name"}
    response = client.post("/v1/compute", json=misspelt)
    assert_refused(response, status=422, field="name", code="invalid_request")
    assert response.headers.get_list("warning") == ['299 - "unknown field \\"nmae\\""']
    assert workload_names(client) == ORIGINAL_NAMES


def test_a_duplicate_workload_name_is_a_conflict_naming_the_name(client: httpx.Client) -> None:
    body = assert_refused(
        client.post("/v1/compute", json=schedule()), status=409, field="name", code="conflict"
    )
    assert "yearly" in body["error"]
    assert workload_names(client) == ORIGINAL_NAMES


def test_the_same_name_under_another_type_is_still_a_duplicate(client: httpx.Client) -> None:
    assert_refused(
        client.post("/v1/compute", json=service(name=schedule()["name"])),
        status=409,
        field="name",
    )
    assert workload_names(client) == ORIGINAL_NAMES


MALFORMED_BODIES = [
    pytest.param(b'{"name": "web",', id="truncated"),
    pytest.param(b"{'name': 'web'}", id="single-quotes"),
    pytest.param(b'{"name": "web"} trailing', id="trailing-garbage"),
    pytest.param(b"name=web&type=job", id="form-encoded"),
]


@pytest.mark.parametrize("content", MALFORMED_BODIES)
@pytest.mark.parametrize(
    "route",
    [
        pytest.param("", id="create"),
        pytest.param("/{service}/scale", id="scale"),
        pytest.param("/{schedule}/secrets", id="set-secret"),
    ],
)
def test_malformed_json_is_a_400_saying_so(
    client: httpx.Client, workload_ids: dict[str, str], route: str, content: bytes
) -> None:
    url = "/v1/compute" + route.format(**workload_ids)
    response = client.post(url, content=content, headers={"content-type": "application/json"})
    body = assert_refused(response, status=400, field=None, code="malformed_json")
    assert "malformed JSON" in body["error"]
    assert workload_names(client) == ORIGINAL_NAMES


def test_a_body_nested_too_deeply_to_parse_is_a_400_malformed_json(client: httpx.Client) -> None:
    content = b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.post("/v1/compute", content=content)
    assert_refused(response, status=400, field=None, code="malformed_json")
    assert workload_names(client) == ORIGINAL_NAMES


LONE_SURROGATE = "\\ud800"
"""A JSON escape of half a UTF-16 pair: Python's json decodes it, but it is not text."""


@pytest.mark.parametrize(
    ("route", "template", "where"),
    [
        pytest.param("", '{"name": "a", "type": "job", "image": "x", "command": "%s"}', "command"),
        pytest.param("", '{"name": "a", "type": "job", "image": "x", "env": {"%s": "v"}}', "env."),
        pytest.param("/{service}/exec", '{"command": ["echo", "%s"]}', "command.1"),
        pytest.param("/{service}/shell", '{"task": "%s"}', "task"),
        pytest.param("/{schedule}/secrets", '{"key": "K", "value": "%s"}', "value"),
    ],
)
def test_a_string_holding_a_lone_surrogate_is_malformed_json_naming_where(
    client: httpx.Client, workload_ids: dict[str, str], route: str, template: str, where: str
) -> None:
    """Such a string passed validation where a field takes any string, then failed to encode
    on its way to the engine or the store: a 500."""
    url = "/v1/compute" + route.format(**workload_ids)
    content = (template % LONE_SURROGATE).encode()
    body = assert_refused(client.post(url, content=content), status=400, field=None)
    assert body["code"] == "malformed_json"
    assert f"{where}" in body["error"] and "surrogate" in body["error"], body
    assert workload_names(client) == ORIGINAL_NAMES


@pytest.mark.parametrize(
    ("route", "body", "fields"),
    [
        pytest.param("", job(command=42), ["command"], id="create-command"),
        pytest.param("", job(env={"1A": "v"}), ["env.1A"], id="create-env-key"),
        pytest.param("/{service}/exec", {"command": ["echo", 5]}, ["command"], id="exec-argv"),
    ],
)
def test_an_error_in_a_field_of_several_shapes_names_the_field_sent(
    client: httpx.Client, workload_ids: dict[str, str], route: str, body: Any, fields: list[str]
) -> None:
    """Not pydantic's names of the shapes it tried (`command.str`, `env.1A.[key]`): the
    field as sent, with a message that says which argument of an argv is wrong."""
    response = client.post("/v1/compute" + route.format(**workload_ids), json=body)
    refused = assert_refused(response, status=422, field=fields[0])
    assert [item["field"] for item in refused["errors"]] == fields
    if isinstance(body.get("command"), list):
        assert "argument 1 is not a string" in refused["error"]


def test_a_surrogate_pair_is_text_and_accepted(
    client: httpx.Client, workload_ids: dict[str, str]
) -> None:
    url = f"/v1/compute/{workload_ids['schedule']}/secrets"
    content = b'{"key": "EMOJI", "value": "\\ud83d\\ude00"}'
    assert client.post(url, content=content).status_code == 200
    revealed = client.get(f"{url}/EMOJI/reveal").json()
    client.delete(f"{url}/EMOJI")
    assert revealed["value"] == "\U0001f600"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"[]", id="empty-array"),
        pytest.param(b'[{"name": "web", "type": "job", "image": "x"}]', id="array-of-a-body"),
        pytest.param(b'"web"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"true", id="boolean"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(client: httpx.Client, content: bytes) -> None:
    response = client.post("/v1/compute", content=content)
    body = assert_refused(response, status=422, field=None, code="invalid_request")
    assert "must be a JSON object" in body["error"]
    assert workload_names(client) == ORIGINAL_NAMES


@pytest.mark.parametrize(
    "content", [pytest.param(b"", id="empty"), pytest.param(b"null", id="null")]
)
def test_a_create_without_a_body_says_a_body_is_required(
    client: httpx.Client, content: bytes
) -> None:
    response = client.post("/v1/compute", content=content)
    assert response.status_code == 422, response.text
    assert "body" in response.json()["error"]
    assert workload_names(client) == ORIGINAL_NAMES


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-content-type"),
        pytest.param({"content-type": "application/x-www-form-urlencoded"}, id="curl-d-default"),
        pytest.param({"content-type": "text/plain"}, id="text-plain"),
        pytest.param({"content-type": "application/json; charset=utf-8"}, id="json-charset"),
    ],
)
def test_a_json_body_is_accepted_whatever_content_type_curl_sent(
    client: httpx.Client, headers: dict[str, str]
) -> None:
    raw = b'{"name": "curl-made", "type": "schedule", "image": "%s", "schedule_expr": "%s"}' % (
        TEST_IMAGE.encode(),
        ONCE_A_YEAR.encode(),
    )
    request = client.build_request("POST", "/v1/compute", content=raw, headers=headers)
    assert request.headers.get("content-type") == headers.get("content-type")
    response = client.send(request)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "curl-made"
    assert client.delete(f"/v1/compute/{response.json()['id']}").status_code == 200


ACCEPTED_AT_THE_EDGES = [
    pytest.param(schedule(name="n" * 63), id="name-63-chars"),
    pytest.param(schedule(name="0"), id="name-1-char"),
    pytest.param(service(name="p1", port=1), id="port-1"),
    pytest.param(service(name="p65535", port=65535), id="port-65535"),
    pytest.param(schedule(name="c-small", cpu=0.01), id="cpu-small-fraction"),
    pytest.param(schedule(name="m16", memory_mb=16), id="memory-16"),
    pytest.param(schedule(name="m8192", memory_mb=8192), id="memory-at-the-users-limit"),
    pytest.param(schedule(name="t1", timeout_seconds=1), id="timeout-1s"),
    pytest.param(schedule(name="t7d", timeout_seconds=7 * 86400), id="timeout-7-days"),
    pytest.param(schedule(name="r1", schedule_expr="rate(1 minute)"), id="rate-singular"),
    pytest.param(schedule(name="r2", schedule_expr="rate(2 hours)"), id="rate-hours"),
    pytest.param(schedule(name="r3", schedule_expr="rate( 3 days )"), id="rate-spaced"),
    pytest.param(schedule(name="e1", schedule_expr="*/5 * * * *"), id="cron-step"),
    pytest.param(
        schedule(name="e2", schedule_expr="cron(0 12 ? * MON-FRI *)"), id="cron-fn-weekdays"
    ),
    pytest.param(schedule(name="e3", schedule_expr="cron(0 12 1 * ? *)"), id="cron-fn-monthly"),
    pytest.param(schedule(name="env", env={"_A1": "x", "b": ""}), id="env-names"),
    pytest.param(schedule(name="argv", command=["sh", "-c", "true"]), id="command-a-list"),
]


@pytest.mark.parametrize("body", ACCEPTED_AT_THE_EDGES)
def test_values_at_the_edges_of_each_range_are_accepted(
    client: httpx.Client, body: dict[str, Any]
) -> None:
    response = client.post("/v1/compute", json=body)
    assert response.status_code == 201, response.text
    made = response.json()
    for field, value in body.items():
        assert made[field] == value, field
    assert client.delete(f"/v1/compute/{made['id']}").status_code == 200


def test_cpu_at_the_users_limit_is_accepted_if_the_engine_has_the_cpus(
    client: httpx.Client,
) -> None:
    """The default `max_cpu` (4), or the engine machine's CPUs if it has fewer: a create may
    not ask for more CPUs than the engine has (see test_engine_capacity.py)."""
    cpu = min(4.0, engine_machine()[0])
    response = client.post("/v1/compute", json=schedule(name="c4", cpu=cpu))
    assert response.status_code == 201, response.text
    assert response.json()["cpu"] == cpu
    assert client.delete(f"/v1/compute/{response.json()['id']}").status_code == 200


SCALE_BODIES = [
    pytest.param({"count": -1}, "count", id="negative"),
    pytest.param({"count": 1001}, "count", id="above-1000"),
    pytest.param({"count": "two"}, "count", id="a-word"),
    pytest.param({"count": 1.5}, "count", id="a-fraction"),
    pytest.param({"count": "2"}, "count", id="a-numeric-string"),
    pytest.param({"count": False}, "count", id="false-is-not-zero"),
    pytest.param({"count": True}, "count", id="true-is-not-one"),
    pytest.param({}, "count", id="missing"),
]


@pytest.mark.parametrize(("body", "field"), SCALE_BODIES)
def test_a_bad_scale_body_is_refused_naming_the_field(
    client: httpx.Client, workload_ids: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = client.post(f"/v1/compute/{workload_ids['service']}/scale", json=body)
    assert_refused(response, status=422, field=field)
    assert client.get(f"/v1/compute/{workload_ids['service']}").json()["replicas"] == 0


def test_scaling_above_the_users_replica_limit_names_the_count(
    client: httpx.Client, workload_ids: dict[str, str]
) -> None:
    response = client.post(f"/v1/compute/{workload_ids['service']}/scale", json={"count": 11})
    body = assert_refused(response, status=422, field="count", code="quota_exceeded")
    assert "at most 10" in body["error"]


@pytest.mark.parametrize(
    ("kind", "action", "body", "says"),
    [
        pytest.param("job", "scale", {"count": 2}, "only services scale", id="scale-a-job"),
        pytest.param(
            "schedule", "scale", {"count": 2}, "only services scale", id="scale-a-schedule"
        ),
        pytest.param("service", "run", None, "a service runs continuously", id="run-a-service"),
        pytest.param("job", "start", None, "trigger a run", id="start-a-job"),
    ],
)
def test_an_action_that_does_not_fit_the_workload_type_is_a_conflict(
    client: httpx.Client,
    workload_ids: dict[str, str],
    kind: str,
    action: str,
    body: dict[str, Any] | None,
    says: str,
) -> None:
    response = client.post(f"/v1/compute/{workload_ids[kind]}/{action}", json=body)
    error = assert_refused(response, status=409, field=None, code="conflict")
    assert says in error["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"key": "1ABC", "value": "v"}, "key", id="key-leading-digit"),
        pytest.param({"key": "A-B", "value": "v"}, "key", id="key-dash"),
        pytest.param({"key": "A B", "value": "v"}, "key", id="key-space"),
        pytest.param({"key": "", "value": "v"}, "key", id="key-empty"),
        pytest.param({"key": "K" * 129, "value": "v"}, "key", id="key-129-chars"),
        pytest.param({"value": "v"}, "key", id="key-missing"),
        pytest.param({"key": "TOKEN"}, "value", id="value-missing"),
        pytest.param({"key": "TOKEN", "value": 5}, "value", id="value-a-number"),
    ],
)
def test_a_bad_secret_is_refused_naming_the_field_and_nothing_is_stored(
    client: httpx.Client, workload_ids: dict[str, str], body: dict[str, Any], field: str
) -> None:
    url = f"/v1/compute/{workload_ids['schedule']}/secrets"
    assert_refused(client.post(url, json=body), status=422, field=field)
    assert client.get(url).json() == {"secrets": []}


def test_an_unknown_workload_is_a_404_naming_it(client: httpx.Client) -> None:
    body = assert_refused(
        client.get("/v1/compute/wl_doesnotexist"), status=404, field=None, code="not_found"
    )
    assert body["error"] == "workload wl_doesnotexist not found"


def test_an_unknown_secret_is_a_404_naming_it(
    client: httpx.Client, workload_ids: dict[str, str]
) -> None:
    url = f"/v1/compute/{workload_ids['schedule']}/secrets/NOPE"
    for response in (client.get(url + "/reveal"), client.delete(url)):
        body = assert_refused(response, status=404, field=None, code="not_found")
        assert "NOPE" in body["error"]


def test_an_unknown_run_is_a_404_naming_it(
    client: httpx.Client, workload_ids: dict[str, str]
) -> None:
    response = client.get(f"/v1/compute/{workload_ids['job']}/runs/run_nope/logs")
    body = assert_refused(response, status=404, field=None, code="not_found")
    assert "run_nope" in body["error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/v1/nothing-here", id="unknown-top-level"),
        pytest.param("GET", "/v1/compute/wl_x/nothing-here", id="unknown-workload-action"),
        pytest.param("POST", "/v1/users/usr_x/compute/wl_x/explode", id="unknown-per-user"),
    ],
)
def test_an_unknown_route_is_a_404_json_error(client: httpx.Client, method: str, path: str) -> None:
    assert_refused(client.request(method, path), status=404, field=None, code="not_found")


def test_a_wrong_method_is_a_405_json_error(client: httpx.Client) -> None:
    assert_refused(client.put("/v1/compute"), status=405, field=None, code="method_not_allowed")


# --- credentials -------------------------------------------------------------------------


def forged_token(user_id: str) -> str:
    """A well-formed session token for a real user, signed with a key berth does not have."""
    return jwt.encode(
        {"sub": user_id, "typ": "session", "exp": 4102444800}, "x" * 32, algorithm="HS256"
    )


CREDENTIALS = [
    pytest.param(lambda _user: {}, id="none"),
    pytest.param(lambda _user: {"Authorization": "Bearer"}, id="empty-bearer"),
    pytest.param(lambda _user: {"Authorization": "Basic dXNlcjpwYXNz"}, id="basic-auth"),
    pytest.param(lambda _user: {"Authorization": "Bearer nv_sk_bogus"}, id="bogus-key"),
    pytest.param(lambda _user: {"Authorization": "Bearer not-a-token"}, id="garbage-token"),
    pytest.param(lambda user: {"Authorization": f"Bearer {forged_token(user)}"}, id="forged-jwt"),
]

GUARDED = [
    pytest.param("GET", "/v1/compute", None, id="list"),
    pytest.param("POST", "/v1/compute", job(name="sneaky"), id="create"),
    pytest.param("POST", "/v1/compute", job(name="BAD NAME"), id="create-invalid-body"),
    pytest.param("GET", "/v1/users/{user}/compute", None, id="per-user-list"),
    pytest.param("GET", "/v1/compute/{job}/logs", None, id="logs"),
]


@pytest.mark.parametrize(("method", "path", "body"), GUARDED)
@pytest.mark.parametrize("credentials", CREDENTIALS)
def test_a_request_without_valid_credentials_is_401_with_a_bearer_challenge(
    server: BerthServer,
    account: Tenant,
    workload_ids: dict[str, str],
    credentials: Any,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    url = server.url + path.format(user=account.user_id, **workload_ids)
    response = httpx.request(method, url, json=body, headers=credentials(account.user_id))
    error = assert_refused(response, status=401, field=None, code="unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in error["error"] or "key" in error["error"] or "token" in error["error"]
    assert workload_names(account.client) == ORIGINAL_NAMES


def test_credentials_are_checked_before_the_body_is_even_parsed(server: BerthServer) -> None:
    """An anonymous caller learns nothing from berth but that it must authenticate."""
    response = httpx.post(server.url + "/v1/compute", content=b'{"name": ')
    assert_refused(response, status=401, field=None, code="unauthenticated")
