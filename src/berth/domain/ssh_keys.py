"""Users' SSH public keys: parsed whole (not just their type), fingerprinted, at most
`max_ssh_keys` per user (checked inside the creating transaction)."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from sqlalchemy import bindparam, func, select

from berth.domain.accounts import check_compute_actor, load_compute_user
from berth.domain.auth import Actor
from berth.domain.context import Domain
from berth.domain.errors import Conflict, Invalid, NotFound, QuotaExceeded
from berth.domain.events import Event
from berth.domain.paging import Keyset, Page, Position, make_page, page_request
from berth.store.models import ContainerSshKey, SshKey
from berth.store.reads import Reader

SSH_KEY_DELETED = "ssh_key.deleted"
"""Published after a key is deleted; `data["container_ids"]` lists the containers that had
selected it (the SSH gateway cuts their sessions opened with that key)."""

SUPPORTED_TYPES = (
    "ssh-rsa",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)
MIN_RSA_BITS = 2048


def parse_public_key(text: str) -> tuple[str, str]:
    """(normalised `type base64 [comment]`, SHA256 fingerprint) or `Invalid`."""
    parts = text.strip().split(None, 2)
    if len(parts) < 2 or parts[0] not in SUPPORTED_TYPES:
        raise Invalid(
            "public_key: unsupported or malformed key; expected one of "
            + ", ".join(SUPPORTED_TYPES),
            field="public_key",
        )
    try:
        key = load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
    except (ValueError, TypeError) as exc:
        raise Invalid(f"public_key: the key does not parse: {exc}", field="public_key") from exc
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise Invalid(f"public_key: RSA keys need at least {MIN_RSA_BITS} bits", field="public_key")
    if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise Invalid("public_key: unsupported key type", field="public_key")
    blob = base64.b64decode(parts[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return " ".join(parts), f"SHA256:{digest}"


async def add_key(domain: Domain, actor: Actor, *, name: str, public_key: str) -> SshKey:
    normalised, fingerprint = parse_public_key(public_key)
    async with domain.store.transaction() as session:
        _user, kit = await load_compute_user(session, actor.user_id, lock=True)
        count = await session.scalar(
            select(func.count()).select_from(SshKey).where(SshKey.user_id == actor.user_id)
        )
        if (count or 0) >= kit.max_ssh_keys:
            raise QuotaExceeded(f"ssh key limit reached ({kit.max_ssh_keys})")
        duplicate = await session.scalar(
            select(SshKey.id).where(
                SshKey.user_id == actor.user_id, SshKey.fingerprint == fingerprint
            )
        )
        if duplicate is not None:
            raise Conflict(f"this key was already added (id {duplicate})", field="public_key")
        key = SshKey(
            user_id=actor.user_id, name=name, public_key=normalised, fingerprint=fingerprint
        )
        session.add(key)
    return key


SSH_KEY_LIST = "ssh_keys"
"""The name an SSH key list's cursors carry."""


class SshKeyRecord(NamedTuple):
    """An SSH key as its readers see it (in `_KEY_COLUMNS`' order)."""

    id: int
    name: str
    public_key: str
    fingerprint: str
    created_at: datetime


_KEY_COLUMNS = tuple(getattr(SshKey, name) for name in SshKeyRecord._fields)
_KEY_KEYSET = Keyset(SshKey.created_at, SshKey.id, newest_first=False)
_FIRST_KEYS, _LATER_KEYS = _KEY_KEYSET.pages(
    select(*_KEY_COLUMNS).where(SshKey.user_id == bindparam("user_id"))
)


async def list_keys(
    domain: Domain, actor: Actor, *, limit: int | None = None, cursor: str | None = None
) -> Page[SshKeyRecord]:
    """One page of the user's keys, oldest first (creation time, then id): the order they
    were added in."""
    request = page_request(SSH_KEY_LIST, limit, cursor)
    params: dict[str, object] = {"user_id": actor.user_id}
    statement = _LATER_KEYS if _KEY_KEYSET.params(request, params) else _FIRST_KEYS

    def read(reader: Reader) -> list[SshKeyRecord]:
        check_compute_actor(reader, actor)
        return [SshKeyRecord._make(row) for row in reader.all(statement, params)]

    rows = await domain.store.read(read, snapshot=False)
    return make_page(SSH_KEY_LIST, rows, request.limit, _position)


def _position(key: SshKeyRecord) -> Position:
    return Position(created_at=key.created_at, id=key.id)


async def delete_key(domain: Domain, actor: Actor, key_id: int) -> None:
    """Delete a key; containers that selected it stop accepting it at once, and SSH sessions
    opened with it are cut (`SSH_KEY_DELETED`)."""
    async with domain.store.transaction() as session:
        await load_compute_user(session, actor.user_id, lock=True)
        key = await session.get(SshKey, key_id)
        if key is None or key.user_id != actor.user_id:
            raise NotFound("ssh key not found")
        container_ids: list[str] = []
        for link in await session.scalars(
            select(ContainerSshKey).where(ContainerSshKey.key_id == key_id)
        ):
            container_ids.append(link.workload_id)
            await session.delete(link)
        await session.delete(key)
    domain.bus.publish(
        Event(
            SSH_KEY_DELETED,
            user_id=actor.user_id,
            data={"key_id": key_id, "container_ids": container_ids},
        )
    )
