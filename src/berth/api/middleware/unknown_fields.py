"""Unknown fields in a request body: ignored and named in `Warning` headers, unless the
caller asks for strictness.

Clients are written against servers that decode with lenient JSON decoders (Go's
`encoding/json`, for one, ignores fields it does not know), so they send fields berth has
no use for. berth accepts such a body as if those fields were absent, and names each one in
a `Warning` response header, as Kubernetes does:

    Warning: 299 - "unknown field \\"enable_ssh\\""

Nested objects are checked too (`rules.0.foo`). A caller who wants unknown fields refused
asks with `?strict=true` or the header `Berth-Strict: true` (either is enough) and gets
`400`/`422` naming the field, as for any other invalid input. Wrong types and values are
refused either way.

An approved request is replayed with its exact path and body (`api/gate.py`), so it is
decoded the same way: `?strict=true` is part of the path; a body accepted under
`Berth-Strict: true` has no unknown fields to drop, so the replay without the header sees
the same body.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Header, Query, Request
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STRICT_QUERY = "strict"
STRICT_HEADER = "Berth-Strict"
MAX_WARNINGS = 20
"""Warning headers per response; more unknown fields are counted in one last warning."""
MAX_FIELD_CHARS = 100
"""A longer field name is shortened in its warning (a key may be as long as the body)."""
_SCOPE_KEY = "berth.unknown_fields"
_BOOL = TypeAdapter(bool)
_WITHOUT_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


async def strictness(
    strict: Annotated[
        bool,
        Query(
            alias=STRICT_QUERY,
            description="Refuse unknown body fields (`400`/`422`) instead of ignoring them "
            "with a `Warning` header.",
        ),
    ] = False,
    berth_strict: Annotated[
        bool, Header(alias=STRICT_HEADER, description="As the `strict` query parameter.")
    ] = False,
) -> None:
    """Declares (and validates) the two ways to ask for strictness on a route with a body;
    `wants_strict` reads them before the body is decoded."""


def wants_strict(request: Request) -> bool:
    """True if the request asks for unknown fields to be refused. A value that is not a
    boolean counts as no here; the `strictness` dependency refuses it with the route's
    usual error."""
    return any(
        _is_true(value)
        for value in (request.query_params.get(STRICT_QUERY), request.headers.get(STRICT_HEADER))
    )


def _is_true(value: str | None) -> bool:
    if value is None:
        return False
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        return False


def drop_unknown_fields(model: type[BaseModel], document: Any) -> list[str]:
    """Remove from `document` (in place) every field `model` does not know, at any depth;
    the dotted paths of the removed fields, in the order the body has them."""
    try:
        model.model_validate(document)
    except ValidationError as exc:
        unknown = [err["loc"] for err in exc.errors() if err["type"] == "extra_forbidden"]
    else:
        return []
    removed = []
    for loc in unknown:
        path = _remove(document, loc)
        if path is not None:
            removed.append(path)
    return removed


def _remove(document: Any, loc: tuple[int | str, ...]) -> str | None:
    """Delete the field `loc` points at; its path as the caller sent it. Parts of `loc`
    that are not in the document name a union's member (`alt.Model.field`) and are skipped."""
    node, path = document, []
    for part in loc[:-1]:
        if _holds(node, part):
            node = node[part]
            path.append(str(part))
    key = loc[-1]
    if not isinstance(node, dict) or key not in node:
        return None
    del node[key]
    return ".".join([*path, str(key)])


def _holds(node: Any, part: int | str) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def record(scope: Scope, paths: list[str]) -> None:
    """Note dropped fields for `UnknownFieldWarnings` to report on the response."""
    if paths:
        scope.setdefault(_SCOPE_KEY, []).extend(paths)


def warning_values(paths: list[str]) -> list[str]:
    """The `Warning` header values naming `paths`: RFC 7234's miscellaneous persistent
    warning (299), ASCII only, at most `MAX_WARNINGS` of them."""
    shown = paths if len(paths) <= MAX_WARNINGS else paths[: MAX_WARNINGS - 1]
    texts = [f"unknown field {json.dumps(_shorten(path))}" for path in shown]
    if len(shown) < len(paths):
        texts.append(f"{len(paths) - len(shown)} more unknown fields")
    return [f'299 - "{_quoted(text)}"' for text in texts]


def _shorten(path: str) -> str:
    return path if len(path) <= MAX_FIELD_CHARS else path[: MAX_FIELD_CHARS - 3] + "..."


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class UnknownFieldWarnings:
    """ASGI middleware: adds a `Warning` header per unknown field the route dropped, to
    whatever answers the request (the route's result, an error, a pending approval)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _WITHOUT_BODY:
            # Fields are dropped only from bodies (and gated actions are all POSTs): no
            # wrapper on the path of every read.
            await self.app(scope, receive, send)
            return
        dropped: list[str] = []
        scope[_SCOPE_KEY] = dropped

        async def send_with_warnings(message: Message) -> None:
            if message["type"] == "http.response.start" and dropped:
                headers = MutableHeaders(scope=message)
                for value in warning_values(dropped):
                    headers.append("Warning", value)
            await send(message)

        await self.app(scope, receive, send_with_warnings)
