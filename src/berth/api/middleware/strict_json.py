"""Request bodies decode as strict JSON: every string must be Unicode text.

Python's `json` module accepts an escaped lone UTF-16 surrogate (`"\\ud800"`), which no UTF-8
text can hold. Such a string passes validation where a field takes any `str` and then fails
wherever it is encoded (the engine's API, SQLite, a log line) as a 500. berth refuses the
body as malformed JSON instead, naming where the surrogate is. Routers use `StrictJsonRoute`,
which also drops the body's unknown fields unless the caller asks for strictness (see
`berth.api.middleware.unknown_fields`).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.types import Receive, Scope

from berth.api.middleware.unknown_fields import (
    drop_unknown_fields,
    record,
    strictness,
    wants_strict,
)


def lone_surrogate_at(document: Any) -> str | None:
    """The dotted path of a string (or object key) that is not Unicode text, `""` for the
    document itself; None when every string is text. Iterative, so a deeply nested
    document cannot exhaust the stack."""
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if not _is_text(value):
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if not _is_text(str(key)):
                    return where
                pending.append((where, item))
        elif isinstance(value, list):
            pending.extend(
                (f"{path}.{index}" if path else str(index), item)
                for index, item in enumerate(value)
            )
    return None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class StrictJsonRequest(Request):
    """A request whose JSON body is checked for text and, unless the caller asked for
    strictness, stripped of the fields `body_model` does not know."""

    def __init__(
        self, scope: Scope, receive: Receive, *, body_model: type[BaseModel] | None = None
    ) -> None:
        super().__init__(scope, receive)
        self._body_model = body_model

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            document = json.loads(body)
            where = lone_surrogate_at(document)
            if where is not None:
                shown = where.encode("utf-8", errors="backslashreplace").decode() or "the body"
                raise json.JSONDecodeError(
                    f"{shown}: a lone UTF-16 surrogate escape is not Unicode text",
                    body.decode("utf-8", errors="replace"),
                    0,
                )
            if self._body_model is not None and not wants_strict(self):
                record(self.scope, drop_unknown_fields(self._body_model, document))
            self._json = document
        return self._json


class StrictJsonRoute(APIRoute):
    """An APIRoute whose handler reads the body through `StrictJsonRequest`. A route whose
    endpoint takes a body model also takes (and declares) the strictness parameters."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if _body_model(endpoint) is not None:
            kwargs["dependencies"] = [*(kwargs.get("dependencies") or ()), Depends(strictness)]
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler  # no body to decode: no wrapper on the way to every GET
        body_model = _model_in(self.body_field.field_info.annotation)

        async def strict_handler(request: Request) -> Response:
            return await handler(
                StrictJsonRequest(request.scope, request.receive, body_model=body_model)
            )

        return strict_handler


def _body_model(endpoint: Callable[..., Any]) -> type[BaseModel] | None:
    """The pydantic model an endpoint takes as its JSON body, if any."""
    hints = typing.get_type_hints(endpoint)
    hints.pop("return", None)
    return next(filter(None, map(_model_in, hints.values())), None)


def _model_in(hint: Any) -> type[BaseModel] | None:
    """`Model` for a `Model` or `Model | None` annotation; None for anything else."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    for option in typing.get_args(hint) if union else (hint,):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None
