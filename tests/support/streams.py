"""Reading a stream until something shows, with a deadline: the tests' readers of a terminal.

One per kind of stream, each failing the test (an `AssertionError` quoting what was read)
when the deadline passes or the stream ends first:
- `read_ws_until`: a berth WebSocket (a shell, a dev box's terminal), frames text or bytes;
- `read_fd_until`: a file descriptor (a pseudo-terminal's master, a child's stdout pipe);
- `read_session_until`: a runtime driver's `InteractiveSession` (async).

And two that ask again until the answer shows, for what a terminal applies later than the
input after it (the kubelet applies a resize on a goroutine of its own, so the first
`stty size` after one may still print the old size): `ask_ws_until`, `ask_session_until`.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections.abc import Callable
from typing import TypeVar

from websockets.sync.client import ClientConnection

from berth.runtime.base import InteractiveSession

T = TypeVar("T")


def read_ws_until(ws: ClientConnection, marker: str, timeout: float = 30) -> str:
    """Receive frames until `marker` is in the text so far; that text."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"never saw {marker!r} in {seen.decode(errors='replace')!r}"
        try:
            frame = ws.recv(timeout=remaining)
        except TimeoutError:
            continue
        seen += frame if isinstance(frame, bytes) else frame.encode()
    return seen.decode(errors="replace")


def read_fd_until(
    fd: int, found: Callable[[bytes], T | None], *, seen: bytes = b"", timeout: float = 20
) -> tuple[T, bytes]:
    """Read `fd` until `found(everything read)` is truthy: (that answer, everything read).

    `seen` is what was read before (a terminal's earlier output); the end of the stream (EOF,
    or EIO once a pseudo-terminal's other side closed) fails like the deadline.
    """
    deadline = time.monotonic() + timeout
    while not (answer := found(seen)):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"not seen in {timeout}s; output: {seen!r}")
        if not select.select([fd], [], [], remaining)[0]:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side of the terminal closed.
            chunk = b""
        if not chunk:
            raise AssertionError(f"the stream ended first; output: {seen!r}")
        seen += chunk
    return answer, seen


class StreamEnded(AssertionError):
    """The stream ended before what was awaited showed (no use asking again)."""


async def read_session_until(
    session: InteractiveSession, seen: Callable[[str], bool], within: float = 10.0
) -> str:
    """Read the terminal until `seen(all output so far)`; fail at the deadline, or with
    `StreamEnded` when the terminal ends first."""
    output = b""
    ended = False
    try:
        async with asyncio.timeout(within):
            while not seen(output.decode(errors="replace")):
                chunk = await session.read()
                if not chunk:
                    ended = True
                    break
                output += chunk
    except TimeoutError:
        pass
    text = output.decode(errors="replace")
    if not seen(text) and ended:
        raise StreamEnded(f"the terminal ended first; output: {text!r}")
    assert seen(text), f"terminal output never matched within {within}s: {text!r}"
    return text


ASK_EVERY = 2.0
"""How long an `ask_*_until` waits for one answer before asking again."""


def ask_ws_until(ws: ClientConnection, question: bytes, marker: str, timeout: float = 30) -> None:
    """Send `question` until `marker` shows in the answers; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        ws.send(question)
        try:
            read_ws_until(ws, marker, timeout=min(ASK_EVERY, deadline - time.monotonic()))
            return
        except AssertionError:
            if time.monotonic() >= deadline:
                raise


async def ask_session_until(
    session: InteractiveSession, question: bytes, seen: Callable[[str], bool], within: float = 10.0
) -> None:
    """Write `question` until `seen(the output since)`; fail at the deadline, or at once
    when the terminal ends."""
    deadline = time.monotonic() + within
    while True:
        await session.write(question)
        try:
            await read_session_until(
                session, seen, within=min(ASK_EVERY, deadline - time.monotonic())
            )
            return
        except StreamEnded:
            raise
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
