"""A terminal WebSocket: the login shell on a PTY in a task, bridged to the client.

Shared by shell sessions (`routes/shell_stream.py`) and the container terminal
(`routes/containers_ws.py`); each checks the caller's right to the task first.

Protocols:

- default (no subprotocol): every frame the client sends, text or binary, is raw terminal
  input; every frame berth sends is raw terminal output (binary). A plain WebSocket client
  such as websocat works as is. The connection closes when the shell exits (close reason
  `exit <code>`).
- `berth.shell.v1`: binary frames carry raw bytes both ways; the client may also send text
  frames `{"type": "resize", "cols": C, "rows": R}` (or `{"type": "stdin", "data": "..."}`);
  before closing, berth sends the text frame `{"type": "exit", "code": N}`.

The query parameters `cols` and `rows` set the terminal's initial size, so a raw client can
size it without the subprotocol; `requested_size` checks them against the shell's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from berth.domain import shells
from berth.domain.context import Domain
from berth.domain.errors import Invalid
from berth.domain.events import Subscription
from berth.runtime.base import CommandNotFound, InteractiveSession, RuntimeDriverError, TaskId
from berth.schemas.limits import (
    MAX_TERMINAL_COLS,
    MAX_TERMINAL_ROWS,
    MIN_TERMINAL_COLS,
    MIN_TERMINAL_ROWS,
)

SUBPROTOCOL = "berth.shell.v1"


@dataclass(frozen=True)
class TerminalSize:
    """The size a terminal WebSocket's URL asks for; None where it names none."""

    cols: int | None
    rows: int | None


def requested_size(websocket: WebSocket) -> TerminalSize:
    """`?cols=` and `?rows=` of the WebSocket's URL, checked against the shell's limits;
    `Invalid` naming the parameter and its range otherwise."""
    return TerminalSize(
        cols=_dimension(websocket, "cols", MIN_TERMINAL_COLS, MAX_TERMINAL_COLS),
        rows=_dimension(websocket, "rows", MIN_TERMINAL_ROWS, MAX_TERMINAL_ROWS),
    )


def _dimension(websocket: WebSocket, name: str, low: int, high: int) -> int | None:
    value = websocket.query_params.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 4 and low <= int(value) <= high):
        raise Invalid(f"{name}: must be a whole number from {low} to {high}", field=name)
    return int(value)


async def serve_terminal(
    websocket: WebSocket,
    domain: Domain,
    *,
    task_id: str,
    run_id: str,
    cols: int,
    rows: int,
    transcript_for: str | None,
    title: str,
    on_exit: Callable[[int | None], Awaitable[None]] | None = None,
) -> int | None:
    """Start the login shell on a PTY in the task, accept the WebSocket and bridge them;
    the shell's exit code, or None if it did not exit by itself. The caller has already
    checked the caller's right to the task. `on_exit` runs before the socket closes, so
    what a client reads after the close (the session's status) is already recorded."""
    assert domain.runtime is not None
    structured = SUBPROTOCOL in websocket.scope.get("subprotocols", [])
    events = domain.bus.subscribe()
    try:
        terminal = await domain.runtime.open_terminal(
            TaskId(task_id), ["/bin/sh", "-c", shells.LOGIN_SHELL], cols=cols, rows=rows
        )
    except (CommandNotFound, RuntimeDriverError) as exc:
        events.close()
        await websocket.close(code=1011, reason=f"no shell could start: {exc}"[:120])
        return None
    await websocket.accept(subprotocol=SUBPROTOCOL if structured else None)
    transcript = (
        shells.start_transcript(domain, transcript_for, cols=cols, rows=rows, title=title)
        if transcript_for is not None
        else None
    )
    try:
        return await _bridge(websocket, terminal, transcript, events, run_id, structured, on_exit)
    finally:
        events.close()
        if transcript is not None:
            transcript.close()
        await terminal.close()


async def _bridge(
    websocket: WebSocket,
    terminal: InteractiveSession,
    transcript: shells.Transcript | None,
    events: Subscription,
    run_id: str,
    structured: bool,
    on_exit: Callable[[int | None], Awaitable[None]] | None,
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
        if on_exit is not None:
            await on_exit(None)
        with contextlib.suppress(Exception):
            await websocket.close(code=1001, reason=reason)
        return None
    exit_code = await terminal.wait()
    if on_exit is not None:
        await on_exit(exit_code)
    with contextlib.suppress(Exception):
        if structured:
            await websocket.send_text(json.dumps({"type": "exit", "code": exit_code}))
        await websocket.close(code=1000, reason=f"exit {exit_code}")
    return exit_code


async def _pump_output(
    websocket: WebSocket, terminal: InteractiveSession, transcript: shells.Transcript | None
) -> None:
    while data := await terminal.read():
        if transcript is not None:
            transcript.output(data)
        await websocket.send_bytes(data)


async def _pump_input(
    websocket: WebSocket,
    terminal: InteractiveSession,
    transcript: shells.Transcript | None,
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
                await _send_input(terminal, transcript, raw)
            elif text is not None and structured:
                await _control(terminal, transcript, text)
            elif text is not None:
                await _send_input(terminal, transcript, text.encode())
    except WebSocketDisconnect:
        return


async def _send_input(
    terminal: InteractiveSession, transcript: shells.Transcript | None, data: bytes
) -> None:
    if transcript is not None:
        transcript.input(data)
    await terminal.write(data)


async def _control(
    terminal: InteractiveSession, transcript: shells.Transcript | None, text: str
) -> None:
    try:
        message = json.loads(text)
    except ValueError:
        return
    if not isinstance(message, dict):
        return
    if message.get("type") == "resize":
        cols, rows = int(message.get("cols", 80)), int(message.get("rows", 24))
        if 1 <= cols <= 1000 and 1 <= rows <= 1000:
            if transcript is not None:
                transcript.resize(cols, rows)
            await terminal.resize(cols=cols, rows=rows)
    elif message.get("type") == "stdin" and isinstance(message.get("data"), str):
        await _send_input(terminal, transcript, message["data"].encode())


async def _task_ended(events: Subscription, run_id: str) -> None:
    async for event in events:
        if event.kind == "run.finished" and event.data.get("run_id") == run_id:
            return
