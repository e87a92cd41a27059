"""Companies, users, AccountKits and credentials.

The first user created founds the company and becomes its default user: company-scoped routes
of an operator key act as that user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.crypto import hash_api_key, new_api_key
from berth.domain.errors import Conflict, Invalid, NotFound, PrimitiveDisabled
from berth.domain.ids import new_api_key_id, new_company_id, new_user_id
from berth.domain.ledger import micro_credits, post
from berth.domain.locks import lock_user
from berth.store.models import AccountKit, ApiKey, Company, User
from berth.store.reads import Reader


@dataclass(frozen=True)
class CreatedKey:
    key: str
    """The raw key, shown once."""
    row: ApiKey


async def create_user(
    domain: Domain,
    *,
    email: str,
    name: str = "",
    credits: float | None = None,
) -> tuple[User, AccountKit]:
    """A new user without a password (`berth.domain.sign_in.set_password` gives one)."""
    if "@" not in email or len(email) > 320:
        raise Invalid("email: must be an e-mail address", field="email")
    defaults = domain.kit_defaults
    starting = micro_credits(defaults.credits if credits is None else credits)
    async with domain.store.transaction() as session:
        # The unique index on e-mail is the guard; this is its clear message.
        if await session.scalar(select(User).where(User.email == email)):
            raise Conflict(f"email: a user with e-mail {email!r} already exists", field="email")
        company = await session.scalar(select(Company).order_by(Company.created_at).limit(1))
        if company is None:
            company = Company(
                id=new_company_id(),
                name="default",
                gated_actions=list(defaults.gated_actions),
                approval_ttl_seconds=defaults.approval_ttl_seconds,
            )
            session.add(company)
            await session.flush()
        user = User(
            id=new_user_id(),
            company_id=company.id,
            email=email,
            name=name,
            credits_micro=0,
        )
        session.add(user)
        await session.flush()
        post(session, user, starting, kind="grant")
        if company.default_user_id is None:
            company.default_user_id = user.id
        kit = AccountKit(
            user_id=user.id,
            compute_enabled=True,
            max_cpu=defaults.max_cpu,
            max_memory_mb=defaults.max_memory_mb,
            max_replicas=defaults.max_replicas,
            max_workloads=defaults.max_workloads,
            max_containers=defaults.max_containers,
            max_ssh_keys=defaults.max_ssh_keys,
        )
        session.add(kit)
    return user, kit


async def get_user(domain: Domain, user_id: str) -> tuple[User, AccountKit]:
    async with domain.store.reading() as session:
        user = await session.get(User, user_id)
        kit = await session.get(AccountKit, user_id)
        if user is None or kit is None:
            raise NotFound(f"user {user_id} not found")
        return user, kit


async def update_user(
    domain: Domain,
    user_id: str,
    *,
    compute_enabled: bool | None = None,
    credits: float | None = None,
    add_credits: float | None = None,
    max_cpu: float | None = None,
    max_memory_mb: int | None = None,
    max_replicas: int | None = None,
    max_workloads: int | None = None,
    max_containers: int | None = None,
    max_ssh_keys: int | None = None,
) -> tuple[User, AccountKit]:
    """Change a user's AccountKit or balance (operator use).

    Limits are checked before anything is written: a balance may not go below zero, vCPUs
    and memory must be positive, counts may be zero (nothing of that kind allowed).
    """
    _check_not_below("credits", credits, 0)
    _check_not_below("max_cpu", max_cpu, 0.01)
    _check_not_below("max_memory_mb", max_memory_mb, 16)
    for field, count in (
        ("max_replicas", max_replicas),
        ("max_workloads", max_workloads),
        ("max_containers", max_containers),
        ("max_ssh_keys", max_ssh_keys),
    ):
        _check_not_below(field, count, 0)
    async with domain.store.transaction() as session:
        user = await lock_user(session, user_id)
        kit = await session.get(AccountKit, user_id)
        if user is None or kit is None:
            raise NotFound(f"user {user_id} not found")
        if credits is not None:
            post(session, user, micro_credits(credits) - user.credits_micro, kind="adjustment")
        if add_credits is not None:
            post(session, user, micro_credits(add_credits, field="add_credits"), kind="grant")
        if compute_enabled is not None:
            kit.compute_enabled = compute_enabled
        if max_cpu is not None:
            kit.max_cpu = max_cpu
        if max_memory_mb is not None:
            kit.max_memory_mb = max_memory_mb
        if max_replicas is not None:
            kit.max_replicas = max_replicas
        if max_workloads is not None:
            kit.max_workloads = max_workloads
        if max_containers is not None:
            kit.max_containers = max_containers
        if max_ssh_keys is not None:
            kit.max_ssh_keys = max_ssh_keys
        if user.credits_micro < 0:
            raise Invalid("credits: the balance may not go below 0", field="credits")
    return user, kit


def _check_not_below(field: str, value: float | None, least: float) -> None:
    if value is not None and value < least:
        raise Invalid(f"{field}: must be at least {least:g}", field=field)


async def create_api_key(
    domain: Domain,
    *,
    user_id: str | None,
    operator: bool = False,
    name: str = "",
) -> CreatedKey:
    """A user's key, or (with `operator`) a key of the company; the raw key is returned once."""
    raw = new_api_key()
    async with domain.store.transaction() as session:
        if user_id is not None:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            company_id = user.company_id
        else:
            if not operator:
                raise Invalid("a key needs a user, or must be an operator key")
            company = await session.scalar(select(Company).order_by(Company.created_at).limit(1))
            if company is None:
                raise Conflict("create a user first: the first user founds the company")
            company_id = company.id
        row = ApiKey(
            id=new_api_key_id(),
            company_id=company_id,
            user_id=user_id,
            is_operator=operator,
            name=name,
            key_hash=hash_api_key(raw),
            prefix=raw[:10],
        )
        session.add(row)
    return CreatedKey(key=raw, row=row)


