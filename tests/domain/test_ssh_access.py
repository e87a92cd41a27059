"""SSH access rules against the real store: which dev boxes a key opens, and what ends it."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from berth.config import Settings
from berth.domain import accounts, containers, lifecycle, ssh_keys
from berth.domain.auth import Actor, Principal
from berth.domain.context import Domain
from berth.domain.ssh_access import authorize_ssh, grants_for_key, still_allowed
from berth.schemas.containers import ContainerCreate
from berth.server.bootstrap import open_domain
from berth.store.models import Run


def public_key(directory: Path, name: str) -> str:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_name(f"{name}.pub").read_text().split()[:2])


async def other_actor(domain: Domain, email: str) -> Actor:
    user, _kit = await accounts.create_user(domain, email=email)
    principal = Principal(
        company_id=user.company_id, user_id=user.id, is_operator=False, kind="api_key"
    )
    return Actor(user_id=user.id, company_id=user.company_id, principal=principal)


async def running_box(domain: Domain, actor: Actor, key_id: int, *, ssh: bool = True) -> str:
    """A dev box whose task runs (as the reconciler would record it)."""
    body = ContainerCreate(name="box", ssh_key_ids=[key_id], ssh_enabled=ssh)
    box = (await containers.create_container(domain, actor, body)).workload.id
    await lifecycle.converge_desired_runs(domain, datetime.now(UTC))
    async with domain.store.reading() as session:
        run = await session.scalar(select(Run).where(Run.workload_id == box))
    assert run is not None
    task = f"task-{box}"
    assert await lifecycle.mark_run_started(
        domain, run.id, task_id=task, started_at=datetime.now(UTC)
    )
    return box


async def test_a_key_opens_the_running_ssh_enabled_boxes_that_selected_it(
    domain: Domain, actor: Actor, tmp_path: Path
) -> None:
    shared = public_key(tmp_path, "shared")
    key = await ssh_keys.add_key(domain, actor, name="k", public_key=shared)
    first = await running_box(domain, actor, key.id)
    await running_box(domain, actor, key.id, ssh=False)
    grants = await grants_for_key(domain, public_key=shared, login_user="root")
    assert [(g.container_id, g.task_id) for g in grants] == [(first, f"task-{first}")]

    # The same public key, added by another user to a box of theirs: it opens both.
    stranger = await other_actor(domain, "other@example.com")
    theirs = await ssh_keys.add_key(domain, stranger, name="k", public_key=shared)
    second = await running_box(domain, stranger, theirs.id)
    grants = await grants_for_key(domain, public_key=shared, login_user="root")
    assert [g.container_id for g in grants] == [first, second]

    unknown = public_key(tmp_path, "unknown")
    assert await grants_for_key(domain, public_key=unknown, login_user="root") == []
    assert await grants_for_key(domain, public_key="not a key", login_user="root") == []


async def test_stopping_the_box_or_turning_compute_off_ends_a_grant(
    domain: Domain, actor: Actor, tmp_path: Path
) -> None:
    key_text = public_key(tmp_path, "k")
    key = await ssh_keys.add_key(domain, actor, name="k", public_key=key_text)
    box = await running_box(domain, actor, key.id)
    grant = await authorize_ssh(domain, container_id=box, login_user="dev", public_key=key_text)
    assert grant is not None and grant.login_user == "dev"
    assert await still_allowed(domain, grant)

    await accounts.update_user(domain, actor.user_id, compute_enabled=False)
    assert not await still_allowed(domain, grant)
    await accounts.update_user(domain, actor.user_id, compute_enabled=True)
    assert await still_allowed(domain, grant)

    # Stopping: refused at once, while the task is still being stopped.
    await containers.stop_container(domain, actor, box)
    assert not await still_allowed(domain, grant)
    assert (
        await authorize_ssh(domain, container_id=box, login_user="root", public_key=key_text)
        is None
    )


async def test_deleting_a_key_names_the_boxes_that_had_selected_it(
    domain: Domain, actor: Actor, tmp_path: Path
) -> None:
    key_text = public_key(tmp_path, "k")
    key = await ssh_keys.add_key(domain, actor, name="k", public_key=key_text)
    first = await running_box(domain, actor, key.id)
    second = await running_box(domain, actor, key.id)
    grant = await authorize_ssh(domain, container_id=first, login_user="root", public_key=key_text)
    assert grant is not None
    events = domain.bus.subscribe()

    await ssh_keys.delete_key(domain, actor, key.id)
    event = events.queue.get_nowait()
    assert event.kind == ssh_keys.SSH_KEY_DELETED
    assert sorted(event.data["container_ids"]) == sorted([first, second])
    assert not await still_allowed(domain, grant)


async def test_ssh_command_names_the_port_unless_it_is_22(tmp_path: Path) -> None:
    for port, expected in ((22, "ssh c1@example.com"), (2222, "ssh -p 2222 c1@example.com")):
        settings = Settings(
            data_dir=tmp_path / str(port), ssh_port=port, public_domain="example.com"
        )
        domain = await open_domain(settings)
        try:
            assert containers.ssh_command_of(domain, "c1") == expected
        finally:
            await domain.store.close()
