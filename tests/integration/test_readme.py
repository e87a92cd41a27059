"""The README's "Five minutes with berth", pasted as it is into a shell against a fresh berth.

The block runs with `bash -euo pipefail`, so any call that answers something other than what
the next line expects (a 404, a pending approval where a job was expected) fails the test.
Only the address changes: `localhost:7070` becomes the test server's port, and the admin
commands find the server's data directory through `BERTH_DATA_DIR`.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.testing.waiting import wait_for
from tests.support.server import BerthServer

ROOT = Path(__file__).resolve().parents[2]


def readme_block(heading: str) -> str:
    """The first ```sh block under `heading` in README.md."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading) :]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, f"no sh block under {heading!r}"
    return match.group(1)


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[BerthServer]:
    """A new berth with its default approval policy (agents' creates wait for a human)."""
    srv = BerthServer(
        tmp_path / "data", env={"BERTH_DEFAULT_GATED_ACTIONS": '["create", "exec", "shell"]'}
    )
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def test_five_minutes_with_berth_works_when_pasted(fresh_server: BerthServer) -> None:
    script = readme_block("## Five minutes with berth").replace(
        "localhost:7070", f"127.0.0.1:{fresh_server.port}"
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script + '\necho "JOB=$ID KEY=$KEY"\n'],
        cwd=ROOT,
        env={**fresh_server.env, "BERTH_DATA_DIR": str(fresh_server.data_dir)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = done.stdout.splitlines()
    approved = json.loads(lines[0])
    assert approved["status"] == "approved" and approved["result"]["status_code"] == 201
    assert "hello from berth" in lines, done.stdout
    job_id, key = re.findall(r"JOB=(\S+) KEY=(\S+)", done.stdout)[0]

    def finished_run() -> dict[str, object] | None:
        runs = fresh_server_runs(fresh_server, job_id, key)
        return runs[0] if runs and runs[0]["exit_code"] is not None else None

    run = wait_for(finished_run, timeout=30, what="the job's run to be recorded")
    assert run["status"] == "succeeded" and run["exit_code"] == 0


def fresh_server_runs(server: BerthServer, job_id: str, key: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [
            "curl",
            "-sf",
            f"{server.url}/v1/compute/{job_id}/runs",
            "-H",
            f"Authorization: Bearer {key}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    runs: list[dict[str, object]] = json.loads(out.stdout)["runs"]
    return runs


def quickstart_script() -> str:
    """Sections 2 to 9 of the quick start, as one script (the interactive shell left out)."""
    text = (ROOT / "docs" / "quickstart.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)[1:]  # the first one runs berth
    lines = [
        line
        for block in blocks
        for line in block.splitlines()
        if not line.startswith("berth compute ssh")
    ]
    return "\n".join(lines)


def test_the_quick_start_works_when_pasted(fresh_server: BerthServer, tmp_path: Path) -> None:
    script = quickstart_script().replace("localhost:7070", f"127.0.0.1:{fresh_server.port}")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script + '\necho "BOX=$BOX"\n'],
        cwd=ROOT,
        env={
            **fresh_server.env,
            "BERTH_DATA_DIR": str(fresh_server.data_dir),
            "HOME": str(tmp_path),  # ssh-keygen's key and berth login's config land here
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert "hello" in lines  # the job's output, followed
    assert "hi" in lines  # the service, through the gateway
    assert '{"key":"API_TOKEN","value":"s3cret"}' in lines
    approved = next(json.loads(line) for line in lines if '"status":"approved"' in line)
    assert approved["note"] == "fine" and approved["result"]["status_code"] == 201
    repeated = json.loads(
        lines[lines.index(next(x for x in lines if x.startswith('{"run_id"'))) - 1]
    )
    assert repeated["id"] == approved["result"]["body"]["id"]  # the agent's repeat: that same job
    assert "bin" in lines  # `berth compute exec ... -- ls /`
    ssh_command = next(line for line in lines if line.startswith("ssh "))
    box = lines[-1].removeprefix("BOX=")

    def ssh_login() -> str | None:
        argv = [
            *shlex.split(ssh_command),
            "-i",
            str(tmp_path / ".ssh" / "berth"),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "hostname",
        ]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return result.stdout.strip() if result.returncode == 0 else None

    assert wait_for(ssh_login, timeout=60, what=f"an SSH login to dev box {box}")
