"""Exec and shell sessions against real tasks: exit codes, output bounds, timeouts, a PTY
driven by a real WebSocket client, token misuse, and transcripts."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.support.api import create, open_shell, wait_workload
from tests.support.server import BerthServer, Tenant
from tests.support.streams import read_ws_until

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def box(server: BerthServer) -> Iterator[tuple[Tenant, dict[str, Any]]]:
    """One running service shared by the module's tests (a container start is ~0.5 s)."""
    tenant = server.new_tenant()
    svc = create(tenant.client, name="box", type="service", command="exec sleep 3600")
    wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 1)
    yield tenant, svc
    tenant.client.delete(f"/v1/compute/{svc['id']}")


def exec_(tenant: Tenant, workload_id: str, **body: Any) -> httpx.Response:
    return tenant.client.post(f"/v1/compute/{workload_id}/exec", json=body, timeout=60)


def test_exec_returns_exit_code_and_both_streams(box: tuple[Tenant, dict[str, Any]]) -> None:
    tenant, svc = box
    result = exec_(tenant, svc["id"], command="echo out; echo err >&2; exit 3").json()
    assert (result["exit_code"], result["stdout"], result["stderr"]) == (3, "out\n", "err\n")
    assert result["timed_out"] is False and result["run_id"].startswith("run_")
    argv = exec_(tenant, svc["id"], command=["cat"], stdin="piped in").json()
    assert (argv["exit_code"], argv["stdout"]) == (0, "piped in")


def test_exec_output_is_bounded_and_says_so(box: tuple[Tenant, dict[str, Any]]) -> None:
    tenant, svc = box
    result = exec_(tenant, svc["id"], command="head -c 3000000 /dev/zero | tr '\\0' x").json()
    assert result["exit_code"] == 0
    assert result["stdout_truncated"] is True
    assert len(result["stdout"]) == 1024 * 1024


def test_exec_timeout_kills_the_command(box: tuple[Tenant, dict[str, Any]]) -> None:
    tenant, svc = box
    started = time.monotonic()
    result = exec_(tenant, svc["id"], command="sleep 100", timeout_seconds=1).json()
    assert result["timed_out"] is True
    assert time.monotonic() - started < 15


def test_exec_streams_ndjson_when_asked(box: tuple[Tenant, dict[str, Any]]) -> None:
    tenant, svc = box
    with tenant.client.stream(
        "POST",
        f"/v1/compute/{svc['id']}/exec",
        json={"command": "echo one; echo two >&2; exit 4", "stream": True},
    ) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    outputs = {(line["stream"], line["data"]) for line in lines[:-1]}
    assert outputs == {("stdout", "one\n"), ("stderr", "two\n")}
    assert lines[-1]["exit_code"] == 4


def test_exec_without_a_running_task_is_a_clear_409(tenant: Tenant) -> None:
    job = create(
        tenant.client, name="idle", type="schedule", schedule_expr="0 0 1 1 *", command="true"
    )
    response = exec_(tenant, job["id"], command="true")
    assert response.status_code == 409
    assert "no task" in response.json()["error"] and "running" in response.json()["error"]


def test_a_command_string_needs_sh_in_the_image(tenant: Tenant) -> None:
    svc = create(
        tenant.client,
        name="nosh",
        type="service",
        image="berth-test/nosh:latest",
        command=["/bin/busybox", "sleep", "3600"],
    )
    wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 1)
    response = exec_(tenant, svc["id"], command="echo hi")
    assert response.status_code == 422 and response.json()["field"] == "command"
    assert "/bin/sh" in response.json()["error"]
    argv = exec_(tenant, svc["id"], command=["/bin/busybox", "echo", "hi"]).json()
    assert (argv["exit_code"], argv["stdout"]) == (0, "hi\n")


def test_a_shell_session_works_with_a_plain_websocket_client(
    box: tuple[Tenant, dict[str, Any]],
) -> None:
    tenant, svc = box
    opened = open_shell(tenant, svc["id"])
    assert set(opened) == {"session", "region"}
    assert set(opened["session"]) == {"sessionId", "streamUrl", "tokenValue"}
    url = opened["session"]["streamUrl"] + "?token=" + opened["session"]["tokenValue"]
    with connect(url) as ws:
        ws.send("echo hello-$((6*7))\n")
        read_ws_until(ws, "hello-42")
        ws.send("exit 3\n")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=15)
    assert closed.value.rcvd is not None and closed.value.rcvd.reason == "exit 3"

    sessions = tenant.client.get(f"/v1/compute/{svc['id']}/shell/sessions").json()["sessions"]
    mine = next(s for s in sessions if s["id"] == opened["session"]["sessionId"])
    assert (mine["status"], mine["exit_code"]) == ("ended", 3)
    transcript = tenant.client.get(
        f"/v1/compute/{svc['id']}/shell/sessions/{mine['id']}/transcript"
    ).text.splitlines()
    assert json.loads(transcript[0])["version"] == 2
    events = [json.loads(line) for line in transcript[1:]]
    assert any(code == "i" and "echo hello" in data for _t, code, data in events)
    assert any(code == "o" and "hello-42" in data for _t, code, data in events)


