"""SSH into containers through berth's gateway with the real OpenSSH client: routing by user
name or by key, revoked access cutting open sessions, and what a berth restart keeps: the
gateway's host key and the files under mount paths."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from berth.testing.server import free_port
from berth.testing.waiting import wait_for
from tests.support.server import BerthServer, Tenant
from tests.support.ssh import ssh, ssh_argv
from tests.support.streams import read_fd_until

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    srv = BerthServer(Path(tmp_path_factory.mktemp("ssh")) / "data")
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def running_box(tenant: Tenant, key_id: int, **body: Any) -> dict[str, Any]:
    box: dict[str, Any] = tenant.client.post(
        "/compute/containers", json={"name": "box", "ssh_key_ids": [key_id], **body}
    ).json()
    wait_for(
        lambda: tenant.client.get(f"/compute/containers/{box['id']}").json()["status"] == "running",
        timeout=30,
    )
    return box


def test_ssh_runs_commands_with_their_exit_status_and_honours_access_rules(
    restartable: BerthServer, tmp_path: Path
) -> None:
    tenant = restartable.new_tenant()
    mine = tenant.client.post(
        "/compute/ssh-keys", json={"name": "mine", "public_key": keygen(tmp_path / "mine")}
    ).json()
    other = tenant.client.post(
        "/compute/ssh-keys", json={"name": "other", "public_key": keygen(tmp_path / "other")}
    ).json()
    box = running_box(tenant, mine["id"], ssh_enabled=True)
    known = tmp_path / "known_hosts"

    done = ssh(
        restartable, tmp_path / "mine", box["id"], "echo hi-$((6*7)); exit 3", known_hosts=known
    )
    assert (done.returncode, done.stdout) == (3, "hi-42\n"), done.stderr
    assert box["ssh_command"] == f"ssh -p {restartable.ssh_port} {box['id']}@localhost"

    refused = ssh(restartable, tmp_path / "other", box["id"], "true", known_hosts=known)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    assert other["id"] != mine["id"]

    tenant.client.put(f"/compute/containers/{box['id']}/ssh", json={"ssh_enabled": False})
    off = ssh(restartable, tmp_path / "mine", box["id"], "true", known_hosts=known)
    assert off.returncode == 255
    tenant.client.put(f"/compute/containers/{box['id']}/ssh", json={"ssh_enabled": True})
    assert ssh(restartable, tmp_path / "mine", box["id"], "true", known_hosts=known).returncode == 0

    stranger = restartable.new_tenant()
    stranger_key = stranger.client.post(
        "/compute/ssh-keys", json={"name": "s", "public_key": keygen(tmp_path / "s")}
    )
    assert stranger_key.status_code == 201
    assert ssh(restartable, tmp_path / "s", box["id"], "true", known_hosts=known).returncode == 255

    tenant.client.post(f"/compute/containers/{box['id']}/stop")
    wait_for(
        lambda: tenant.client.get(f"/compute/containers/{box['id']}").json()["status"] == "stopped",
        timeout=30,
    )
    stopped = ssh(restartable, tmp_path / "mine", box["id"], "true", known_hosts=known)
    assert stopped.returncode == 255
    tenant.client.delete(f"/compute/containers/{box['id']}")


def test_port_forwarding_reaches_the_containers_own_ports(
    restartable: BerthServer, tmp_path: Path
) -> None:
    tenant = restartable.new_tenant()
    key = tenant.client.post(
        "/compute/ssh-keys", json={"name": "k", "public_key": keygen(tmp_path / "k")}
    ).json()
    box = running_box(tenant, key["id"], ssh_enabled=True)
    known = tmp_path / "known_hosts"
    serve = (
        "mkdir -p /tmp/www && echo forwarded > /tmp/www/index.html && "
        "httpd -p 127.0.0.1:8080 -h /tmp/www"
    )
    assert ssh(restartable, tmp_path / "k", box["id"], serve, known_hosts=known).returncode == 0
    local = free_port()
    forward = subprocess.Popen(
        [
            "ssh",
            "-N",
            "-p",
            str(restartable.ssh_port),
            "-i",
            str(tmp_path / "k"),
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            f"{local}:localhost:8080",
            f"{box['id']}@127.0.0.1",
        ],
        stderr=subprocess.PIPE,
    )
    try:

        def fetch() -> str | None:
            try:
                return httpx.get(f"http://127.0.0.1:{local}/", timeout=3).text
            except httpx.HTTPError:
                return None

        assert wait_for(fetch, timeout=20).strip() == "forwarded"
    finally:
        forward.terminate()
        forward.wait(timeout=10)
    tenant.client.delete(f"/compute/containers/{box['id']}")


def test_a_berth_restart_keeps_the_host_key_and_the_files_under_mount_paths(
    restartable: BerthServer, tmp_path: Path
) -> None:
    tenant = restartable.new_tenant()
    key = tenant.client.post(
        "/compute/ssh-keys", json={"name": "k", "public_key": keygen(tmp_path / "k")}
    ).json()
    box = running_box(tenant, key["id"], ssh_enabled=True, mount_paths=["/root", "/srv/data"])
    known = tmp_path / "known_hosts"
    write = ssh(
        restartable,
        tmp_path / "k",
        box["id"],
        "echo persisted > /srv/data/f; echo home > /root/g",
        known_hosts=known,
    )
    assert write.returncode == 0, write.stderr

    restartable.stop()
    restartable.start()
    wait_for(
        lambda: tenant.client.get(f"/compute/containers/{box['id']}").json()["status"] == "running",
        timeout=30,
    )
    tenant.client.post(f"/compute/containers/{box['id']}/stop")
    wait_for(
        lambda: tenant.client.get(f"/compute/containers/{box['id']}").json()["status"] == "stopped",
        timeout=30,
    )
    tenant.client.post(f"/compute/containers/{box['id']}/start")
    wait_for(
        lambda: tenant.client.get(f"/compute/containers/{box['id']}").json()["status"] == "running",
        timeout=30,
    )
    # StrictHostKeyChecking=yes: a changed host key would make ssh refuse to connect.
    read = ssh(
        restartable,
        tmp_path / "k",
        box["id"],
        "cat /srv/data/f /root/g",
        known_hosts=known,
        strict=True,
    )
    assert (read.returncode, read.stdout) == (0, "persisted\nhome\n"), read.stderr
    tenant.client.delete(f"/compute/containers/{box['id']}")


def test_root_at_any_host_name_reaches_the_one_dev_box_the_key_opens(
    restartable: BerthServer, tmp_path: Path
) -> None:
    tenant = restartable.new_tenant()
    key = tenant.client.post(
        "/compute/ssh-keys", json={"name": "k", "public_key": keygen(tmp_path / "k")}
    ).json()
    first = running_box(tenant, key["id"], ssh_enabled=True)
    second = running_box(tenant, key["id"], ssh_enabled=False)  # Not open to SSH: not counted.
    known = tmp_path / "known_hosts"
    named = ssh(restartable, tmp_path / "k", first["id"], "hostname", known_hosts=known)
    assert named.returncode == 0, named.stderr

    by_key = ssh(restartable, tmp_path / "k", "root", "hostname", known_hosts=known)
    assert (by_key.returncode, by_key.stdout) == (0, named.stdout), by_key.stderr

    tenant.client.put(f"/compute/containers/{second['id']}/ssh", json={"ssh_enabled": True})
    several = ssh(restartable, tmp_path / "k", "root", "hostname", known_hosts=known)
    assert (several.returncode, several.stdout) == (255, "")
    assert "this key opens several dev boxes" in several.stderr, several.stderr
    for box in (first, second):
        assert f"  {box['ssh_command']}\n" in several.stderr, several.stderr
    for box in (first, second):  # Naming the box still works.
        assert (
            ssh(restartable, tmp_path / "k", box["id"], "true", known_hosts=known).returncode == 0
        )

    keygen(tmp_path / "unused")
    refused = ssh(restartable, tmp_path / "unused", "root", "hostname", known_hosts=known)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    for box in (first, second):
        tenant.client.delete(f"/compute/containers/{box['id']}")


# -- revoked access cuts open sessions --------------------------------------------------------

REVOKE_DEADLINE = 1.0
REVOKE_SLACK = 0.25
"""Each open session must end within the deadline of the revoking call (plus the slack of
polling the ssh processes and of a loaded test machine)."""


def read_until(process: subprocess.Popen[bytes], marker: bytes) -> None:
    """Read the process's stdout until `marker` shows."""
    assert process.stdout is not None
    read_fd_until(process.stdout.fileno(), lambda output: marker in output)


