"""Rendering: one Jinja2 environment over the package's templates, autoescaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from berth.dashboard.session import Viewer, domain_of
from berth.domain import approval_lists
from berth.schemas.paging import MAX_PAGE_SIZE

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    seconds = int((end - start).total_seconds())
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m {seconds}s" if hours else f"{minutes}m {seconds}s"


def _pretty(body: bytes | str | None) -> str:
    """A request body as people read it: indented JSON, else the text itself."""
    if body is None or body in (b"", ""):
        return "(no body)"
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except ValueError:
        return text


ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["when"] = _when
ENV.filters["iso"] = _iso
ENV.filters["pretty"] = _pretty
ENV.globals["duration"] = _duration


async def pending_count(request: Request, signed_in: Viewer) -> int:
    found = await approval_lists.list_approvals(
        domain_of(request), signed_in.actor.principal, status="pending", limit=MAX_PAGE_SIZE
    )
    return len(found.items)


async def page(
    request: Request,
    template: str,
    signed_in: Viewer | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A whole page: the layout's navigation shows the pending approvals' count."""
    pending = await pending_count(request, signed_in) if signed_in is not None else 0
    html = ENV.get_template(template).render(
        request=request, viewer=signed_in, pending=pending, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=NO_STORE)


def fragment(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A part of a page, fetched by the page's script to refresh itself."""
    html = ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=NO_STORE)


NO_STORE = {"Cache-Control": "no-store"}
"""Pages show private data: never kept by a browser's or a proxy's cache."""
