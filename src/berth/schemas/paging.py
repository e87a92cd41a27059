"""What every paged list shares on the wire: its page sizes and `next_cursor`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500

NEXT_CURSOR_DESCRIPTION = (
    "Pass as `?cursor=` for the next page (with the same filters); null on the last page."
)
NextCursor = Annotated[str | None, Field(description=NEXT_CURSOR_DESCRIPTION)]
