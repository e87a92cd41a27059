"""SSH into containers through berth's gateway with the real OpenSSH client, and what a
berth restart keeps: the gateway's host key and the files under mount paths."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.integration.server import BerthServer, Tenant, free_port

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


def ssh(
    server: BerthServer,
    key: Path,
    user: str,
    *command: str,
    known_hosts: Path,
    strict: bool = False,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-p",
            str(server.ssh_port),
            "-i",
            str(key),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            f"StrictHostKeyChecking={'yes' if strict else 'accept-new'}",
            f"{user}@127.0.0.1",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


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
