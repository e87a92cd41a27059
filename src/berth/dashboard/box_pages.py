"""Dev boxes and SSH keys: the list, the create form, one box's page (SSH access, ingress
rules, mount paths, the ssh command, and the built-in terminal), and the keys page.

The terminal is xterm.js on the Containers API's own terminal WebSocket
(`/compute/containers/{id}/terminal`, protocol `berth.shell.v1`, with resize). A browser
cannot set headers on a WebSocket and the session cookie is HttpOnly, so the page asks
`POST /boxes/{id}/terminal-ticket` (CSRF-checked) for a session token of
`TERMINAL_TICKET_SECONDS` and hands it to the handshake as `?token=`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError

from berth.dashboard.forms import FormErrors, domain_errors, optional_int, validation_errors
from berth.dashboard.render import fragment, page
from berth.dashboard.session import Viewer, changing, domain_of, form_lists, form_of, viewer
from berth.domain import containers, ingress, pausing, shells, ssh_keys
from berth.domain.errors import DomainError, Invalid
from berth.domain.ingress import RuleListeners
from berth.schemas.containers import ContainerCreate

router = APIRouter(include_in_schema=False)
TERMINAL_TICKET_SECONDS = 60
BOX_FIELDS = {"name", "instance_type", "memory_mb", "storage_gb", "ssh_key_ids", "mount_paths"}
KEY_FIELDS = {"name", "public_key"}


def _instance_types(request: Request) -> list[tuple[str, str, float]]:
    catalogue = domain_of(request).containers.instance_types
    return [(name, arch, cpu) for name, (arch, cpu) in catalogue.items()]


async def _list_context(request: Request, signed_in: Viewer) -> dict[str, Any]:
    domain = domain_of(request)
    return {
        # One page holds them all: both are bounded by the user's quotas.
        "boxes": (await containers.list_containers(domain, signed_in.actor)).items,
        "keys": (await ssh_keys.list_keys(domain, signed_in.actor)).items,
        "instance_types": _instance_types(request),
    }


@router.get("/boxes")
async def box_list(request: Request) -> Response:
    signed_in = await viewer(request)
    context = await _list_context(request, signed_in)
    return await page(request, "boxes.html", signed_in, form={}, errors=FormErrors(), **context)


@router.get("/boxes/fragment")
async def box_list_fragment(request: Request) -> Response:
    signed_in = await viewer(request)
    context = await _list_context(request, signed_in)
    return fragment("boxes_table.html", boxes=context["boxes"])


@router.post("/boxes")
async def create_box(request: Request) -> Response:
    signed_in = await changing(request)
    form = await form_of(request)
    lists = await form_lists(request)
    body: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "instance_type": form.get("instance_type", ""),
        "ssh_key_ids": [optional_int(value) for value in lists.get("ssh_key_ids", [])],
        "ssh_enabled": form.get("ssh_enabled") == "on",
    }
    for name in ("memory_mb", "storage_gb"):
        value = optional_int(form.get(name, ""))
        if value is not None:
            body[name] = value
    paths = [line.strip() for line in form.get("mount_paths", "").splitlines() if line.strip()]
    if paths:
        body["mount_paths"] = paths
    try:
        created = await containers.create_container(
            domain_of(request), signed_in.actor, ContainerCreate.model_validate(body)
        )
    except ValidationError as exc:
        errors = validation_errors(exc, BOX_FIELDS)
    except DomainError as exc:
        errors = domain_errors(exc, BOX_FIELDS)
    else:
        return RedirectResponse(f"/boxes/{created.workload.id}", status_code=303)
    context = await _list_context(request, signed_in)
    return await page(
        request, "boxes.html", signed_in, status_code=422, form=form, errors=errors, **context
    )


async def _box_page(
    request: Request, signed_in: Viewer, box_id: str, *, error: str | None = None, status: int = 200
) -> Response:
    domain = domain_of(request)
    actor = signed_in.actor
    view = await containers.get_container(domain, actor, box_id)
    return await page(
        request,
        "box.html",
        signed_in,
        status_code=status,
        box=view,
        b=view.workload,
        rules=await ingress.list_rules(domain, actor, box_id),
        mount_paths=await containers.get_mount_paths(domain, actor, box_id),
        error=error,
    )


@router.get("/boxes/{box_id}")
async def box_detail(request: Request, box_id: str) -> Response:
    return await _box_page(request, await viewer(request), box_id)


@router.post("/boxes/{box_id}/terminal-ticket")
async def terminal_ticket(request: Request, box_id: str) -> Response:
    """A short session token for the terminal's WebSocket handshake, once the box is known
    to be the human's own running box (else the refusal the WebSocket would give)."""
    signed_in = await changing(request)
    domain = domain_of(request)
    try:
        await shells.container_terminal(domain, signed_in.actor, box_id)
    except DomainError as exc:
        return JSONResponse({"error": exc.message}, status_code=409)
    token = domain.tokens.issue(signed_in.user_id, ttl_seconds=TERMINAL_TICKET_SECONDS)
    return JSONResponse({"token": token}, headers={"Cache-Control": "no-store"})


