"""The test suite's loopback ports come from outside the kernel's ephemeral range, so an
outgoing connection cannot take one between its pick and the server's bind (which once made a
gateway fail to start with "address already in use")."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from berth.testing import server
from berth.testing.server import LISTEN_PORTS, free_port


def _ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_a_free_port_is_outside_the_ephemeral_range_and_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    ephemeral = _ephemeral_range()
    assert all(port in LISTEN_PORTS and port not in ephemeral for port in ports)


def test_a_port_something_listens_on_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        monkeypatch.setattr(server, "LISTEN_PORTS", range(taken, taken + 1))
        with pytest.raises(RuntimeError, match="no free loopback port"):
            free_port()
