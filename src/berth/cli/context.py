"""What every client command gets (`Context`), its error types, and approval gating.

Exit statuses of the client commands: 0 success, 1 an error (the server's message is
printed as `error: ...`), 2 a usage or configuration error, 3 a call awaiting human
approval; `exec` and `ssh` exit with the remote command's status.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO, TypeVar

from berth.cli.progress import Progress
from berth.sdk import ApprovalPending, Client

T = TypeVar("T")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PENDING_APPROVAL = 3
EXIT_TIMED_OUT = 124
"""A remote command killed by its timeout (as coreutils' `timeout` does)."""


class CliError(Exception):
    """Printed as `error: <message>`; the command exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class UsageError(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


@dataclass
class Context:
    client: Client
    json: bool
    out: TextIO
    err: TextIO


Handler = Callable[[Context, argparse.Namespace], int]


def exit_status(code: int | None, *, timed_out: bool) -> int:
    """The local exit status for a remote command's exit code."""
    if timed_out:
        return EXIT_TIMED_OUT
    if code is None:
        return EXIT_ERROR
    if code < 0:
        return 128 + min(-code, 127)
    return min(code, 255)


def pending_message(approval_id: str) -> str:
    return (
        f"approval required: {approval_id} — a human must approve it "
        f"(berth approvals approve {approval_id})"
    )


def gated(
    ctx: Context,
    action: Callable[[str | None], T],
    *,
    wait: bool,
    approval_id: str | None = None,
) -> T:
    """Run a gated call (`action(approval_id)`).

    When the server answers pending approval: without `wait`, `ApprovalPending` propagates
    (the command prints the approval id and exits 3); with `wait`, announce it, poll the
    approval until a human decides, and repeat the call with the approval id. A rejected
    or expired approval is an error.
    """
    try:
        return action(approval_id)
    except ApprovalPending as pending:
        if not wait:
            raise
        pending_id = pending.approval_id
    ctx.err.write(pending_message(pending_id) + "\n")
    ctx.err.flush()
    with Progress(ctx.err, f"waiting for approval {pending_id}") as progress:
        decided = ctx.client.approvals.wait(
            pending_id, on_poll=lambda approval: progress.update(approval.status)
        )
    if decided.status != "approved":
        who = f" by {decided.decided_by}" if decided.decided_by else ""
        note = f": {decided.note}" if decided.note else ""
        raise CliError(f"approval {pending_id} was {decided.status}{who}{note}")
    return action(pending_id)
