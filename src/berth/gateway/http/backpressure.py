"""Backpressure for the HTTP gateway's connections: stop reading while the peer is full."""

from __future__ import annotations

import asyncio
import contextlib


class Pausable:
    """A protocol whose transport stops being read for as long as any reason holds.

    Reasons in use: `client_full` / `upstream_full` (the other side of an exchange cannot
    take more), `peer_full` (the other side of a splice), `held` (request bytes held for an
    upstream still being opened), `pipelined` (a request waits behind the one being served),
    `upgrade` (an upgrade request waits for its answer).
    """

    transport: asyncio.Transport | None

    def __init__(self) -> None:
        self._pause_reasons: set[str] = set()

    def pause(self, reason: str) -> None:
        if not self._pause_reasons and self.transport is not None:
            with contextlib.suppress(RuntimeError):
                self.transport.pause_reading()
        self._pause_reasons.add(reason)

    def resume(self, reason: str) -> None:
        if not self._pause_reasons or reason not in self._pause_reasons:
            return
        self._pause_reasons.discard(reason)
        if not self._pause_reasons and self.transport is not None:
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()