def open_sessions(
    server: BerthServer, key: Path, box_id: str, known: Path
) -> list[subprocess.Popen[bytes]]:
    """A command, a login shell on a terminal and a `-L` forward into the box, each shown to
    work."""
    serve = "mkdir -p /tmp/www && echo page > /tmp/www/index.html && httpd -p 127.0.0.1:8080"
    assert ssh(server, key, box_id, serve + " -h /tmp/www", known_hosts=known).returncode == 0
    local = free_port()
    pipes: dict[str, Any] = {
        "stdin": subprocess.PIPE,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
    }
    argv = ssh_argv(server, key, box_id, "echo up-$((6*7)); exec sleep 30", known_hosts=known)
    command = subprocess.Popen(argv, **pipes)
    shell = subprocess.Popen(
        ssh_argv(server, key, box_id, known_hosts=known, options=["-tt"]), **pipes
    )
    forward = subprocess.Popen(
        ssh_argv(
            server,
            key,
            box_id,
            known_hosts=known,
            options=["-N", "-o", "ExitOnForwardFailure=yes", "-L", f"{local}:localhost:8080"],
        ),
        **pipes,
    )
    sessions = [command, shell, forward]
    try:
        read_until(command, b"up-42")
        assert shell.stdin is not None
        shell.stdin.write(b"echo up-$((6*7))\n")
        shell.stdin.flush()
        read_until(shell, b"up-42")

        def fetch() -> str | None:
            try:
                return httpx.get(f"http://127.0.0.1:{local}/", timeout=3).text
            except httpx.HTTPError:
                return None

        assert wait_for(fetch, timeout=20) == "page\n"
    except BaseException:
        end_sessions(sessions)
        raise
    return sessions


