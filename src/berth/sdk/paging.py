"""Following a list's cursors: every item of a paged list, one page fetched at a time.

Each list answer carries `next_cursor` (null on the last page); passing it back as
`?cursor=` gives the next page. Items come in the list's own order, each once, and only as
many pages are fetched as the caller consumes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")


class PagedAnswer(Protocol):
    @property
    def next_cursor(self) -> str | None: ...


P = TypeVar("P", bound=PagedAnswer)


def follow(fetch: Callable[[str | None], P], items: Callable[[P], list[T]]) -> Iterator[T]:
    """The items of every page: `fetch(cursor)` reads one page (`None`: the first)."""
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        yield from items(page)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def follow_async(
    fetch: Callable[[str | None], Awaitable[P]], items: Callable[[P], list[T]]
) -> AsyncIterator[T]:
    """`follow`'s async twin."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in items(page):
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
