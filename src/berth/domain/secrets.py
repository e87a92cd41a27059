"""Encrypted per-workload secrets, injected as environment variables.

Setting or deleting a secret bumps the workload's generation, so the reconciler rolls a
running service's tasks onto the new environment; jobs and schedules pick it up on their next
run. Values are encrypted before they reach the session and never appear in events or errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from berth.domain.accounts import check_compute_actor, ensure_compute_actor
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import Invalid, NotFound
from berth.domain.views import check_owned_workload
from berth.domain.workloads import owned_workload, publish_changed
from berth.schemas.limits import MAX_ENVIRONMENT_BYTES, MAX_SECRETS, environment_bytes
from berth.store.models import Secret, Workload
from berth.store.reads import Reader


class SecretKeyRecord(NamedTuple):
    """A secret as its readers see it: its key and dates, never its value."""

    key: str
    created_at: datetime
    updated_at: datetime


_KEYS = (
    select(Secret.key, Secret.created_at, Secret.updated_at)
    .where(Secret.workload_id == bindparam("workload_id"))
    .order_by(Secret.key)
)


async def list_secrets(domain: Domain, actor: Actor, workload_id: str) -> list[SecretKeyRecord]:
    def read(reader: Reader) -> list[SecretKeyRecord]:
        check_compute_actor(reader, actor)
        check_owned_workload(reader, actor.user_id, workload_id)
        rows = reader.all(_KEYS, {"workload_id": workload_id})
        return [SecretKeyRecord._make(row) for row in rows]

    return await domain.store.read(read, snapshot=False)


async def set_secret(
    domain: Domain, actor: Actor, workload_id: str, *, key: str, value: str
) -> Secret:
    ciphertext = domain.cipher.encrypt(value)
    now = domain.clock.now()
    async with domain.store.transaction() as session:
        await ensure_compute_actor(session, actor)
        workload = await owned_workload(session, actor, workload_id, lock=True)
        existing = {
            row.key: row
            for row in await session.scalars(
                select(Secret).where(Secret.workload_id == workload_id)
            )
        }
        _check_environment_size(domain, workload, existing, key=key, value=value)
        secret = existing.get(key)
        if secret is None:
            secret = Secret(workload_id=workload_id, key=key, ciphertext=ciphertext, created_at=now)
            session.add(secret)
        secret.ciphertext = ciphertext
        secret.updated_at = now
        _bump_generation(workload, now=now)
    publish_changed(domain, workload)
    return secret


async def delete_secret(domain: Domain, actor: Actor, workload_id: str, key: str) -> None:
    async with domain.store.transaction() as session:
        await ensure_compute_actor(session, actor)
        workload = await owned_workload(session, actor, workload_id, lock=True)
        secret = await _owned_secret(session, workload_id, key)
        await session.delete(secret)
        _bump_generation(workload, now=domain.clock.now())
    publish_changed(domain, workload)


async def reveal_secret(domain: Domain, actor: Actor, workload_id: str, key: str) -> str:
    async with domain.store.reading() as session:
        await ensure_compute_actor(session, actor)
        await owned_workload(session, actor, workload_id)
        secret = await _owned_secret(session, workload_id, key)
        return domain.cipher.decrypt(secret.ciphertext)


async def decrypted_environment(
    domain: Domain, session: AsyncSession, workload: Workload
) -> dict[str, str]:
    """The environment a task of `workload` starts with: `env`, then secrets over it."""
    env = {str(k): str(v) for k, v in workload.env.items()}
    rows = await session.scalars(select(Secret).where(Secret.workload_id == workload.id))
    for secret in rows:
        env[secret.key] = domain.cipher.decrypt(secret.ciphertext)
    return env


async def _owned_secret(session: AsyncSession, workload_id: str, key: str) -> Secret:
    secret = await session.scalar(
        select(Secret).where(Secret.workload_id == workload_id, Secret.key == key)
    )
    if secret is None:
        raise NotFound(f"secret {key!r} not found")
    return secret


def _check_environment_size(
    domain: Domain, workload: Workload, existing: dict[str, Secret], *, key: str, value: str
) -> None:
    """A task's environment must stay launchable: `Invalid` past `MAX_SECRETS` secrets or
    `MAX_ENVIRONMENT_BYTES` of env and secrets together (decrypting is CPU work only)."""
    if key not in existing and len(existing) >= MAX_SECRETS:
        raise Invalid(f"key: at most {MAX_SECRETS} secrets per workload", field="key")
    environment = {str(k): str(v) for k, v in workload.env.items()}
    for name, row in existing.items():
        environment[name] = domain.cipher.decrypt(row.ciphertext)
    environment[key] = value
    if environment_bytes(environment) > MAX_ENVIRONMENT_BYTES:
        raise Invalid(
            f"value: the workload's environment (env and secrets together) would exceed "
            f"{MAX_ENVIRONMENT_BYTES} bytes",
            field="value",
        )


def _bump_generation(workload: Workload, *, now: datetime) -> None:
    workload.generation += 1
    workload.updated_at = now
