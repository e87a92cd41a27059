"""The gateway's own ports when unset: 80/443 when they can be bound, else 9080/9443, never
inside the ingress rule range; ports the operator set are kept as they are."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from berth.config import Settings
from berth.gateway.http import default_ports
from berth.gateway.http.default_ports import can_listen, resolve_gateway_ports


def test_a_port_another_program_listens_on_cannot_be_listened_on() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert not can_listen("127.0.0.1", port)
    assert can_listen("127.0.0.1", port)


def test_an_unset_port_falls_back_when_the_preferred_one_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        monkeypatch.setattr(default_ports, "HTTP_PORTS", (taken, 9080))
        resolved = resolve_gateway_ports(Settings(gateway_host="127.0.0.1"))
    assert resolved.gateway_port == 9080
    assert resolved.gateway_tls_port is None  # no certificate, no HTTPS port


def test_the_defaults_lie_outside_the_rule_range() -> None:
    for port in (*default_ports.HTTP_PORTS, *default_ports.HTTPS_PORTS):
        assert not 8000 <= port <= 8999


def test_ports_the_operator_set_are_kept(tmp_path: Path) -> None:
    settings = Settings(
        gateway_port=8123,
        gateway_tls_port=8124,
        tls_cert_file=tmp_path / "cert.pem",
        tls_key_file=tmp_path / "key.pem",
    )
    assert resolve_gateway_ports(settings) is settings
