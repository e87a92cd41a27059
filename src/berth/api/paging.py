"""The query parameters of every paged list (see `berth.domain.paging`)."""

from __future__ import annotations

from pydantic import Field

from berth.api.query_model import QueryModel, QueryParameters
from berth.schemas.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


class PageQuery(QueryParameters):
    """`?limit=&cursor=`, which every list takes; a list with filters extends it."""

    limit: int | None = Field(
        None,
        ge=1,
        le=MAX_PAGE_SIZE,
        description=f"Items per page: 1 to {MAX_PAGE_SIZE}, default {DEFAULT_PAGE_SIZE}.",
    )
    cursor: str | None = Field(
        None,
        max_length=1024,
        description="The `next_cursor` of the previous page, unchanged (opaque).",
    )


PAGE_QUERY = QueryModel(PageQuery)
