"""Database errors a caller should retry: `StoreUnavailable`, and the test of what is one.

A database that restarts, drops a connection, or ends a transaction to break a deadlock
answers a call with an error that says nothing about the call itself; the same call shortly
after succeeds. The store turns those into `StoreUnavailable` (the API answers 503 with
`Retry-After`); every other database error stays what it is, a bug to see in the log.
"""

from __future__ import annotations

import errno
import socket

from sqlalchemy.exc import DBAPIError

RETRY_AFTER_SECONDS = 1

TRANSIENT_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
    "53300",  # too_many_connections
    "57P01",  # admin_shutdown (a restart or a stop of the server)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
}
"""PostgreSQL's error codes for a call that may succeed when retried; besides these, every
code of class 08 (connection exceptions)."""


SERVER_AWAY_ERRNOS = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
)
"""Connection errors that are plain `OSError`s, not `ConnectionError`s."""


class StoreUnavailable(Exception):
    """The database could not serve the call now; the same call may succeed shortly."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = RETRY_AFTER_SECONDS


def is_transient(error: BaseException, *, connecting: bool = False) -> bool:
    """Whether `error` (raised by the database or its driver) says nothing about the call
    but that it may succeed when retried. With `connecting` (the error came from opening
    a connection, beginning or committing, not from the caller's own code) a network error
    counts too: the server is away (refused, reset, silent, its host or network unreachable,
    its name not resolved, its unix socket gone while it is down). Other operating-system
    errors (a certificate refused, a socket berth may not open) are not waited out."""
    if isinstance(error, StoreUnavailable):
        return True
    if connecting and _server_away(error):
        return True
    if not isinstance(error, DBAPIError):
        # The driver's own error, from its connection used directly (`store.reads`).
        return _transient_state(getattr(error, "sqlstate", None))
    if error.connection_invalidated:
        return True
    original = error.orig
    state = getattr(original, "pgcode", None) or getattr(original, "sqlstate", None)
    if isinstance(state, str):
        return _transient_state(state)
    # SQLite: another process held the write lock past the busy timeout.
    return "database is locked" in str(original)


def _server_away(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError, socket.gaierror, FileNotFoundError)):
        return True
    return isinstance(error, OSError) and error.errno in SERVER_AWAY_ERRNOS


def _transient_state(state: object) -> bool:
    return isinstance(state, str) and (state in TRANSIENT_SQLSTATES or state.startswith("08"))


def unavailable(error: BaseException) -> StoreUnavailable:
    """The `StoreUnavailable` to raise from `error`."""
    kind = type(getattr(error, "orig", None) or error).__name__
    return StoreUnavailable(
        f"the database is unavailable ({kind}); retry in {RETRY_AFTER_SECONDS} s"
    )