@router.post("/boxes/{box_id}/{action}")
async def box_action(request: Request, box_id: str, action: str) -> Response:
    signed_in = await changing(request)
    domain = domain_of(request)
    actor = signed_in.actor
    form = await form_of(request)
    try:
        if action == "ssh":
            await containers.set_ssh_enabled(domain, actor, box_id, form.get("enabled") == "on")
        elif action == "start":
            await containers.start_container(domain, actor, box_id)
        elif action == "stop":
            await containers.stop_container(domain, actor, box_id)
        elif action in ("pause", "resume"):
            freeze = pausing.pause if action == "pause" else pausing.resume
            await freeze(domain, actor, box_id, kind="container")
        elif action == "delete":
            await containers.delete_container(domain, actor, box_id)
            return RedirectResponse("/boxes", status_code=303)
        elif action == "mounts":
            paths = [line.strip() for line in form.get("paths", "").splitlines() if line.strip()]
            await containers.set_mount_paths(domain, actor, box_id, paths)
        elif action == "rule":
            port = optional_int(form.get("port", ""))
            target = optional_int(form.get("target_port", ""))
            if not isinstance(port, int) or not (target is None or isinstance(target, int)):
                raise Invalid("port: must be a whole number", field="port")
            listeners: RuleListeners | None = getattr(request.app.state, "rule_listeners", None)
            await ingress.add_rule(
                domain, actor, box_id, port=port, target_port=target, listeners=listeners
            )
        elif action == "unrule":
            port = optional_int(form.get("port", ""))
            if not isinstance(port, int):
                raise Invalid("port: must be a whole number", field="port")
            await ingress.remove_rule(domain, actor, box_id, port)
        else:
            return Response("no such action", status_code=404)
    except DomainError as exc:
        return await _box_page(request, signed_in, box_id, error=exc.message, status=400)
    return RedirectResponse(f"/boxes/{box_id}", status_code=303)


@router.get("/keys")
async def key_list(request: Request) -> Response:
    signed_in = await viewer(request)
    rows = (await ssh_keys.list_keys(domain_of(request), signed_in.actor)).items
    return await page(request, "keys.html", signed_in, keys=rows, form={}, errors=FormErrors())


@router.post("/keys")
async def add_key(request: Request) -> Response:
    signed_in = await changing(request)
    form = await form_of(request)
    domain = domain_of(request)
    try:
        name, public_key = form.get("name", "").strip(), form.get("public_key", "").strip()
        if not name:
            raise Invalid("name: enter a name for the key", field="name")
        await ssh_keys.add_key(domain, signed_in.actor, name=name, public_key=public_key)
    except DomainError as exc:
        rows = (await ssh_keys.list_keys(domain, signed_in.actor)).items
        return await page(
            request,
            "keys.html",
            signed_in,
            status_code=422,
            keys=rows,
            form=form,
            errors=domain_errors(exc, KEY_FIELDS),
        )
    return RedirectResponse("/keys", status_code=303)


@router.post("/keys/{key_id}/delete")
async def delete_key(request: Request, key_id: int) -> Response:
    signed_in = await changing(request)
    await ssh_keys.delete_key(domain_of(request), signed_in.actor, key_id)
    return RedirectResponse("/keys", status_code=303)
