"""Many calls at once, for the tests of guards under concurrency (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from berth.domain.context import Domain

CALLS = 20
T = TypeVar("T")


async def at_once(calls: list[Awaitable[T]]) -> tuple[list[T], list[BaseException]]:
    """Run the calls concurrently; what succeeded and what was refused."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    return done, refused  # type: ignore[return-value]


def only(refused: list[BaseException], kind: type[BaseException]) -> None:
    unexpected = [r for r in refused if not isinstance(r, kind)]
    assert not unexpected, unexpected


async def count(domain: Domain, statement: Any) -> int:
    async with domain.store.reading() as session:
        return int(await session.scalar(statement) or 0)
