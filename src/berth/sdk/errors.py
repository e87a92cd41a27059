"""Typed exceptions of the SDK, and the mapping from an HTTP error response to them.

Every exception is a `BerthError` carrying what the server said: `message` (its `error`),
`code`, `field` and the HTTP `status` (`None` when no response was received). The server's
error body is `{"error": "...", "code": "...", "field": ...}`; a body that is not in that
shape (a proxy's HTML page, say) still becomes a typed error whose message quotes it.
"""

from __future__ import annotations

from typing import Any

import httpx


class BerthError(Exception):
    """Base of every SDK error. `str(error)` is the server's message."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.details: list[dict[str, Any]] = details or []
        """For `422 invalid_request`: every problem, as `{"field", "error"}`."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status}, "
            f"code={self.code!r}, field={self.field!r})"
        )


class BadRequest(BerthError):
    """400 (malformed body) or 422 (a field breaks a rule, or a quota): `field` names it."""


class Unauthorized(BerthError):
    """401: missing, unknown, revoked or expired credentials."""


class PaymentRequired(BerthError):
    """402: no credits left, on work that would start a task."""


class Forbidden(BerthError):
    """403: the caller may not do this (e.g. the compute primitive is disabled)."""


class NotFound(BerthError):
    """404: no such workload, run, secret or approval for this caller."""


class Conflict(BerthError):
    """409: the action does not fit the current state (scaling a job, a duplicate name...)."""


class ServerError(BerthError):
    """5xx: the server failed; its log has the details."""


class NetworkError(BerthError):
    """No HTTP response: the server could not be reached, or the request timed out."""


class ConfigError(BerthError):
    """The SDK is missing its server URL or credentials, or the config file is unreadable."""


class WaitTimeout(BerthError):
    """A `wait_for`/`wait` helper gave up; `last` is the last state seen (or `None`)."""

    def __init__(self, message: str, last: Any = None) -> None:
        super().__init__(message, code="wait_timeout")
        self.last = last


class ApprovalPending(BerthError):
    """202: the call is gated; nothing happened yet. A human must approve `approval_id`.

    Raised (never returned) by every call the server answers with
    `202 {"status": "pending_approval", "approval_id": ...}`. Once approved, repeat the same
    call with `approval_id=<id>` (sent as the `Berth-Approval-Id` header) to get its result.
    """

    def __init__(self, approval_id: str) -> None:
        super().__init__(f"approval required: {approval_id}", status=202, code="pending_approval")
        self.approval_id = approval_id


_BY_STATUS: dict[int, type[BerthError]] = {
    400: BadRequest,
    401: Unauthorized,
    402: PaymentRequired,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: BadRequest,
}


def error_class(status: int) -> type[BerthError]:
    """The exception class for an HTTP error status."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, BerthError)


def error_from_response(response: httpx.Response) -> BerthError:
    """The typed error for a `>= 400` response whose body has been read."""
    status = response.status_code
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    kind = error_class(status)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        field = body.get("field")
        code = body.get("code")
        details = body.get("errors")
        return kind(
            body["error"],
            status=status,
            code=code if isinstance(code, str) else None,
            field=field if isinstance(field, str) else None,
            details=details if isinstance(details, list) else None,
        )
    text = response.text.strip()
    summary = f"HTTP {status} {response.reason_phrase}".rstrip()
    return kind(f"{summary}: {text[:300]}" if text else summary, status=status)
