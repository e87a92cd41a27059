"""Keyset pagination of lists: page sizes, opaque cursors and the page a list returns.

Every list is in a stable order on a unique sort key (its creation time, then its id) and
pages by keyset: the next page is the rows after the last one shown (`WHERE (created_at, id)
< (:c, :i) ORDER BY created_at DESC, id DESC LIMIT :n + 1`), never by offset. So a page costs
the same whatever its depth, and a row created or deleted during a walk neither repeats nor
hides another: each row that exists for the whole walk is seen exactly once.

A cursor is the base64url of a small JSON document naming the list it belongs to and the sort
key of the last row shown. It is opaque to callers; one that does not decode, or belongs to
another list, is `Invalid` naming `cursor`. It carries no secret and grants nothing: a forged
one that decodes only moves the start of a list the caller may read anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, or_
from sqlalchemy.orm import InstrumentedAttribute

from berth.domain.errors import Invalid
from berth.schemas.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

MAX_CURSOR_LENGTH = 1024

T = TypeVar("T")


@dataclass(frozen=True)
class Position:
    """Where a page starts: after the row with this sort key. `rank` orders before the time
    where a list groups its rows (approvals: pending first)."""

    created_at: datetime
    id: str | int
    rank: int = 0


@dataclass(frozen=True)
class PageRequest:
    """A validated `?limit=&cursor=`."""

    limit: int
    after: Position | None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    """The cursor of the page after this one; None on the last page."""


def page_request(list_name: str, limit: int | None, cursor: str | None) -> PageRequest:
    """Validate a list's paging parameters (`Invalid` naming `limit` or `cursor`)."""
    if limit is None:
        limit = DEFAULT_PAGE_SIZE
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise Invalid(f"limit: must be an integer from 1 to {MAX_PAGE_SIZE}", field="limit")
    after = None if cursor is None else decode_cursor(list_name, cursor)
    return PageRequest(limit=limit, after=after)


def encode_cursor(list_name: str, position: Position) -> str:
    document = {
        "l": list_name,
        "t": position.created_at.isoformat(),
        "i": position.id,
        "r": position.rank,
    }
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(list_name: str, cursor: str) -> Position:
    problem = Invalid(
        "cursor: not a cursor of this list (pass back next_cursor unchanged)", field="cursor"
    )
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise problem
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document: Any = json.loads(raw)
        if not isinstance(document, dict) or document.get("l") != list_name:
            raise problem
        created_at = datetime.fromisoformat(document["t"])
        row_id = document["i"]
        rank = document["r"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise problem from None
    valid_id = isinstance(row_id, str | int) and not isinstance(row_id, bool)
    if not valid_id or not isinstance(rank, int) or isinstance(rank, bool):
        raise problem
    if created_at.tzinfo is None:
        raise problem
    return Position(created_at=created_at, id=row_id, rank=rank)


def make_page(
    list_name: str, rows: list[T], limit: int, position_of: Callable[[T], Position]
) -> Page[T]:
    """The page of the first `limit` of `rows` (read with `limit + 1`: one more tells that a
    next page exists). `position_of(row)` is the row's `Position`."""
    if len(rows) <= limit:
        return Page(items=rows, next_cursor=None)
    shown = rows[:limit]
    return Page(items=shown, next_cursor=encode_cursor(list_name, position_of(shown[-1])))


LIMIT_PLUS_ONE = bindparam("limit_plus_one", type_=Integer)
"""A page's `LIMIT`: one row more than asked, which tells `make_page` a next page exists."""


@dataclass(frozen=True)
class Keyset:
    """A list's sort key in SQL (its creation time, then its id, both ascending or both
    descending) and the parameters of its prepared page statements: `limit_plus_one`,
    `after_created_at` and `after_id`. Each list builds its two statements once (the first
    page, and a page after a position: `pages`), and a call fills their parameters
    (`params`)."""

    created_at: InstrumentedAttribute[datetime]
    id: InstrumentedAttribute[Any]
    newest_first: bool

    def order(self) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        if self.newest_first:
            return self.created_at.desc(), self.id.desc()
        return self.created_at.asc(), self.id.asc()

    def after(self) -> ColumnElement[bool]:
        """The rows after the position in the parameters, in the list's order."""
        at = bindparam("after_created_at", type_=self.created_at.type)
        row_id = bindparam("after_id", type_=self.id.type)
        if self.newest_first:
            return or_(self.created_at < at, and_(self.created_at == at, self.id < row_id))
        return or_(self.created_at > at, and_(self.created_at == at, self.id > row_id))

    def pages(self, rows: Select[Any]) -> tuple[Select[Any], Select[Any]]:
        """`rows` as the first page and as a page after a position."""
        first = rows.order_by(*self.order()).limit(LIMIT_PLUS_ONE)
        later = rows.where(self.after()).order_by(*self.order()).limit(LIMIT_PLUS_ONE)
        return first, later

    def params(self, request: PageRequest, params: dict[str, Any]) -> bool:
        """Add `request`'s paging parameters to `params`; True if the page starts after a
        position (the statement to run is then the later one). A cursor whose id is not of
        the list's kind (a number for a list of numbered rows) is `Invalid`."""
        params["limit_plus_one"] = request.limit + 1
        after = request.after
        if after is None:
            return False
        numbered = isinstance(self.id.type, Integer)
        if numbered and not isinstance(after.id, int):
            raise Invalid("cursor: not a cursor of this list", field="cursor")
        params["after_created_at"] = after.created_at
        params["after_id"] = after.id if numbered else str(after.id)
        return True
