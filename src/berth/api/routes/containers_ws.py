"""The Containers API's WebSockets: live container status and the container terminal.

- `GET /compute/ws?token=...`: first `{"type": "containers", "data": [...]}` with the caller's
  containers, then `{"type": "container_status", "data": {"container_id", "status", ...}}` for
  every status change (deletion included). The server pings at the protocol level to keep
  the connection alive.
- `GET /compute/containers/{id}/terminal`: a shell in the running container, with the same
  protocols as shell sessions (raw bytes by default; `berth.shell.v1` adds resize and the
  exit code), and the same rights as SSH: the caller's own, running container. `?cols=` and
  `?rows=` set its initial size (default 80x24), so a raw client can size it too.

A refused handshake is answered with the HTTP status and JSON error body a plain request
would get (401, 400 for a size out of range, 404 `container not found`, 409 `container not
running`).
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from berth.api.deps import bearer_credential_ws
from berth.api.errors import CONTAINERS_STATUS_BY_ERROR
from berth.api.presenters import container_out
from berth.api.routing import PrefixedRouter
from berth.api.terminal import requested_size, serve_terminal
from berth.api.ws_handshake import refuse_handshake
from berth.domain import containers, shells
from berth.domain.accounts import require_compute_user
from berth.domain.auth import Actor, authenticate, resolve_actor
from berth.domain.context import Domain
from berth.domain.errors import DomainError
from berth.domain.events import Event
from berth.schemas.paging import MAX_PAGE_SIZE

router = PrefixedRouter(tags=["containers"])
DEFAULT_COLS, DEFAULT_ROWS = 80, 24
"""A terminal's size until the client sets one."""


async def _deny(websocket: WebSocket, exc: DomainError) -> None:
    await refuse_handshake(websocket, exc, CONTAINERS_STATUS_BY_ERROR)


async def _actor(websocket: WebSocket, domain: Domain) -> Actor:
    principal = await authenticate(domain, bearer_credential_ws(websocket))
    return await resolve_actor(domain, principal, None)


@router.websocket("/compute/ws")
async def container_updates(websocket: WebSocket) -> None:
    domain: Domain = websocket.app.state.domain
    try:
        actor = await _actor(websocket, domain)
        await require_compute_user(domain, actor)
    except DomainError as exc:
        await _deny(websocket, exc)
        return
    events = domain.bus.subscribe()
    try:
        await websocket.accept()
        # One page holds every box: the container quota is far below a page.
        views = (await containers.list_containers(domain, actor, limit=MAX_PAGE_SIZE)).items
        await websocket.send_json(
            {
                "type": "containers",
                "data": [container_out(v).model_dump(mode="json") for v in views],
            }
        )
        known = {view.workload.id: view.status for view in views}
        listener = asyncio.create_task(_until_disconnect(websocket))
        try:
            while not listener.done():
                getter = asyncio.ensure_future(events.get())
                await asyncio.wait({getter, listener}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                update = await _status_update(domain, actor, getter.result(), known)
                if update is not None:
                    await websocket.send_json({"type": "container_status", "data": update})
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await listener
    except WebSocketDisconnect:
        pass
    finally:
        events.close()


async def _until_disconnect(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _status_update(
    domain: Domain, actor: Actor, event: Event, known: dict[str, str]
) -> dict[str, object] | None:
    """The `container_status` payload for an event about one of the actor's containers."""
    if event.user_id != actor.user_id or event.workload_id is None:
        return None
    if event.kind == "workload.deleted":
        status = "deleted"
    elif event.kind == "workload.status":
        status = containers.STATUS_BY_WORKLOAD_STATUS.get(
            str(event.data.get("status")), str(event.data.get("status"))
        )
    else:
        return None
    if event.workload_id not in known and not await containers.is_container(
        domain, event.workload_id
    ):
        return None
    if known.get(event.workload_id) == status:
        return None
    known[event.workload_id] = status
    return {
        "container_id": event.workload_id,
        "status": status,
        "external_ip": None,  # dev boxes are reached through berth's gateways, not an IP
        "status_reason": event.data.get("reason"),
        "hostname": containers.hostname_of(domain, event.workload_id),
    }


@router.websocket("/compute/containers/{container_id}/terminal")
async def container_terminal(websocket: WebSocket, container_id: str) -> None:
    domain: Domain = websocket.app.state.domain
    try:
        actor = await _actor(websocket, domain)
        size = requested_size(websocket)
        target = await shells.container_terminal(domain, actor, container_id)
    except DomainError as exc:
        await _deny(websocket, exc)
        return
    with domain.uses.hold(container_id):  # an open terminal keeps the box from idling
        await serve_terminal(
            websocket,
            domain,
            task_id=target.task_id,
            run_id=target.run_id,
            cols=size.cols or DEFAULT_COLS,
            rows=size.rows or DEFAULT_ROWS,
            transcript_for=None,
            title=container_id,
        )
