"""`berth compute exec`, `berth compute ssh` in a pseudo-terminal, and approval gating in the
CLI, each as a subprocess against a real server and the real engine.

The ssh test gives the CLI a pty of its own (stdin, stdout and stderr on the slave side) and
plays the user on the master side: it sets the window size, types commands, reads what the
remote shell prints, resizes the window (and sends SIGWINCH, as a terminal emulator's kernel
would), and checks the CLI exits with the remote status and puts the terminal back as it was.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.testing.server import BERTH
from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload
from tests.support.cli import clean_env, ok, run_berth
from tests.support.server import TEST_IMAGE, BerthServer, Tenant
from tests.support.streams import read_fd_until

pytestmark = pytest.mark.engine

APPROVAL_LINE = re.compile(r"approval required: (apr_\w+)")
SIZE_LINE = re.compile(rb"^(\d+) (\d+)\r?$", re.MULTILINE)
PROMPT = re.compile(rb"[#$] (?:\x1b\[[0-9;]*[A-Za-z])*$")
"""A shell prompt at the end of the output, maybe followed by control sequences (busybox ash
asks for the cursor position, and redraws the prompt when no answer comes)."""


@pytest.fixture(scope="module")
def box(server: BerthServer) -> Iterator[tuple[Tenant, str]]:
    """One running service for the module's exec and ssh tests; deleted at the end."""
    tenant = server.new_tenant()
    svc = create(tenant.client, name="clibox", type="service", command="exec sleep 3600")
    try:
        wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 1)
        yield tenant, svc["id"]
    finally:
        tenant.client.delete(f"/v1/compute/{svc['id']}")
        tenant.client.close()


@pytest.fixture
def box_env(server: BerthServer, box: tuple[Tenant, str], tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path / "config", BERTH_URL=server.url, BERTH_API_KEY=box[0].key)


# --- exec -------------------------------------------------------------------------------