async def revoke_api_key(domain: Domain, key_id: str) -> ApiKey:
    """Refuse the key from now on (its row stays, for the record); idempotent. Every request
    reads its key afresh, so the next request with it is a 401, whichever process revoked it."""
    async with domain.store.transaction() as session:
        key = await session.get(ApiKey, key_id)
        if key is None:
            raise NotFound(f"api key {key_id} not found")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
    return key


async def issue_session_token(domain: Domain, user_id: str, *, ttl_seconds: int | None) -> str:
    await get_user(domain, user_id)
    return domain.tokens.issue(user_id, ttl_seconds=ttl_seconds)


_USER_AND_KIT = (
    select(User, AccountKit)
    .join(AccountKit, AccountKit.user_id == User.id)
    .where(User.id == bindparam("user_id"))
)


_USER_AND_KIT_LOCKED = _USER_AND_KIT.with_for_update(of=User).execution_options(
    populate_existing=True
)


async def load_compute_user(
    session: AsyncSession, user_id: str, *, lock: bool = False
) -> tuple[User, AccountKit]:
    """The acting user and kit, checking that compute is enabled (403 otherwise). One query
    for both (this runs in almost every call of the API).

    With `lock` (every write on the user's behalf) the user's row stays locked until the
    transaction ends (`berth.domain.locks`): the user's writes follow one another, so what
    they check (quotas, free names, the balance, a workload's state) still holds when they
    write."""
    statement = _USER_AND_KIT_LOCKED if lock else _USER_AND_KIT
    row = (await session.execute(statement, {"user_id": user_id})).first()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    user, kit = row
    if not kit.compute_enabled:
        raise _compute_disabled()
    return user, kit


_COMPUTE_ENABLED = (
    select(AccountKit.compute_enabled)
    .join(User, User.id == AccountKit.user_id)
    .where(AccountKit.user_id == bindparam("user_id"))
)


def check_compute_user(reader: Reader, user_id: str) -> None:
    """`load_compute_user`'s checks for a read inside `Store.read`, in one query: the user
    and kit exist (404) and compute is enabled (403)."""
    enabled = reader.scalar(_COMPUTE_ENABLED, {"user_id": user_id})
    if enabled is None:
        raise NotFound(f"user {user_id} not found")
    if not enabled:
        raise _compute_disabled()


def check_compute_actor(reader: Reader, actor: Actor) -> None:
    """`check_compute_user` for the acting user, with nothing to read when the request's
    credential was read with that user's switch a moment before (`Principal.compute_enabled`:
    a request acting as its own user, the common case)."""
    if _compute_known(actor):
        return
    check_compute_user(reader, actor.user_id)


async def ensure_compute_actor(session: AsyncSession, actor: Actor) -> None:
    """`check_compute_actor` inside a write's transaction, for a write that needs nothing of
    the user's rows (see `load_compute_user` for one that does)."""
    if not _compute_known(actor):
        await load_compute_user(session, actor.user_id)


def _compute_known(actor: Actor) -> bool:
    """True if the principal's read says compute is enabled for the acting user; raises
    `PrimitiveDisabled` if it says it is not; False if it did not read it for this user."""
    principal = actor.principal
    if principal.user_id != actor.user_id or principal.compute_enabled is None:
        return False
    if not principal.compute_enabled:
        raise _compute_disabled()
    return True


async def require_compute_user(domain: Domain, actor: Actor) -> None:
    """`check_compute_actor` on its own: the user exists (404) and compute is enabled (403),
    for a caller that reads nothing else yet (a WebSocket before its handshake completes)."""
    if not _compute_known(actor):
        await domain.store.read(lambda reader: check_compute_user(reader, actor.user_id))


def _compute_disabled() -> PrimitiveDisabled:
    return PrimitiveDisabled(
        "the compute primitive is not enabled for this user; ask the operator to enable it"
    )
