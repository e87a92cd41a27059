"""Domain errors: each names what went wrong in words a caller can act on.

`field` names the offending input field when there is one, so the HTTP layer can return a
body such as `{"error": "cpu: must be at most 4 (your limit)", "field": "cpu"}`.
"""

from __future__ import annotations

# The database could not serve the call now (retry shortly): raised by the store itself,
# below the domain, and named here so that callers find every error in one place.
from berth.store.errors import StoreUnavailable as StoreUnavailable


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(DomainError):
    """The input breaks a rule (4xx)."""

    code = "invalid_request"


class NotFound(DomainError):
    """No such resource for this caller (also for other tenants' resources)."""

    code = "not_found"


class Conflict(DomainError):
    """The request does not fit the resource's current state."""

    code = "conflict"


class NotRunning(Conflict):
    """The call needs a running task of the workload or dev box, and none runs (start it,
    or trigger a run, first)."""

    code = "not_running"


class TooLarge(DomainError):
    """Content over a size limit (a file read or written through the files API, 413)."""

    code = "file_too_large"

    def __init__(self, message: str, *, limit_bytes: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.limit_bytes = limit_bytes


class QuotaExceeded(DomainError):
    """A per-user limit of the AccountKit would be exceeded."""

    code = "quota_exceeded"


class PaymentRequired(DomainError):
    """The user has no credits left for work that would start a task."""

    code = "payment_required"


class PrimitiveDisabled(DomainError):
    """The AccountKit does not enable the primitive this call needs."""

    code = "primitive_disabled"


class Unauthenticated(DomainError):
    """Missing, unknown, expired or revoked credentials."""

    code = "unauthenticated"


class ApprovalRequired(DomainError):
    """The call is gated: it waits, unchanged, for a human's approval."""

    code = "pending_approval"

    def __init__(self, approval_id: str) -> None:
        super().__init__(f"approval {approval_id} is pending: a human must approve this call")
        self.approval_id = approval_id


class Forbidden(DomainError):
    """The caller may see the resource but not do this (e.g. an agent approving)."""

    code = "forbidden"


class Gone(DomainError):
    """The resource existed but can no longer be used (an expired approval)."""

    code = "gone"


class TooManyAttempts(DomainError):
    """Too many failed attempts at a credential (sign-in by password): wait, then retry."""

    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Whole seconds (at least 1) until another attempt is accepted."""
