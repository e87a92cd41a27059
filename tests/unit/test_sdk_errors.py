"""The SDK's pure logic, without a server: HTTP errors become typed exceptions carrying the
server's message, code, field and status; a gated call raises `ApprovalPending` and is repeated
with the approval header; streamed exec answers become events; and the URL and credential are
found by precedence flag > environment > config file."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.cli.client import split_trailing_command
from berth.cli.compute import remote_command
from berth.cli.context import exit_status
from berth.schemas.approvals import APPROVAL_HEADER
from berth.sdk import (
    ApprovalPending,
    AsyncClient,
    BadRequest,
    BerthError,
    Client,
    ConfigError,
    Conflict,
    ExecExit,
    ExecOutput,
    Forbidden,
    NetworkError,
    NotFound,
    PaymentRequired,
    ServerError,
    Unauthorized,
    config_path,
    resolve_credentials,
    write_config,
)
from berth.sdk.errors import WaitTimeout

URL = "http://berth.test"
NOW = "2026-11-23T04:00:00Z"


def workload(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "w1",
        "user_id": "usr_1",
        "name": "hello",
        "type": "job",
        "status": "pending",
        "status_reason": None,
        "image": "busybox",
        "command": "echo hi",
        "env": {},
        "port": None,
        "url": None,
        "cpu": 0.25,
        "memory_mb": 256,
        "replicas": 1,
        "running_tasks": 0,
        "schedule_expr": None,
        "next_run_at": None,
        "timeout_seconds": None,
        "generation": 1,
        "secret_keys": [],
        "recent_runs": [],
        "created_at": NOW,
        "updated_at": NOW,
        **overrides,
    }


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> Client:
    return Client(URL, "nv_sk_test", transport=httpx.MockTransport(handler))


def answering(status: int, body: Any) -> Client:
    return client_for(lambda request: httpx.Response(status, json=body))


def error(message: str, code: str, field: str | None = None) -> dict[str, Any]:
    return {"error": message, "code": code, "field": field}


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (400, BadRequest, "malformed_json"),
        (401, Unauthorized, "unauthenticated"),
        (402, PaymentRequired, "payment_required"),
        (403, Forbidden, "primitive_disabled"),
        (404, NotFound, "not_found"),
        (409, Conflict, "conflict"),
        (422, BadRequest, "quota_exceeded"),
        (500, ServerError, "internal"),
        (503, ServerError, "unavailable"),
    ],
)
def test_each_error_status_becomes_its_exception_with_the_servers_words(
    status: int, kind: type[BerthError], code: str
) -> None:
    body = error("cpu: at most 4 vCPUs per task", code, "cpu")
    with answering(status, body) as client, pytest.raises(kind) as raised:
        client.compute.get("w1")
    exc = raised.value
    assert (exc.message, exc.status, exc.code, exc.field) == (
        "cpu: at most 4 vCPUs per task",
        status,
        code,
        "cpu",
    )
    assert str(exc) == "cpu: at most 4 vCPUs per task"


def test_a_422_keeps_every_problem_the_server_listed() -> None:
    problems = [{"field": "name", "error": "name: bad"}, {"field": "cpu", "error": "cpu: bad"}]
    body = {**error("name: bad", "invalid_request", "name"), "errors": problems}
    with answering(422, body) as client, pytest.raises(BadRequest) as raised:
        client.compute.create(name="BAD", type="job", image="busybox")
    assert raised.value.details == problems and raised.value.field == "name"


def test_an_error_that_is_not_the_servers_json_still_says_what_came_back() -> None:
    with (
        client_for(lambda request: httpx.Response(502, text="<html>Bad Gateway</html>")) as client,
        pytest.raises(ServerError) as raised,
    ):
        client.compute.list()
    assert raised.value.status == 502
    assert "502" in raised.value.message and "Bad Gateway" in raised.value.message


def test_an_unexpected_4xx_is_a_plain_berth_error() -> None:
    body = error("Method Not Allowed", "method_not_allowed")
    with answering(405, body) as client, pytest.raises(BerthError) as raised:
        client.compute.list()
    assert type(raised.value) is BerthError and raised.value.code == "method_not_allowed"


def test_no_response_at_all_is_a_network_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with client_for(refuse) as client, pytest.raises(NetworkError) as raised:
        client.compute.list()
    assert raised.value.status is None and URL in raised.value.message


def test_a_success_that_does_not_fit_the_model_is_reported_not_crashed_on() -> None:
    with answering(200, {"unexpected": True}) as client, pytest.raises(BerthError) as raised:
        client.compute.get("w1")
    assert "unexpected response to GET /v1/compute/w1" in raised.value.message


def test_a_gated_call_raises_approval_pending_and_is_repeated_with_the_header() -> None:
    seen: list[httpx.Request] = []

    def gate(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get(APPROVAL_HEADER) == "apr_1":
            return httpx.Response(201, json=workload())
        return httpx.Response(202, json={"status": "pending_approval", "approval_id": "apr_1"})

    with client_for(gate) as client:
        with pytest.raises(ApprovalPending) as raised:
            client.compute.create(name="hello", type="job", image="busybox")
        assert raised.value.approval_id == "apr_1" and raised.value.status == 202
        created = client.compute.create(
            name="hello", type="job", image="busybox", approval_id="apr_1"
        )
    assert created.name == "hello"
    first, repeat = seen
    assert APPROVAL_HEADER not in first.headers
    assert (
        json.loads(first.content)
        == json.loads(repeat.content)
        == {
            "name": "hello",
            "type": "job",
            "image": "busybox",
        }
    )


def test_requests_carry_the_credential_and_per_user_routes_the_user() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"workloads": []})

    with Client(URL, "nv_sk_x", user_id="usr/7", transport=httpx.MockTransport(record)) as c:
        assert c.compute.list() == []
        c.compute.for_user(None).list()
    assert seen[0].headers["authorization"] == "Bearer nv_sk_x"
    assert seen[0].url.raw_path == b"/v1/users/usr%2F7/compute"
    assert seen[1].url.path == "/v1/compute"


def test_a_streamed_exec_becomes_output_events_then_the_exit() -> None:
    lines = [
        {"stream": "stdout", "data": "hi\n"},
        {"stream": "stderr", "data": "oops\n"},
        {"exit_code": 3, "timed_out": False, "stdout_truncated": False, "run_id": "run_1"},
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines)

    def stream(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"command": ["sh", "-c", "x"], "stream": True}
        return httpx.Response(200, text=body, headers={"content-type": "application/x-ndjson"})

    with client_for(stream) as client:
        events = list(client.compute.exec_stream("w1", ["sh", "-c", "x"]))
    assert events == [
        ExecOutput("stdout", "hi\n"),
        ExecOutput("stderr", "oops\n"),
        ExecExit(exit_code=3, timed_out=False, extra={"run_id": "run_1"}),
    ]


def test_a_replayed_exec_answering_one_json_result_gives_the_same_events() -> None:
    result = {
        "run_id": "run_1",
        "exit_code": 0,
        "stdout": "hi\n",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "timed_out": False,
    }
    with answering(200, result) as client:
        events = list(client.compute.exec_stream("w1", "echo hi", approval_id="apr_1"))
    assert events == [
        ExecOutput("stdout", "hi\n"),
        ExecExit(exit_code=0, timed_out=False, extra={"run_id": "run_1"}),
    ]


def test_wait_for_gives_up_with_the_last_state() -> None:
    client = answering(200, workload(status="pending"))
    with client, pytest.raises(WaitTimeout) as raised:
        client.compute.wait_for("w1", "running", timeout=0.05, interval=0.01)
    assert raised.value.last.status == "pending"
    with pytest.raises(ValueError):
        client.compute.wait_for("w1")


async def test_the_async_client_maps_errors_and_gating_the_same_way() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"status": "pending_approval", "approval_id": "a"})
        return httpx.Response(404, json=error("no workload 'w9'", "not_found"))

    transport = httpx.MockTransport(handler)
    async with AsyncClient(URL, "nv_sk_test", transport=transport) as client:
        with pytest.raises(NotFound) as raised:
            await client.compute.get("w9")
        assert raised.value.message == "no workload 'w9'"
        with pytest.raises(ApprovalPending):
            await client.compute.create(name="x", type="job", image="busybox")


# --- where the URL and credential come from ---------------------------------------------


def test_config_path_honours_berth_config_then_xdg_then_home(tmp_path: Path) -> None:
    assert config_path({"BERTH_CONFIG": str(tmp_path / "c.json")}) == tmp_path / "c.json"
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "berth/config.json"
    assert config_path({}) == Path.home() / ".config/berth/config.json"
    assert config_path({"XDG_CONFIG_HOME": "relative"}) == Path.home() / ".config/berth/config.json"


def test_write_config_is_private(tmp_path: Path) -> None:
    path = tmp_path / "berth" / "config.json"
    write_config(path, url="http://a", api_key="nv_sk_file")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"url": "http://a", "api_key": "nv_sk_file"}
    write_config(path, url="http://b", api_key="nv_sk_new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]


def test_precedence_is_flag_then_environment_then_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    write_config(path, url="http://file", api_key="key-file")
    env = {"BERTH_CONFIG": str(path)}

    found = resolve_credentials(env=env)
    assert (found.url, found.api_key, found.key_source) == ("http://file", "key-file", str(path))

    env_set = {**env, "BERTH_URL": "http://env/", "BERTH_API_KEY": "key-env"}
    found = resolve_credentials(env=env_set)
    assert (found.url, found.api_key, found.url_source) == ("http://env", "key-env", "BERTH_URL")

    found = resolve_credentials(url="http://flag", api_key="key-flag", env=env_set)
    assert (found.url, found.api_key, found.key_source) == ("http://flag", "key-flag", "--key")

    # Each value on its own: a flag URL with the file's key.
    found = resolve_credentials(url="http://flag", env=env)
    assert (found.url, found.api_key) == ("http://flag", "key-file")


def test_missing_or_broken_configuration_is_a_config_error(tmp_path: Path) -> None:
    env = {"BERTH_CONFIG": str(tmp_path / "absent.json")}
    with pytest.raises(ConfigError, match="no server URL"):
        resolve_credentials(env=env)
    with pytest.raises(ConfigError, match="no credentials"):
        resolve_credentials(url="http://x", env=env)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        resolve_credentials(env={"BERTH_CONFIG": str(broken)})


def test_client_from_env_uses_the_resolved_values(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"workloads": []})

    env = {"BERTH_URL": "http://env.test", "BERTH_API_KEY": "key-env"}
    with Client.from_env(env=env, transport=httpx.MockTransport(record)) as client:
        client.compute.list()
    assert str(seen[0].url) == "http://env.test/v1/compute"
    assert seen[0].headers["authorization"] == "Bearer key-env"


# --- small pure pieces of the CLI ----------------------------------------------------------


def test_exec_keeps_everything_after_the_first_double_dash_verbatim() -> None:
    argv = ["compute", "exec", "w1", "--json", "--", "sh", "-c", "echo --", "--", "x"]
    assert split_trailing_command(argv) == (argv[:4], ["sh", "-c", "echo --", "--", "x"])
    other = ["compute", "secrets", "set", "w1", "K", "--", "-v"]
    assert split_trailing_command(other) == (other, None)


def test_one_argument_with_shell_syntax_runs_by_sh_and_anything_else_is_argv() -> None:
    assert remote_command(["echo hi; ls"]) == "echo hi; ls"
    assert remote_command(["ls"]) == ["ls"]
    assert remote_command(["ls", "-la"]) == ["ls", "-la"]


def test_remote_exit_codes_map_to_local_statuses() -> None:
    assert [exit_status(c, timed_out=False) for c in (0, 3, 255, 300, -9, None)] == [
        0,
        3,
        255,
        255,
        137,
        1,
    ]
    assert exit_status(0, timed_out=True) == 124
