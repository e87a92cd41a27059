"""Read responses reused while the database is unchanged.

Turning a hundred workloads into JSON (records to wire models to bytes) costs milliseconds
of Python, however few the queries; the same list asked for again with nothing changed need
not be built again. A route keeps the bytes it answered with, keyed by what it read for
(the acting user and the resource), together with the store's data version seen *before*
reading (`Domain.data_version`: it changes with every commit of any process). An answer is
reused only while the version is still that one, so a write is visible to the next read at
once, and a read that raced a write is simply built again.

Authentication and the acting user are resolved before, on every request, so a reused
answer goes only to a caller who may read it now; errors (404, 403) are never kept. Where
the store has no data version (not SQLite), nothing is kept.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

from fastapi import Response
from pydantic import BaseModel

from berth.domain.context import Domain

MAX_ENTRIES = 256
"""Answers kept per router (a list of 100 workloads is about 50 kB)."""


class ReadCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        # Per store: data versions of two databases (two servers in one process) are unrelated.
        self._by_store: weakref.WeakKeyDictionary[object, OrderedDict[Hashable, tuple[int, bytes]]]
        self._by_store = weakref.WeakKeyDictionary()

    async def respond(
        self,
        domain: Domain,
        key: Hashable,
        build: Callable[[], Awaitable[BaseModel]],
        *,
        omit_none: frozenset[str] = frozenset(),
    ) -> Response:
        """The JSON answer of `build()`, or the one kept for `key` if nothing changed since.
        A list's key holds its query parameters (page, filters): each page is kept apart.
        `omit_none` names top-level fields left out of the answer while they are null."""
        version = domain.data_version()
        entries = self._by_store.get(domain.store)
        if version is not None and entries is not None:
            kept = entries.get(key)
            if kept is not None and kept[0] == version:
                entries.move_to_end(key)
                return _json(kept[1])
        body = _to_json(await build(), omit_none)
        if version is not None:
            if entries is None:
                entries = self._by_store.setdefault(domain.store, OrderedDict())
            entries[key] = (version, body)
            entries.move_to_end(key)
            while len(entries) > self.max_entries:
                entries.popitem(last=False)
        return _json(body)


def json_response(model: BaseModel, *, omit_none: frozenset[str] = frozenset()) -> Response:
    """`model` as a JSON answer, leaving out the `omit_none` fields while they are null."""
    return _json(_to_json(model, omit_none))


def _to_json(model: BaseModel, omit_none: frozenset[str]) -> bytes:
    left_out = {name for name in omit_none if getattr(model, name) is None}
    exclude = left_out or None
    return model.__pydantic_serializer__.to_json(model, by_alias=True, exclude=exclude)


def _json(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")
