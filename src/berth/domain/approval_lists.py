"""Listing approvals, a page at a time.

The order is pending first, then newest first (creation time, then id): a human sees what
waits for them on the first page. A page is read by keyset on (pending or not, created_at,
id), so its cost does not grow with the company's history. Overdue pending approvals the
caller may see are turned `expired` (and audited) before the page is read, so the status
filter and the order see the status a read of each would show.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, case, literal, or_, select

from berth.domain.approvals import current_status
from berth.domain.auth import Principal
from berth.domain.context import Domain
from berth.domain.paging import Page, Position, make_page, page_request
from berth.store.models import Approval

APPROVAL_LIST = "approvals"
"""The name an approval list's cursors carry."""
APPROVAL_STATUSES = ("pending", "approved", "rejected", "expired")

_RANK: ColumnElement[int] = case((Approval.status == "pending", 0), else_=1)
"""Pending approvals sort before decided ones."""


async def list_approvals(
    domain: Domain,
    principal: Principal,
    *,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[Approval]:
    """One page of the approvals the caller may see, pending first, newest first."""
    request = page_request(APPROVAL_LIST, limit, cursor)
    visible = _visible(principal)
    await _expire_overdue(domain, visible)
    query = select(Approval).where(*visible)
    if status is not None:
        query = query.where(Approval.status == status)
    after = request.after
    if after is not None:
        at, after_id = after.created_at, str(after.id)
        rank = literal(after.rank)
        same_rank = _RANK.__eq__(rank)  # (`==` on a CASE is typed as bool)
        query = query.where(
            or_(
                _RANK.__gt__(rank),
                and_(same_rank, Approval.created_at < at),
                and_(same_rank, Approval.created_at == at, Approval.id < after_id),
            )
        )
    query = query.order_by(_RANK, Approval.created_at.desc(), Approval.id.desc())
    async with domain.store.reading() as session:
        rows = list(await session.scalars(query.limit(request.limit + 1)))
    return make_page(APPROVAL_LIST, rows, request.limit, _position)


def _visible(principal: Principal) -> list[ColumnElement[bool]]:
    """The SQL form of `approvals._visible_to`: which approvals the caller may see."""
    where = [Approval.company_id == principal.company_id]
    if principal.kind == "session":
        where.append(Approval.user_id == principal.user_id)
    elif not principal.is_operator:
        where.append(Approval.key_id == principal.key_id)
    return where


async def _expire_overdue(domain: Domain, visible: list[ColumnElement[bool]]) -> None:
    overdue = select(Approval).where(
        *visible, Approval.status == "pending", Approval.expires_at <= domain.clock.now()
    )
    async with domain.store.reading() as session:
        rows = list(await session.scalars(overdue))
    for row in rows:
        await current_status(domain, row)


def _position(approval: Approval) -> Position:
    rank = 0 if approval.status == "pending" else 1
    return Position(created_at=approval.created_at, id=approval.id, rank=rank)
