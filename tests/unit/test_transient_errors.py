"""Which errors `store.errors.is_transient` counts as a database that is away (retried, a
503, waited for at start) and which it leaves as what they are."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from berth.store.errors import StoreUnavailable, is_transient


class DriverError(Exception):
    """Stands for a driver's error carrying PostgreSQL's SQLSTATE, as asyncpg's do."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        TimeoutError(),
        socket.gaierror(socket.EAI_NONAME, "name not known"),
        FileNotFoundError(errno.ENOENT, "no socket file while the server is down"),
        OSError(errno.EHOSTUNREACH, "no route to host"),
        OSError(errno.ENETUNREACH, "network is unreachable"),
    ],
    ids=repr,
)
def test_a_server_that_is_away_is_transient_while_connecting(error: OSError) -> None:
    assert is_transient(error, connecting=True)
    assert not is_transient(error)  # raised by the caller's own code, it is a bug


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(errno.EACCES, "a socket berth may not open"),
        ssl.SSLCertVerificationError("certificate verify failed"),
        OSError(errno.EINVAL, "invalid argument"),
    ],
    ids=repr,
)
def test_other_operating_system_errors_are_not_waited_out(error: OSError) -> None:
    assert not is_transient(error, connecting=True)


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        ("57P03", True),  # starting up
        ("53300", True),  # too many connections
        ("08006", True),  # connection failure
        ("40001", True),  # serialization failure
        ("28P01", False),  # wrong password
        ("3D000", False),  # no such database
        ("23505", False),  # unique violation: the caller's
    ],
)
def test_driver_errors_by_sqlstate(sqlstate: str, transient: bool) -> None:
    assert is_transient(DriverError(sqlstate), connecting=True) is transient


def test_store_unavailable_is_transient() -> None:
    assert is_transient(StoreUnavailable("away"))
