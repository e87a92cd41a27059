"""The shell session WebSocket: a PTY in the task, bridged to the client (the protocols
and the `?cols=`/`?rows=` size are `berth.api.terminal`'s, shared with the container
terminal; the size defaults to the one the session was opened with).

A size out of range is refused at the handshake (`422` naming it) before the token is looked
at, so the token stays usable. The token (from `?token=` or `Authorization: Bearer`) is
checked and used up before the WebSocket is accepted, so a wrong, reused, expired or foreign
token gets the handshake refused (HTTP 401 with the JSON error body) and no shell ever
starts. The session ends when the shell exits, the client leaves, the task stops, or the
workload is deleted; input and output are recorded in an asciicast v2 transcript.
"""

from __future__ import annotations

import logging

from fastapi import WebSocket

from berth.api.deps import bearer_credential_ws
from berth.api.errors import STATUS_BY_ERROR
from berth.api.routing import PrefixedRouter
from berth.api.terminal import requested_size, serve_terminal
from berth.api.ws_handshake import refuse_handshake
from berth.domain import shells
from berth.domain.context import Domain
from berth.domain.errors import DomainError

log = logging.getLogger("berth.shell")

router = PrefixedRouter(tags=["exec and shell"])


@router.websocket("/v1/shell/sessions/{session_id}/stream")
async def shell_stream(websocket: WebSocket, session_id: str) -> None:
    domain: Domain = websocket.app.state.domain
    try:
        size = requested_size(websocket)
        claimed = await shells.claim_session(domain, session_id, bearer_credential_ws(websocket))
    except DomainError as exc:
        log.info("shell session %s refused: %s", session_id, exc.message)
        await refuse_handshake(websocket, exc, STATUS_BY_ERROR)
        return
    row = claimed.session
    exit_code: int | None = None
    try:
        exit_code = await serve_terminal(
            websocket,
            domain,
            task_id=claimed.task_id,
            run_id=row.run_id,
            cols=size.cols or row.cols,
            rows=size.rows or row.rows,
            transcript_for=row.id,
            title=f"{row.workload_id} {row.run_id}",
            on_exit=lambda code: shells.end_session(domain, row.id, exit_code=code),
        )
    finally:
        await shells.end_session(domain, row.id, exit_code=exit_code)  # no-op once ended