def end_sessions(sessions: list[subprocess.Popen[bytes]]) -> list[str]:
    """Kill what still runs; the sessions' stderr."""
    errors = []
    for session in sessions:
        if session.poll() is None:
            session.kill()
        errors.append(session.communicate(timeout=10)[1].decode(errors="replace"))
    return errors


Revoke = Callable[[Tenant, dict[str, Any], dict[str, Any]], httpx.Response]

REVOKES: dict[str, Revoke] = {
    "key deleted": lambda t, box, key: t.client.delete(f"/compute/ssh-keys/{key['id']}"),
    "ssh disabled": lambda t, box, key: t.client.put(
        f"/compute/containers/{box['id']}/ssh", json={"ssh_enabled": False}
    ),
    "box stopped": lambda t, box, key: t.client.post(f"/compute/containers/{box['id']}/stop"),
    "box deleted": lambda t, box, key: t.client.delete(f"/compute/containers/{box['id']}"),
}


@pytest.mark.parametrize("revoke", list(REVOKES))
def test_revoking_access_cuts_open_sessions_within_a_second(
    restartable: BerthServer, tmp_path: Path, revoke: str
) -> None:
    tenant = restartable.new_tenant()
    key = tenant.client.post(
        "/compute/ssh-keys", json={"name": "k", "public_key": keygen(tmp_path / "k")}
    ).json()
    box = running_box(tenant, key["id"], ssh_enabled=True)
    sessions = open_sessions(restartable, tmp_path / "k", box["id"], tmp_path / "known_hosts")
    try:
        started = time.monotonic()
        response = REVOKES[revoke](tenant, box, key)
        assert response.status_code == 200, response.text
        wait_for(
            lambda: all(session.poll() is not None for session in sessions),
            timeout=REVOKE_DEADLINE + REVOKE_SLACK,
            interval=0.02,
            what=f"every session to end after '{revoke}'",
        )
        elapsed = time.monotonic() - started
    finally:
        errors = end_sessions(sessions)
    assert elapsed <= REVOKE_DEADLINE + REVOKE_SLACK, elapsed
    assert [session.returncode for session in sessions] == [255, 255, 255], errors
    for err in errors:
        assert f"SSH access to container {box['id']} was revoked" in err, err
    tenant.client.delete(f"/compute/containers/{box['id']}")
