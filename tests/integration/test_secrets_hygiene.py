"""No plaintext secret outside the task that uses it.

One server of its own, logging at debug level, with create, exec and shell gated. Distinctive
secret values, an API key, a human's session token, a human's password (set through the admin
command's stdin, signed in with, and a wrong one tried) and a shell token go through every
path where they could leak: a gated create, secrets set by a human and by an agent, invalid
requests that carry a secret, a gated exec and a gated shell approved by a human, the
approvals' audit trails, the containers' status WebSocket and the shell stream (credentials
in their URLs), and run logs. Then the database files (the WAL too), the whole data
directory, the server's log, every API response seen and every process's command line, and
berth's own environment, are searched for each plaintext.

By design a secret does reach its task's environment (the engine's root can read it there);
the test proves it did (by a digest printed from inside the task), and looks nowhere else.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from berth.testing.server import BERTH
from tests.support.api import wait_workload
from tests.support.server import TEST_IMAGE, BerthServer
from tests.support.streams import read_ws_until

pytestmark = pytest.mark.engine


@dataclass
class Recorder:
    """Every response body the test saw, except the ones whose job is to show a secret."""

    bodies: list[str] = field(default_factory=list)

    def client(self, server: BerthServer, credential: str) -> httpx.Client:
        def keep(response: httpx.Response) -> None:
            response.read()
            if "/reveal" not in response.request.url.path:
                self.bodies.append(response.text)

        return httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {credential}"},
            timeout=30,
            event_hooks={"response": [keep]},
        )


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """~2 s to start."""
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("secrets")) / "data",
        env={
            "BERTH_DEFAULT_GATED_ACTIONS": '["create", "exec", "shell"]',
            "BERTH_LOG_LEVEL": "debug",
        },
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def approve(human: httpx.Client, pending: httpx.Response, *, events: int = 3) -> dict[str, Any]:
    """Approve a gated call; `events` is how many audit events it has then (a shell runs,
    and is audited as executed, only when its agent collects it)."""
    assert pending.status_code == 202, pending.text
    approval_id = pending.json()["approval_id"]
    approved = human.post(f"/v1/approvals/{approval_id}/approve", json={"note": "ok"})
    assert approved.status_code == 200, approved.text
    audit = human.get(f"/v1/approvals/{approval_id}/events")
    assert audit.status_code == 200 and len(audit.json()["events"]) >= events, audit.text
    result: dict[str, Any] = approved.json()
    return result


def rolled(runs: list[dict[str, Any]], since: datetime) -> bool:
    """The newest run started after `since` (the last secret set) runs, and alone."""
    newest, *older = runs
    return (
        datetime.fromisoformat(newest["created_at"]) > since
        and newest["status"] == "running"
        and all(r["status"] not in ("running", "pending") for r in older)
    )


def berth_pids(server: BerthServer) -> list[int]:
    """The server process and any child it started."""
    assert server.process is not None
    pids = [server.process.pid]
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    if children.exists():
        pids += [int(pid) for pid in children.read_text().split()]
    return pids


def process_command_lines() -> str:
    lines = [subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:  # the process ended meanwhile
                continue
    return "\n".join(lines)


def set_password_through_stdin(server: BerthServer, user_id: str, password: str) -> str:
    """`berth admin set-password`, as a script runs it; the process list while it waits for
    the password."""
    setter = subprocess.Popen(
        [*BERTH, "admin", "set-password", "--user", user_id, "--data-dir", str(server.data_dir)],
        env=server.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    listing = process_command_lines()
    out, err = setter.communicate(password + "\n", timeout=60)
    assert setter.returncode == 0, err
    assert '"password_set": true' in out
    return listing


def sign_in(server: BerthServer, email: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/auth/sign-in", json={"email": email, "password": password}, timeout=30
    )


def test_no_plaintext_secret_or_credential_is_kept_logged_or_echoed(gated: BerthServer) -> None:
    marker = secrets.token_hex(8)
    human_secret = f"human-set-{marker}"
    agent_secret = f"agent-set-{marker}"
    agent = gated.new_tenant()
    agent.client.close()
    token = gated.session_token(agent.user_id)
    second_key: str = gated.admin("create-key", "--user", agent.user_id, "--name", "ci")["key"]
    recorder = Recorder()

    # A human with a password: set through stdin, signed in with, and a wrong one tried.
    password, wrong_password = f"pass-{marker}-word", f"wrong-{marker}-word"
    human_email = f"human-{marker}@example.com"
    human_id: str = gated.admin("create-user", "--email", human_email)["id"]
    listing_while_setting = set_password_through_stdin(gated, human_id, password)
    refused = sign_in(gated, human_email, wrong_password)
    assert refused.status_code == 401
    recorder.bodies.append(refused.text)
    signed_in = sign_in(gated, human_email, password)
    assert signed_in.status_code == 200, signed_in.text
    signed_in_token = signed_in.json()["token"]  # That answer is the one meant to carry it.
    with (
        recorder.client(gated, agent.key) as agent_http,
        recorder.client(gated, second_key) as ci_http,
        recorder.client(gated, token) as human,
    ):
        # A gated create, approved by the human.
        created = approve(
            human,
            agent_http.post(
                "/v1/compute",
                json={
                    "name": "holder",
                    "type": "service",
                    "image": TEST_IMAGE,
                    "command": "exec sleep 600",
                    "env": {"PLAIN": "not-a-secret"},
                },
            ),
        )
        workload_id = created["result"]["body"]["id"]
        base = f"/v1/compute/{workload_id}"

        # Secrets set by the human and by an agent key.
        for client, key, value in (
            (human, "HUMAN", human_secret),
            (ci_http, "AGENT", agent_secret),
        ):
            last_set = datetime.now(UTC)
            response = client.post(f"{base}/secrets", json={"key": key, "value": value})
            assert response.status_code == 200, response.text
        revealed = human.get(f"{base}/secrets/AGENT/reveal").json()
        assert revealed == {"key": "AGENT", "value": agent_secret}

        # Invalid requests that carry a secret: refused, and never echoed.
        invalid = [
            ("POST", f"{base}/secrets", {"key": "bad key", "value": human_secret}),
            ("POST", f"{base}/secrets?strict=true",
             {"key": "OK", "value": "v", "extra": agent_secret}),
            ("POST", f"{base}/secrets", {"key": "OK", "value": human_secret * 4000}),
            ("POST", f"{base}/secrets", {"key": "OK", "value": [human_secret]}),
            ("POST", "/v1/compute/nonexistent/secrets", {"key": "OK", "value": human_secret}),
            ("POST", "/v1/compute", {"name": "x", "type": "job", "image": TEST_IMAGE,
                                     "env": {"bad name": human_secret}}),
        ]  # fmt: skip
        for method, path, body in invalid:
            refused = agent_http.request(method, path, json=body)
            assert 400 <= refused.status_code < 500, refused.text
        # Without strictness the unknown field is dropped: the warning names it, never its value.
        lenient = agent_http.post(
            "/v1/compute/nonexistent/secrets",
            json={"key": "OK", "value": "v", "extra": agent_secret},
        )
        assert lenient.status_code == 404, lenient.text
        assert lenient.headers.get_list("Warning") == ['299 - "unknown field \\"extra\\""']
        assert agent_secret not in str(lenient.headers)
        malformed = agent_http.post(
            f"{base}/secrets",
            content=f'{{"key": "OK", "value": "{human_secret}"',
            headers={"Content-Type": "application/json"},
        )
        assert malformed.status_code == 400, malformed.text
        wrong_credential = httpx.get(
            f"{gated.url}/v1/compute", headers={"Authorization": f"Bearer {agent_secret}"}
        )
        recorder.bodies.append(wrong_credential.text)
        assert wrong_credential.status_code == 401

        state = wait_workload(
            human,
            workload_id,
            lambda s: s["generation"] == 3 and rolled(s["recent_runs"], last_set),
            timeout=60,
            what="the service's task on both secrets, alone",
        )
        assert state["secret_keys"] == ["AGENT", "HUMAN"]

        # A gated exec proves the secrets reached the task, without printing them.
        digest_command = 'printf %s "$HUMAN$AGENT" | md5sum'
        executed = approve(human, agent_http.post(f"{base}/exec", json={"command": digest_command}))
        expected = hashlib.md5((human_secret + agent_secret).encode()).hexdigest()
        assert executed["result"]["body"]["stdout"].split()[0] == expected

        # A gated shell: the human approves, the agent collects its token and connects.
        shell = approve(human, agent_http.post(f"{base}/shell"), events=2)
        own = agent_http.get(f"/v1/approvals/{shell['id']}").json()
        session = own["result"]["body"]["session"]
        shell_token = session["tokenValue"]
        assert shell_token.startswith("sh_")
        recorder.bodies.pop()  # that answer is the one meant to carry the token, to its agent
        seen = human.get(f"/v1/approvals/{shell['id']}").json()
        assert seen["result"]["body"]["session"]["tokenValue"] == "(hidden)"
        with connect(f"{session['streamUrl']}?token={shell_token}") as ws:
            ws.send(b"echo shell-$((20+1))\n")
            read_ws_until(ws, "shell-21")
            ws.send(b"exit\n")

        # The containers' status stream, with the API key in its URL.
        ws_url = gated.url.replace("http", "ws", 1)
        with connect(f"{ws_url}/compute/ws?token={agent.key}") as ws:
            recorder.bodies.append(str(ws.recv(timeout=30)))

        # Run logs, live and archived after the service stops.
        recorder.bodies.append(human.get(f"{base}/logs").text)
        assert human.post(f"{base}/stop").status_code == 200
        wait_workload(human, workload_id, lambda s: s["running_tasks"] == 0, timeout=60)
        for run in human.get(f"{base}/runs").json()["runs"]:
            assert human.get(f"{base}/runs/{run['id']}/logs").status_code == 200
        transcript = human.get(f"{base}/shell/sessions/{session['sessionId']}/transcript")
        assert transcript.status_code == 200 and "shell-21" in transcript.text

    plaintexts = {
        "a secret a human set": human_secret,
        "a secret an agent set": agent_secret,
        "an API key": agent.key,
        "an API key without its prefix": agent.key.removeprefix("nv_sk_"),
        "a second API key": second_key,
        "a session token": token,
        "a password": password,
        "a wrong password": wrong_password,
        "a signed-in session token": signed_in_token,
        "a shell token": shell_token,
        "a shell token without its prefix": shell_token.removeprefix("sh_"),
    }
    files = sorted(p for p in gated.data_dir.rglob("*") if p.is_file())
    assert any(p.suffix == ".jsonl" for p in files), "no run log was archived"
    places = {str(p.relative_to(gated.data_dir)): p.read_bytes() for p in files}
    places["the database's rows"] = gated.stored_rows()
    places["the server's log"] = gated.log_path.read_bytes()
    places["the API's responses"] = "\n".join(recorder.bodies).encode()
    places["process command lines"] = process_command_lines().encode()
    places["process command lines while a password was set"] = listing_while_setting.encode()
    for pid in berth_pids(gated):
        places[f"berth's environment (pid {pid})"] = Path(f"/proc/{pid}/environ").read_bytes()
    assert len(places["the server's log"]) > 1000  # debug logging did log
    assert b"token=[redacted]" in places["the server's log"]  # the stream URLs were logged

    leaks = [
        f"{what} in {where}"
        for what, plaintext in plaintexts.items()
        for where, content in places.items()
        if plaintext.encode() in content
    ]
    assert leaks == []
    # The search can find what is there: plain environment values are stored as they are.
    assert b"not-a-secret" in places["the database's rows"]
