"""berth's Python SDK: sync and async clients of the Workloads and approvals APIs.

A human without a token gets one with `sign_in(url, email=..., password=...)`.

It imports `berth.schemas` (the wire models) and never the server. Methods return those
pydantic models and raise the typed errors below, each carrying the server's `message`,
`code`, `field` and HTTP `status`.

Approval gating: a call the company's policy gates (create, exec, shell, by an API-key
caller) raises `ApprovalPending` with its `approval_id`; nothing happened yet. A human
approves it (`client.approvals.approve(id)` with a session token, or `berth approvals
approve`); the caller waits with `client.approvals.wait(id)` and repeats the same call with
`approval_id=id` (sent as the `Berth-Approval-Id` header) to get the approved result.
"""

from berth.sdk.auth import sign_in
from berth.sdk.client import AsyncClient, Client
from berth.sdk.config import Credentials, config_path, resolve_credentials, write_config
from berth.sdk.errors import (
    ApprovalPending,
    BadRequest,
    BerthError,
    ConfigError,
    Conflict,
    Forbidden,
    NetworkError,
    NotFound,
    PaymentRequired,
    ServerError,
    Unauthorized,
    WaitTimeout,
)
from berth.sdk.streams import (
    SHELL_SUBPROTOCOL,
    ExecEvent,
    ExecExit,
    ExecOutput,
    shell_stream_url,
)

__all__ = [
    "SHELL_SUBPROTOCOL",
    "ApprovalPending",
    "AsyncClient",
    "BadRequest",
    "BerthError",
    "Client",
    "ConfigError",
    "Conflict",
    "Credentials",
    "ExecEvent",
    "ExecExit",
    "ExecOutput",
    "Forbidden",
    "NetworkError",
    "NotFound",
    "PaymentRequired",
    "ServerError",
    "Unauthorized",
    "WaitTimeout",
    "config_path",
    "resolve_credentials",
    "shell_stream_url",
    "sign_in",
    "write_config",
]