def test_the_subprotocol_resizes_and_reports_the_exit_code(
    box: tuple[Tenant, dict[str, Any]],
) -> None:
    tenant, svc = box
    session = open_shell(tenant, svc["id"])["session"]
    with connect(
        session["streamUrl"],
        subprotocols=["berth.shell.v1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {session['tokenValue']}"},
    ) as ws:
        assert ws.subprotocol == "berth.shell.v1"
        ws.send(json.dumps({"type": "resize", "cols": 123, "rows": 45}))
        ws.send(b"stty size\n")
        read_ws_until(ws, "45 123")
        ws.send(b"exit 7\n")
        frames = []
        with pytest.raises(ConnectionClosed):
            while True:
                frames.append(ws.recv(timeout=15))
    assert json.loads(next(f for f in frames if isinstance(f, str))) == {"type": "exit", "code": 7}


def test_a_raw_shell_takes_its_size_from_the_stream_url(
    box: tuple[Tenant, dict[str, Any]],
) -> None:
    tenant, svc = box
    session = open_shell(tenant, svc["id"])["session"]
    url = f"{session['streamUrl']}?token={session['tokenValue']}"
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{url}&cols=132&rows=2").close()
    assert refused.value.response.status_code == 422
    body = json.loads(refused.value.response.body)
    assert (
        body["field"] == "rows" and body["error"] == "rows: must be a whole number from 5 to 1000"
    )
    # The refusal came before the token was looked at: it still opens the session.
    with connect(f"{url}&cols=132&rows=40") as ws:
        assert ws.subprotocol is None
        ws.send(b"stty size\n")
        read_ws_until(ws, "40 132")


@pytest.mark.parametrize("misuse", ["wrong", "reused", "expired", "foreign", "missing"])
def test_token_misuse_is_refused_before_any_shell_starts(
    box: tuple[Tenant, dict[str, Any]], misuse: str
) -> None:
    tenant, svc = box
    session = open_shell(tenant, svc["id"])["session"]
    url, token = session["streamUrl"], session["tokenValue"]
    if misuse == "wrong":
        token = token[:-4] + "AAAA"
    elif misuse == "reused":
        with connect(f"{url}?token={token}") as ws:
            ws.send("exit\n")
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=15)
    elif misuse == "expired":
        time.sleep(5.5)  # the connect window (BERTH_SHELL_CONNECT_SECONDS=5) is under test
    elif misuse == "foreign":
        token = open_shell(tenant, svc["id"])["session"]["tokenValue"]
    target = url if misuse == "missing" else f"{url}?token={token}"
    with pytest.raises(InvalidStatus) as refused:
        connect(target).close()
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["code"] == "unauthenticated"


def test_the_session_ends_when_the_task_stops(tenant: Tenant) -> None:
    svc = create(tenant.client, name="short", type="service", command="exec sleep 3600")
    wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 1)
    session = open_shell(tenant, svc["id"])["session"]
    with connect(f"{session['streamUrl']}?token={session['tokenValue']}") as ws:
        ws.send("echo ready\n")
        read_ws_until(ws, "ready")
        tenant.client.post(f"/v1/compute/{svc['id']}/stop")
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=30)


def set_secret(tenant: Tenant, workload_id: str, value: str) -> None:
    response = tenant.client.post(
        f"/v1/compute/{workload_id}/secrets", json={"key": "TOKEN", "value": value}
    )
    assert response.status_code == 200, response.text


def test_exec_and_shell_right_after_a_secret_set_reach_the_new_generation(tenant: Tenant) -> None:
    """A secret set rolls the service onto a new task; a command sent at once must run in
    that task (seeing the new value), not in the old one, which is stopped (exit 137)."""
    svc = create(tenant.client, name="rolling", type="service", command="exec sleep 3600")
    wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 1)
    used: list[str] = []
    for value in ("first", "second", "third"):
        set_secret(tenant, svc["id"], value)
        response = exec_(tenant, svc["id"], command='echo "token=$TOKEN"')
        assert response.status_code == 200, response.text
        result = response.json()
        assert (result["exit_code"], result["stdout"]) == (0, f"token={value}\n"), result
        assert result["run_id"] not in used  # each set put the service on a new task
        used.append(result["run_id"])

    set_secret(tenant, svc["id"], "shell")
    session = open_shell(tenant, svc["id"])["session"]
    with connect(f"{session['streamUrl']}?token={session['tokenValue']}") as ws:
        ws.send(b'echo "token=$TOKEN."\n')
        read_ws_until(ws, "token=shell.")
        ws.send(b"exit 0\n")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=15)
    assert closed.value.rcvd is not None and closed.value.rcvd.reason == "exit 0"


def test_a_named_task_being_replaced_is_refused(tenant: Tenant) -> None:
    svc = create(tenant.client, name="replaced", type="service", command="exec sleep 3600")
    state = wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 1)
    old = next(r["id"] for r in state["recent_runs"] if r["status"] == "running")
    set_secret(tenant, svc["id"], "new")
    response = exec_(tenant, svc["id"], command="echo hi", task=old)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert old in error and ("replaced" in error or "stopped" in error or "not running" in error)
