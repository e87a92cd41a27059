"""The credit ledger: every change of a balance is a row, written with the change.

A user's `credits_micro` is the sum of their ledger entries, always: `post` is the only
writer of balances, and it adds the entry in the same transaction. Callers hold the user's
row locked (`locks.lock_user`, or a row loaded `FOR UPDATE`), so concurrent changes of one
balance follow each other on PostgreSQL as they do under SQLite's single writer.
"""

from __future__ import annotations

import math

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain.errors import Invalid
from berth.store.models import MICRO_CREDITS_PER_CREDIT, CreditEntry, User

KINDS = ("grant", "adjustment", "usage")


MAX_CREDITS = 1e12
"""Amounts beyond this (and NaN, infinities) are refused: a 64-bit count of micro-credits
holds about 9.2e12 credits, and no operator means more."""


def micro_credits(credits: float, *, field: str = "credits") -> int:
    """An amount of credits given as a number (the API's and the command line's unit), in
    micro-credits: rounded to the nearest one, halves to even. Raises `Invalid` naming
    `field` for a value that is not finite or beyond `MAX_CREDITS`."""
    if not math.isfinite(credits) or abs(credits) > MAX_CREDITS:
        raise Invalid(f"must be a finite number of at most {MAX_CREDITS:.0e} credits", field=field)
    return round(credits * MICRO_CREDITS_PER_CREDIT)


def post(
    session: AsyncSession, user: User, amount_micro: int, *, kind: str, run_id: str | None = None
) -> None:
    """Add `amount_micro` (negative: take it) to `user`'s balance and record it. Nothing is
    recorded for a zero amount."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    if amount_micro == 0:
        return
    user.credits_micro += amount_micro
    session.add(CreditEntry(user_id=user.id, amount_micro=amount_micro, kind=kind, run_id=run_id))


async def ledger_sum(session: AsyncSession, user_id: str) -> int:
    """The sum of the user's ledger entries (equal to their balance)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(CreditEntry.amount_micro), 0)).where(
            CreditEntry.user_id == user_id
        )
    )
    return int(total or 0)