def test_exec_splits_the_streams_and_propagates_the_exit_status(
    box: tuple[Tenant, str], box_env: dict[str, str]
) -> None:
    _tenant, workload_id = box
    result = run_berth(
        "compute", "exec", workload_id, "--", "sh", "-c", "echo out; echo err >&2; exit 7",
        env=box_env,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")


def test_exec_timeout_kills_the_command_and_exits_124(
    box: tuple[Tenant, str], box_env: dict[str, str]
) -> None:
    _tenant, workload_id = box
    started = time.monotonic()
    result = run_berth(
        "compute", "exec", workload_id, "--timeout", "1", "--", "sleep", "30", env=box_env,
        timeout=25,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 124, result.stderr
    assert "timed out after 1s" in result.stderr and "Traceback" not in result.stderr
    assert elapsed < 15, f"took {elapsed:.1f}s"


def test_exec_dash_i_forwards_stdin(box: tuple[Tenant, str], box_env: dict[str, str]) -> None:
    _tenant, workload_id = box
    result = run_berth(
        "compute", "exec", "-i", workload_id, "--", "cat", env=box_env, stdin="data\n"
    )
    assert ok(result) == "data\n"
    # Without -i the command's stdin is empty: cat ends at once and prints nothing.
    assert ok(run_berth("compute", "exec", workload_id, "--", "cat", env=box_env, stdin="x")) == ""


# --- ssh in a pseudo-terminal -------------------------------------------------------------


def set_window(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Pty:
    """The user's side (the master) of the CLI's terminal: everything read so far."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.seen = b""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def read_until(
        self, pattern: re.Pattern[bytes], start: int, timeout: float = 15
    ) -> re.Match[bytes]:
        """Read until `pattern` matches the output from offset `start`; fail at the deadline."""
        match, self.seen = read_fd_until(
            self.master, lambda out: pattern.search(out, start), seen=self.seen, timeout=timeout
        )
        return match

    def stty_size(self) -> tuple[int, int]:
        """Run `stty size` in the remote shell; the (rows, cols) it prints."""
        start = len(self.seen)
        self.type("stty size\n")
        match = self.read_until(SIZE_LINE, start)
        return int(match[1]), int(match[2])


def test_ssh_in_a_pty_resizes_propagates_the_exit_status_and_restores_the_terminal(
    box: tuple[Tenant, str], box_env: dict[str, str]
) -> None:
    _tenant, workload_id = box
    master, slave = os.openpty()
    proc: subprocess.Popen[bytes] | None = None
    try:
        set_window(slave, 31, 97)
        before = termios.tcgetattr(slave)
        assert before[3] & termios.ECHO and before[3] & termios.ICANON
        proc = subprocess.Popen(
            [*BERTH, "compute", "ssh", workload_id],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**box_env, "TERM": "xterm"},
            start_new_session=True,
        )
        user = Pty(master)
        user.read_until(PROMPT, 0, timeout=30)
        during = termios.tcgetattr(slave)
        assert not during[3] & (termios.ECHO | termios.ICANON), "not in raw mode"

        assert user.stty_size() == (31, 97)

        set_window(slave, 40, 120)
        proc.send_signal(signal.SIGWINCH)
        # The resize travels as its own frame and is applied by the engine: poll for it.
        sizes: list[tuple[int, int]] = []

        def resized() -> bool:
            sizes.append(user.stty_size())
            return sizes[-1] == (40, 120)

        try:
            wait_for(resized, timeout=15, interval=0.2, what="`stty size` to say 40 120")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; sizes seen: {sizes}") from None

        user.type("exit 5\n")
        assert proc.wait(timeout=20) == 5, user.seen.decode(errors="replace")
        after = termios.tcgetattr(slave)
        assert after == before
        assert after[3] & termios.ECHO and after[3] & termios.ICANON
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
        os.close(slave)


# --- approval gating --------------------------------------------------------------------


@pytest.fixture(scope="module")
def gated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """A server gating agents' create, exec and shell (as the default policy does)."""
    srv = BerthServer(
        Path(tmp_path_factory.mktemp("gated-cli")) / "data",
        env={"BERTH_DEFAULT_GATED_ACTIONS": '["create", "exec", "shell"]'},
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def pending_id(stderr: str) -> str:
    match = APPROVAL_LINE.search(stderr)
    assert match, stderr
    return match[1]


def test_gating_in_the_cli_create_approve_show_and_exec_wait(
    gated_server: BerthServer, tmp_path: Path
) -> None:
    agent = gated_server.new_tenant()
    token = gated_server.session_token(agent.user_id)
    agent_env = clean_env(tmp_path / "a", BERTH_URL=gated_server.url, BERTH_API_KEY=agent.key)
    human_env = clean_env(tmp_path / "h", BERTH_URL=gated_server.url, BERTH_API_KEY=token)
    human = httpx.Client(
        base_url=gated_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    try:
        created = run_berth(
            "compute", "create", "--name", "gated", "--type", "service", "--image", TEST_IMAGE,
            "--command", "exec sleep 600", "--memory-mb", "32", env=agent_env,
        )  # fmt: skip
        assert created.returncode == 3, created.stderr
        assert created.stdout == "" and "Traceback" not in created.stderr
        approval_id = pending_id(created.stderr)
        assert agent.client.get("/v1/compute").json()["workloads"] == []

        refused = run_berth("approvals", "approve", approval_id, env=agent_env)
        assert refused.returncode == 1 and refused.stderr.startswith("error: ")

        approved = json.loads(
            ok(run_berth("approvals", "approve", approval_id, "--json", env=human_env))
        )
        assert approved["status"] == "approved"

        shown: dict[str, Any] = json.loads(
            ok(run_berth("approvals", "show", approval_id, "--json", env=agent_env))
        )
        assert shown["id"] == approval_id and shown["status"] == "approved"
        assert shown["action"] == "create" and shown["result"]["status_code"] == 201
        workload = shown["result"]["body"]
        assert workload["name"] == "gated" and workload["user_id"] == agent.user_id
        wait_workload(agent.client, workload["id"], lambda s: s["running_tasks"] == 1)

        _exec_waits_for_a_human(agent, human, agent_env, workload["id"])
    finally:
        for item in agent.client.get("/v1/compute").json()["workloads"]:
            agent.client.delete(f"/v1/compute/{item['id']}")
        agent.client.close()
        human.close()


def _exec_waits_for_a_human(
    agent: Tenant, human: httpx.Client, agent_env: dict[str, str], workload_id: str
) -> None:
    """`exec --wait` blocks on the pending approval; a human approves from another thread."""
    proc = subprocess.Popen(
        [*BERTH, "compute", "exec", "--wait", workload_id, "--", "echo", "hi"],
        env=agent_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    decided: dict[str, Any] = {}

    def approve() -> None:
        try:

            def pending_exec() -> str | None:
                listed = human.get("/v1/approvals", params={"status": "pending"}).json()
                ids = [a["id"] for a in listed["approvals"] if a["action"] == "exec"]
                return ids[0] if ids else None

            exec_approval = wait_for(pending_exec, timeout=30, what="the exec's approval")
            decided["still_waiting"] = proc.poll() is None
            response = human.post(f"/v1/approvals/{exec_approval}/approve")
            decided["status"] = response.status_code
        except BaseException as exc:  # reported by the main thread
            decided["error"] = exc

    approver = threading.Thread(target=approve)
    approver.start()
    try:
        out, err = proc.communicate(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        approver.join(timeout=45)
    assert "error" not in decided, decided
    assert decided == {"still_waiting": True, "status": 200}
    assert proc.returncode == 0, err
    assert out == "hi\n"
    assert "approval required: apr_" in err and "Traceback" not in err
