"""Human approval of sensitive agent calls.

With an API key, the actions of the company's policy (create, exec and shell by default) do
not run: the request is stored exactly (method, path, body, and who sent it) and the caller
gets `ApprovalRequired`. A human, the user the call acts for, approves or rejects it. On
approval the request is replayed once, as the original caller, and its response is kept;
the agent reads it with GET, or repeats the same request naming the approval and gets that
same response. An approval is bound to its user, method, path and body, expires, and its
request runs at most once: only the approving transaction's winner replays it.

A shell (`RUNS_ON_COLLECTION`) is the exception: its session token must be used within a
short connect window of its issue, so the approved call runs when the agent first collects
the result (its own GET of the approval, or the repeated request), not when the human
approves. The first collection claims the run (`executed_at`), so it still runs once; later
collections get the same session.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain.auth import Actor, Principal
from berth.domain.context import Domain
from berth.domain.errors import (
    ApprovalRequired,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
)
from berth.domain.events import Event
from berth.domain.ids import new_approval_id
from berth.domain.locks import locked
from berth.store.models import ApiKey, Approval, AuditEvent, Company

GATEABLE_ACTIONS = ("create", "exec", "shell")
RUNS_ON_COLLECTION = ("shell",)
"""Approved actions whose call runs when the agent collects the result, not on approval."""
RESULT_WAIT_SECONDS = 660.0
"""How long a repeated request waits for a replay still running (longer than any exec)."""


@dataclass(frozen=True)
class GatedRequest:
    action: str
    method: str
    path: str
    body: bytes


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: bytes


Replay = Callable[[Approval], Awaitable[StoredResponse]]
"""Runs an approved request through the application, as its caller (the API layer's)."""


def body_digest(body: bytes) -> str:
    """Digest of a JSON body, insensitive to key order and whitespace."""
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return hashlib.sha256(body).hexdigest()
    return hashlib.sha256(canonical.encode()).hexdigest()


async def check_gate(
    domain: Domain,
    actor: Actor,
    request: GatedRequest,
    approval_id: str | None,
    *,
    replay: Replay,
    validate: Callable[[], Awaitable[None]],
) -> StoredResponse | None:
    """Let a sensitive call through (None), answer it with an approved result, or gate it.

    Humans (session tokens) and approved replays are never gated. A repeat naming an
    approved call that runs on collection runs it with `replay` (once). A call about to be
    gated is first checked with `validate` (its errors are raised, nothing is queued).
    Raises `ApprovalRequired` when the call must wait, `Conflict` when the named approval is
    for another request, `Forbidden` when it was rejected and `Gone` when it expired.
    """
    principal = actor.principal
    if principal.kind != "api_key" or principal.replay_of is not None:
        return None
    if approval_id is not None:
        return await _answer_repeat(domain, actor, request, approval_id, replay)
    try:
        policy = await get_policy(domain, principal)
    except NotFound:
        return None
    if request.action not in policy.gated_actions:
        return None
    await validate()
    created = await _create(domain, actor, request, company_ttl=policy.approval_ttl_seconds)
    raise ApprovalRequired(created.id)


async def _create(
    domain: Domain, actor: Actor, request: GatedRequest, *, company_ttl: int
) -> Approval:
    now = domain.clock.now()
    approval = Approval(
        id=new_approval_id(),
        company_id=actor.company_id,
        user_id=actor.user_id,
        key_id=actor.principal.key_id or "",
        action=request.action,
        method=request.method,
        path=request.path,
        body=request.body,
        body_digest=body_digest(request.body),
        status="pending",
        created_at=now,
        expires_at=now + timedelta(seconds=company_ttl),
    )
    async with domain.store.transaction() as session:
        session.add(approval)
        _audit(session, approval, actor=actor.principal.key_id or "", what="approval.requested")
    publish_approval(domain, approval)
    return approval


async def _answer_repeat(
    domain: Domain, actor: Actor, request: GatedRequest, approval_id: str, replay: Replay
) -> StoredResponse:
    deadline = asyncio.get_running_loop().time() + RESULT_WAIT_SECONDS
    while True:
        approval = await _load_for_caller(domain, actor.principal, approval_id)
        if (
            approval.user_id != actor.user_id
            or approval.method != request.method
            or approval.path != request.path
            or approval.body_digest != body_digest(request.body)
        ):
            raise Conflict(
                f"approval {approval_id} is for a different request "
                f"({approval.method} {approval.path} with its original body)"
            )
        status = await current_status(domain, approval)
        if status == "pending":
            raise ApprovalRequired(approval.id)
        if status == "rejected":
            raise Forbidden(f"approval {approval.id} was rejected" + _note(approval))
        if status == "expired":
            raise Gone(
                f"approval {approval.id} expired at {approval.expires_at:%Y-%m-%dT%H:%M:%SZ}"
            )
        approval = await collect(domain, approval, replay)
        if approval.result_status is not None and approval.result_body is not None:
            return StoredResponse(approval.result_status, result_body(domain, approval) or b"")
        if asyncio.get_running_loop().time() > deadline:
            raise Conflict(f"approval {approval.id} is approved but its call is still running")
        await asyncio.sleep(0.2)


def collected_by(approval: Approval, principal: Principal) -> bool:
    """Whether `principal` reading `approval` collects its result: the asking key does."""
    return principal.kind == "api_key" and principal.key_id == approval.key_id


async def collect(domain: Domain, approval: Approval, replay: Replay) -> Approval:
    """The approval with its result for the agent collecting it: an approved call that runs
    on collection runs now if no collection ran it yet (the first claims it: once), and is
    `Gone` once the approval's expiry passed uncollected. Others are returned as they are
    (a call another collection is running has no result yet)."""
    if (
        approval.status != "approved"
        or approval.action not in RUNS_ON_COLLECTION
        or approval.executed_at is not None
    ):
        return approval
    if approval.expires_at <= domain.clock.now():
        raise Gone(
            f"approval {approval.id} was approved but its {approval.action} was not collected "
            f"before the approval expired at {approval.expires_at:%Y-%m-%dT%H:%M:%SZ}; "
            "ask again"
        )
    if not await _claim_run(domain, approval.id):
        return await _reload(domain, approval.id)
    # Shielded: once claimed, the call runs and its result is kept even if the collecting
    # client goes away, since no other collection will run it.
    return await asyncio.shield(_run_and_record(domain, approval, replay))


async def _claim_run(domain: Domain, approval_id: str) -> bool:
    """Mark an approved, not yet run call as running; True for exactly one caller."""
    async with domain.store.transaction() as session:
        claimed = await session.execute(
            update(Approval)
            .where(
                Approval.id == approval_id,
                Approval.status == "approved",
                Approval.executed_at.is_(None),
            )
            .values(executed_at=domain.clock.now())
        )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


async def _run_and_record(domain: Domain, approval: Approval, replay: Replay) -> Approval:
    return await record_result(domain, approval.id, await replay(approval))


async def _reload(domain: Domain, approval_id: str) -> Approval:
    async with domain.store.reading() as session:
        approval = await session.get(Approval, approval_id)
    if approval is None:
        raise NotFound(f"approval {approval_id} not found")
    return approval


def result_body(domain: Domain, approval: Approval) -> bytes | None:
    """The replayed response's body, decrypted."""
    if approval.result_body is None:
        return None
    return domain.cipher.decrypt(approval.result_body).encode()


def publish_approval(domain: Domain, approval: Approval) -> None:
    """Tell subscribers (the dashboard's live inbox) that one of the user's approvals was
    asked for, decided or executed; the event names it, readers load it with its rights."""
    domain.bus.publish(
        Event(
            "approval.changed",
            user_id=approval.user_id,
            data={"approval_id": approval.id, "status": approval.status},
        )
    )


def _note(approval: Approval) -> str:
    return f": {approval.note}" if approval.note else ""


def _visible_to(approval: Approval, principal: Principal) -> bool:
    """Who sees an approval: an operator key, any of its company's; a human (session token),
    those of their own user (the calls their agents made, which run on their workloads); any
    other key, only its own. Another user's approval is as unknown as another's workload."""
    if approval.company_id != principal.company_id:
        return False
    if principal.kind == "session":
        return approval.user_id == principal.user_id
    return principal.is_operator or approval.key_id == principal.key_id


async def _load_for_caller(domain: Domain, principal: Principal, approval_id: str) -> Approval:
    async with domain.store.reading() as session:
        approval = await session.get(Approval, approval_id)
    if approval is None or not _visible_to(approval, principal):
        raise NotFound(f"approval {approval_id} not found")
    return approval


async def current_status(domain: Domain, approval: Approval) -> str:
    """The status, turning an overdue pending approval into `expired` (and auditing it)."""
    if approval.status != "pending" or approval.expires_at > domain.clock.now():
        return approval.status
    async with domain.store.transaction() as session:
        fresh = await locked(session, Approval, approval.id)
        if fresh is not None and fresh.status == "pending":
            fresh.status = "expired"
            _audit(session, fresh, actor="berth", what="approval.expired")
    approval.status = "expired"
    return "expired"


async def get_approval(domain: Domain, principal: Principal, approval_id: str) -> Approval:
    approval = await _load_for_caller(domain, principal, approval_id)
    await current_status(domain, approval)
    return approval


async def decide(
    domain: Domain,
    principal: Principal,
    approval_id: str,
    *,
    approve: bool,
    note: str | None,
) -> Approval:
    """Record a human's decision. Only the call that moves it out of `pending` wins.

    An approval the caller cannot see is `NotFound` before anything else, so a key learns
    nothing of another's approvals; a key's own is then `Forbidden` (agents never decide)."""
    approval = await _load_for_caller(domain, principal, approval_id)
    if principal.kind != "session" or principal.user_id is None:
        raise Forbidden("approvals are decided by a human: use a session token, not an API key")
    if await current_status(domain, approval) == "expired":
        raise Gone(f"approval {approval_id} expired")
    async with domain.store.transaction() as session:
        fresh = await locked(session, Approval, approval_id)
        assert fresh is not None
        if fresh.status != "pending":
            raise Conflict(f"approval {approval_id} was already {fresh.status}")
        fresh.status = "approved" if approve else "rejected"
        fresh.decided_at = domain.clock.now()
        fresh.decided_by = principal.user_id
        fresh.note = note
        _audit(
            session,
            fresh,
            actor=principal.user_id,
            what="approval.approved" if approve else "approval.rejected",
            detail={"note": note} if note else None,
        )
    publish_approval(domain, fresh)
    return fresh


async def record_result(domain: Domain, approval_id: str, response: StoredResponse) -> Approval:
    async with domain.store.transaction() as session:
        approval = await session.get(Approval, approval_id)
        assert approval is not None
        approval.result_status = response.status_code
        # Results can hold secrets (a shell session's token, a command's output): encrypted.
        approval.result_body = domain.cipher.encrypt(response.body.decode("utf-8", "replace"))
        approval.executed_at = domain.clock.now()
        _audit(
            session,
            approval,
            actor=approval.key_id,
            what="approval.executed",
            detail={"status_code": response.status_code},
        )
    publish_approval(domain, approval)
    return approval


async def load_replay(domain: Domain, approval_id: str) -> Principal:
    """The principal an approved request is replayed as."""
    async with domain.store.reading() as session:
        approval = await session.get(Approval, approval_id)
        if approval is None or approval.status != "approved":
            raise NotFound(f"approval {approval_id} not found")
        from_key = await _key_principal(session, approval)
    return from_key


async def _key_principal(session: AsyncSession, approval: Approval) -> Principal:
    key = await session.get(ApiKey, approval.key_id)
    return Principal(
        company_id=approval.company_id,
        user_id=key.user_id if key is not None else approval.user_id,
        is_operator=key.is_operator if key is not None else False,
        kind="api_key",
        key_id=approval.key_id,
        replay_of=approval.id,
    )


class Policy(NamedTuple):
    """A company's approval policy: the actions its API keys must have approved, and how
    long a request waits for a human."""

    gated_actions: list[Any]
    approval_ttl_seconds: int


_POLICY = select(Company.gated_actions, Company.approval_ttl_seconds).where(
    Company.id == bindparam("company_id")
)


async def get_policy(domain: Domain, principal: Principal) -> Policy:
    """The company's policy, in one prepared statement (the gate reads it on every call a
    key makes that could be gated)."""
    row = await domain.store.read_first(_POLICY, {"company_id": principal.company_id})
    if row is None:
        raise NotFound("company not found")
    return Policy(gated_actions=list(row[0] or []), approval_ttl_seconds=row[1])


async def set_policy(
    domain: Domain, principal: Principal, *, gated_actions: list[str], ttl_seconds: int
) -> Company:
    """Change which actions are gated; humans only (an agent must not un-gate itself)."""
    if principal.kind != "session":
        raise Forbidden("the approval policy is changed by a human: use a session token")
    return await update_policy(
        domain,
        principal.company_id,
        gated_actions=gated_actions,
        ttl_seconds=ttl_seconds,
        actor=principal.user_id or "",
    )


async def update_policy(
    domain: Domain,
    company_id: str | None,
    *,
    gated_actions: list[str],
    ttl_seconds: int | None,
    actor: str,
) -> Company:
    unknown = sorted(set(gated_actions) - set(GATEABLE_ACTIONS))
    if unknown:
        raise Invalid(
            f"gated_actions: unknown action(s) {', '.join(unknown)}; "
            f"choose from {', '.join(GATEABLE_ACTIONS)}",
            field="gated_actions",
        )
    async with domain.store.transaction() as session:
        if company_id is None:
            company = await session.scalar(select(Company).order_by(Company.created_at).limit(1))
        else:
            company = await session.get(Company, company_id)
        if company is None:
            raise NotFound("company not found; create a user first")
        company.gated_actions = sorted(set(gated_actions))
        if ttl_seconds is not None:
            company.approval_ttl_seconds = ttl_seconds
        session.add(
            AuditEvent(
                company_id=company.id,
                actor=actor,
                action="policy.changed",
                subject=company.id,
                detail={"gated_actions": company.gated_actions, "ttl_seconds": ttl_seconds},
            )
        )
    return company


def _audit(
    session: AsyncSession,
    approval: Approval,
    *,
    actor: str,
    what: str,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            company_id=approval.company_id,
            actor=actor,
            action=what,
            subject=approval.id,
            detail={"method": approval.method, "path": approval.path, **(detail or {})},
        )
    )


async def approval_events(
    domain: Domain, principal: Principal, approval_id: str
) -> list[AuditEvent]:
    """The audit trail of one approval: requested, approved or rejected, executed, expired."""
    await get_approval(domain, principal, approval_id)
    async with domain.store.reading() as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.subject == approval_id).order_by(AuditEvent.id)
        )
        return list(rows)


async def key_names(domain: Domain, principal: Principal, key_ids: set[str]) -> dict[str, str]:
    """The names of the keys that asked (one query for a whole list), of the caller's company
    only; a key without a name is shown by its id."""
    if not key_ids:
        return {}
    async with domain.store.reading() as session:
        rows = await session.execute(
            select(ApiKey.id, ApiKey.name, ApiKey.prefix).where(
                ApiKey.id.in_(key_ids), ApiKey.company_id == principal.company_id
            )
        )
        return {key_id: name or f"{prefix}…" for key_id, name, prefix in rows}
