"""The query parameters of every paged list (see `berth.domain.paging`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from berth.schemas.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

LimitQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_PAGE_SIZE,
        description=f"Items per page: 1 to {MAX_PAGE_SIZE}, default {DEFAULT_PAGE_SIZE}.",
    ),
]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=1024,
        description="The `next_cursor` of the previous page, unchanged (opaque).",
    ),
]
