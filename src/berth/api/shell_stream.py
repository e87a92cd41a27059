"""The shell session WebSocket: a PTY in the task, bridged to the client.

Protocols:

- default (no subprotocol): every frame the client sends, text or binary, is raw terminal
  input; every frame berth sends is raw terminal output (binary). A plain WebSocket client
  such as websocat works as is. The connection closes when the shell exits (close reason
  `exit <code>`).
- `berth.shell.v1`: binary frames carry raw bytes both ways; the client may also send text
  frames `{"type": "resize", "cols": C, "rows": R}` (or `{"type": "stdin", "data": "..."}`);
  before closing, berth sends the text frame `{"type": "exit", "code": N}`.

The token (from `?token=` or `Authorization: Bearer`) is checked and used up before the
WebSocket is accepted, so a wrong, reused, expired or foreign token gets the handshake
refused (HTTP 403) and no shell ever starts. The session ends when the shell exits, the
client leaves, the task stops, or the workload is deleted; input and output are recorded in
an asciicast v2 transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from berth.api.deps import bearer_credential_ws
from berth.domain import shells
from berth.domain.context import Domain
from berth.domain.errors import DomainError
from berth.domain.events import Subscription
from berth.runtime.base import CommandNotFound, InteractiveSession, RuntimeDriverError, TaskId
from berth.store.transcripts import TranscriptWriter

SUBPROTOCOL = "berth.shell.v1"
log = logging.getLogger("berth.shell")

router = APIRouter(tags=["exec and shell"])


@router.websocket("/v1/shell/sessions/{session_id}/stream")
async def shell_stream(websocket: WebSocket, session_id: str) -> None:
    domain: Domain = websocket.app.state.domain
    try:
        claimed = await shells.claim_session(domain, session_id, bearer_credential_ws(websocket))
    except DomainError as exc:
        log.info("shell session %s refused: %s", session_id, exc.message)
        await websocket.close(code=1008, reason=exc.message[:120])
        return
    row = claimed.session
    assert domain.runtime is not None
    structured = SUBPROTOCOL in websocket.scope.get("subprotocols", [])
    events = domain.bus.subscribe()
    try:
        terminal = await domain.runtime.open_terminal(
            TaskId(claimed.task_id),
            ["/bin/sh", "-c", shells.LOGIN_SHELL],
            cols=row.cols,
            rows=row.rows,
        )
    except (CommandNotFound, RuntimeDriverError) as exc:
        events.close()
        await shells.end_session(domain, row.id, exit_code=None)
        await websocket.close(code=1011, reason=f"no shell could start: {exc}"[:120])
        return
    await websocket.accept(subprotocol=SUBPROTOCOL if structured else None)
    transcript = domain.transcripts.open(
        row.id, cols=row.cols, rows=row.rows, title=f"{row.workload_id} {row.run_id}"
    )
    exit_code: int | None = None
    try:
        exit_code = await _bridge(websocket, terminal, transcript, events, row.run_id, structured)
    finally:
        events.close()
        transcript.close()
        await terminal.close()
        await shells.end_session(domain, row.id, exit_code=exit_code)


async def _bridge(
    websocket: WebSocket,
    terminal: InteractiveSession,
    transcript: TranscriptWriter,
    events: Subscription,
    run_id: str,
    structured: bool,
) -> int | None:
    """Pump both ways until the shell exits, the client leaves or the task goes away."""
    output = asyncio.create_task(_pump_output(websocket, terminal, transcript))
    inputs = asyncio.create_task(_pump_input(websocket, terminal, transcript, structured))
    ended = asyncio.create_task(_task_ended(events, run_id))
    done, pending = await asyncio.wait({output, inputs, ended}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if output not in done:
        reason = "the task stopped" if ended in done else "client left"
        with contextlib.suppress(Exception):
            await websocket.close(code=1001, reason=reason)
        return None
    exit_code = await terminal.wait()
    with contextlib.suppress(Exception):
        if structured:
            await websocket.send_text(json.dumps({"type": "exit", "code": exit_code}))
        await websocket.close(code=1000, reason=f"exit {exit_code}")
    return exit_code


async def _pump_output(
    websocket: WebSocket, terminal: InteractiveSession, transcript: TranscriptWriter
) -> None:
    while data := await terminal.read():
        transcript.output(data)
        await websocket.send_bytes(data)


async def _pump_input(
    websocket: WebSocket,
    terminal: InteractiveSession,
    transcript: TranscriptWriter,
    structured: bool,
) -> None:
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw: bytes | None = message.get("bytes")
            text: str | None = message.get("text")
            if raw is not None:
                transcript.input(raw)
                await terminal.write(raw)
            elif text is not None and structured:
                await _control(terminal, transcript, text)
            elif text is not None:
                transcript.input(text.encode())
                await terminal.write(text.encode())
    except WebSocketDisconnect:
        return


async def _control(terminal: InteractiveSession, transcript: TranscriptWriter, text: str) -> None:
    try:
        message = json.loads(text)
    except ValueError:
        return
    if not isinstance(message, dict):
        return
    if message.get("type") == "resize":
        cols, rows = int(message.get("cols", 80)), int(message.get("rows", 24))
        if 1 <= cols <= 1000 and 1 <= rows <= 1000:
            transcript.resize(cols, rows)
            await terminal.resize(cols=cols, rows=rows)
    elif message.get("type") == "stdin" and isinstance(message.get("data"), str):
        data = message["data"].encode()
        transcript.input(data)
        await terminal.write(data)


async def _task_ended(events: Subscription, run_id: str) -> None:
    async for event in events:
        if event.kind == "run.finished" and event.data.get("run_id") == run_id:
            return
