"""The gateway's HTTPS listener (a wildcard certificate, SNI) and the listeners it opens for
containers' ingress rules on 8000-8999."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from berth.testing.server import free_port
from berth.testing.waiting import wait_for
from tests.support.api import create, wait_workload
from tests.support.certificates import self_signed
from tests.support.server import BerthServer

pytestmark = pytest.mark.engine

HTTPD = "mkdir -p /www && echo secure > /www/index.html && exec httpd -f -p 8080 -h /www"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BerthServer]:
    """A server with a certificate for *.localhost (~2 s to start)."""
    directory = Path(tmp_path_factory.mktemp("tls"))
    cert, key = self_signed("*.berth.test", dns=("*.berth.test",)).write(directory)
    srv = BerthServer(
        directory / "data",
        env={
            "BERTH_TLS_CERT_FILE": str(cert),
            "BERTH_TLS_KEY_FILE": str(key),
            "BERTH_GATEWAY_TLS_PORT": str(free_port()),
            # OpenSSL matches no wildcard directly under a single label such as localhost.
            "BERTH_PUBLIC_DOMAIN": "berth.test",
        },
    )
    srv.cert = cert  # type: ignore[attr-defined]
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def https_get(server: BerthServer, host: str) -> tuple[int, str]:
    """GET / over TLS to the gateway, presenting `host` as SNI name and Host header."""
    context = ssl.create_default_context(cafile=str(server.cert))  # type: ignore[attr-defined]
    port = int(server.env["BERTH_GATEWAY_TLS_PORT"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode(errors="replace")


def test_https_with_the_operators_certificate(tls_server: BerthServer) -> None:
    tenant = tls_server.new_tenant()
    svc = create(tenant.client, name="secure", type="service", command=HTTPD, port=8080)
    wait_workload(tenant.client, svc["id"], lambda s: s["running_tasks"] == 1)
    host = f"{svc['id']}.berth.test"

    def served() -> str | None:
        status, body = https_get(tls_server, host)
        return body if status == 200 else None

    assert "secure" in wait_for(served, timeout=20)
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(tls_server, "elsewhere.example")
    tenant.client.delete(f"/v1/compute/{svc['id']}")


def test_a_containers_ingress_rule_gets_its_own_listener(
    tls_server: BerthServer, tmp_path: Path
) -> None:
    tenant = tls_server.new_tenant()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    key = tenant.client.post(
        "/compute/ssh-keys",
        json={"name": "k", "public_key": (tmp_path / "k.pub").read_text().strip()},
    ).json()
    box = tenant.client.post(
        "/compute/containers", json={"name": "web", "ssh_key_ids": [key["id"]]}
    ).json()
    wait_for(
        lambda: tenant.client.get(f"/compute/containers/{box['id']}").json()["status"] == "running",
        timeout=30,
    )
    with connect(
        f"{tls_server.url.replace('http', 'ws')}/compute/containers/{box['id']}/terminal"
        f"?token={tenant.key}"
    ) as ws:
        ws.send(b"mkdir -p /tmp/w && echo ruled > /tmp/w/index.html && httpd -p 8080 -h /tmp/w\n")
        ws.send(b"echo started-$((1+1))\n")
        seen = ""
        while "started-2" not in seen:
            frame = ws.recv(timeout=15)
            seen += frame.decode(errors="replace") if isinstance(frame, bytes) else frame
    rule_port = next(p for p in range(8000, 9000) if _free(p))
    added = tenant.client.post(
        f"/compute/containers/{box['id']}/ingress", json={"port": rule_port, "target_port": 8080}
    )
    assert added.status_code == 201

    def through_rule() -> str | None:
        try:
            response = httpx.get(
                f"http://127.0.0.1:{rule_port}/",
                headers={"Host": f"{box['id']}.berth.test"},
                timeout=5,
            )
        except httpx.HTTPError:
            return None
        return response.text.strip() if response.status_code == 200 else None

    assert wait_for(through_rule, timeout=20) == "ruled"
    tenant.client.delete(f"/compute/containers/{box['id']}/ingress/{rule_port}")
    wait_for(lambda: not _listening(rule_port), timeout=20, what="the rule's listener to close")
    tenant.client.delete(f"/compute/containers/{box['id']}")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0
