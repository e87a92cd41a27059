"""Live updates for open pages: server-sent events from the domain's event bus.

`GET /events` streams, for the signed-in user only, one event per change a page shows:
`approval` (asked for, decided, executed: the inbox and the navigation's count refresh) and
`workload` (a status, a run started or finished, a deletion). Each carries the ids it is
about; the page fetches what it shows with its usual rights. A comment every
`KEEPALIVE_SECONDS` keeps proxies from closing the stream and notices a gone browser.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from berth.dashboard.session import domain_of, viewer
from berth.domain.events import Event

router = APIRouter(include_in_schema=False)
KEEPALIVE_SECONDS = 15.0
_KINDS = {"approval.changed": "approval"}
_WORKLOAD_KINDS = ("workload.", "run.")


def page_event(event: Event, user_id: str) -> str | None:
    """The event as the stream sends it, or None when it is not the user's or not shown."""
    if event.user_id != user_id:
        return None
    name = _KINDS.get(event.kind)
    if name is None and event.kind.startswith(_WORKLOAD_KINDS):
        name = "workload"
    if name is None:
        return None
    data = {"kind": event.kind, "workload_id": event.workload_id, **event.data}
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


@router.get("/events")
async def events(request: Request) -> StreamingResponse:
    signed_in = await viewer(request)
    subscription = domain_of(request).bus.subscribe(maxsize=200)

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_SECONDS):  # not wait_for: see
                        event = await subscription.get()  # gateway/http/route_refresh.py
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                if subscription.take_overflow():
                    yield "event: resync\ndata: {}\n\n"
                text = page_event(event, signed_in.user_id)
                if text is not None:
                    yield text
        finally:
            subscription.close()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
