"""An approved shell runs when its agent collects it: once, however many collect at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from berth.domain import approvals
from berth.domain.approvals import StoredResponse
from berth.domain.auth import Actor, Principal
from berth.domain.context import Domain
from berth.domain.errors import Gone
from berth.domain.ids import new_approval_id
from berth.store.models import Approval


async def approved_shell(domain: Domain, actor: Actor, *, expires_in: float) -> Approval:
    now = datetime.now(UTC)
    approval = Approval(
        id=new_approval_id(),
        company_id=actor.company_id,
        user_id=actor.user_id,
        key_id="key_agent",
        action="shell",
        method="POST",
        path="/v1/compute/w1/shell",
        body=b"",
        body_digest=approvals.body_digest(b""),
        status="approved",
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in),
        decided_at=now,
        decided_by=actor.user_id,
    )
    async with domain.store.transaction() as session:
        session.add(approval)
    return approval


async def test_concurrent_collections_open_one_session(domain: Domain, actor: Actor) -> None:
    approval = await approved_shell(domain, actor, expires_in=3600)
    replays: list[str] = []

    async def replay(approved: Approval) -> StoredResponse:
        replays.append(approved.id)
        await asyncio.sleep(0)  # let the other collections in while this one runs
        return StoredResponse(200, b'{"session": {"sessionId": "ses_1"}}')

    collected = await asyncio.gather(
        *(approvals.collect(domain, approval, replay) for _ in range(5))
    )
    assert replays == [approval.id]
    assert sum(1 for row in collected if row.result_status == 200) >= 1
    fresh = await approvals.get_approval(
        domain, Principal(actor.company_id, actor.user_id, False, "session"), approval.id
    )
    assert fresh.result_status == 200 and fresh.executed_at is not None
    assert approvals.result_body(domain, fresh) == b'{"session": {"sessionId": "ses_1"}}'
    # A later collection reads the same result and runs nothing.
    again = await approvals.collect(domain, fresh, replay)
    assert again.result_status == 200 and replays == [approval.id]


async def test_an_approved_shell_left_uncollected_past_its_expiry_is_gone(
    domain: Domain, actor: Actor
) -> None:
    approval = await approved_shell(domain, actor, expires_in=-1)

    async def replay(_approved: Approval) -> StoredResponse:
        raise AssertionError("an expired approval must not run")

    with pytest.raises(Gone, match="not collected before the approval expired"):
        await approvals.collect(domain, approval, replay)


def test_only_the_asking_key_collects_by_reading() -> None:
    approval = Approval(key_id="key_agent")
    asking = Principal("co", "usr", False, "api_key", key_id="key_agent")
    other = Principal("co", "usr", True, "api_key", key_id="key_operator")
    human = Principal("co", "usr", False, "session")
    assert approvals.collected_by(approval, asking)
    assert not approvals.collected_by(approval, other)
    assert not approvals.collected_by(approval, human)
