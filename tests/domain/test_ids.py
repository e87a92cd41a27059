"""Integer ids are never handed out twice, on either store (SQLite needs AUTOINCREMENT)."""

from __future__ import annotations

from berth.domain import ssh_keys
from berth.domain.auth import Actor
from berth.domain.context import Domain
from tests.support.keys import public_key_only


async def test_a_deleted_ssh_keys_id_is_not_given_to_the_next_key(
    domain: Domain, actor: Actor
) -> None:
    first = await ssh_keys.add_key(domain, actor, name="a", public_key=public_key_only())
    newest = await ssh_keys.add_key(domain, actor, name="b", public_key=public_key_only())
    await ssh_keys.delete_key(domain, actor, newest.id)
    after = await ssh_keys.add_key(domain, actor, name="c", public_key=public_key_only())
    assert after.id not in (first.id, newest.id)
    assert after.id > newest.id
