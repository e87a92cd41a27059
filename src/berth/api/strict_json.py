"""Request bodies decode as strict JSON: every string must be Unicode text.

Python's `json` module accepts an escaped lone UTF-16 surrogate (`"\\ud800"`), which no UTF-8
text can hold. Such a string passes validation where a field takes any `str` and then fails
wherever it is encoded (the engine's API, SQLite, a log line) as a 500. berth refuses the
body as malformed JSON instead, naming where the surrogate is. Routers use `StrictJsonRoute`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


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
            self._json = document
        return self._json


class StrictJsonRoute(APIRoute):
    """An APIRoute whose handler reads the body through `StrictJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler  # no body to decode: no wrapper on the way to every GET

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
