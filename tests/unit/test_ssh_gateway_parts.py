"""The SSH gateway's pure parts: user names, session commands, the host key."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Collection
from pathlib import Path

import asyncssh
import pytest

from berth.domain.events import Event, EventBus
from berth.domain.shells import LOGIN_SHELL
from berth.gateway.ssh.access import SshLogin, parse_ssh_username
from berth.gateway.ssh.host_key import SshGatewayError, load_or_create_host_key
from berth.gateway.ssh.revocation import containers_named, cut_revoked_logins
from berth.gateway.ssh.session import session_argv


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("c-1a2b3c", SshLogin("c-1a2b3c", "root")),
        ("dev.c-1a2b3c", SshLogin("c-1a2b3c", "dev")),
        ("first.last.c1", SshLogin("c1", "first.last")),
        ("_svc.c1", SshLogin("c1", "_svc")),
        ("", None),
        ("dev.", None),
        (".c1", None),
        ("-rf.c1", None),  # Never something `su` could take for an option.
        ("a b.c1", None),
        ("dev.c1;id", None),
        ("x" * 33 + ".c1", None),
        ("dev.-c1", None),
    ],
)
def test_ssh_user_names(username: str, expected: SshLogin | None) -> None:
    assert parse_ssh_username(username) == expected


def run_with_fake_su(argv: list[str], bin_dir: Path) -> str:
    """Run `argv` here with a `su` that prints its arguments one per line."""
    fake = bin_dir / "su"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout


def test_commands_are_passed_as_arguments_never_pasted_into_scripts(tmp_path: Path) -> None:
    tricky = "echo '$1' \"; id\" `whoami` $(id)"
    root = session_argv("root", tricky)
    assert tricky not in root[2] and root[-1] == tricky
    assert session_argv("root", None) == ["/bin/sh", "-c", LOGIN_SHELL]

    as_dev = session_argv("dev", tricky)
    assert as_dev[-2:] == ["dev", tricky] and tricky not in as_dev[2]
    assert run_with_fake_su(as_dev, tmp_path) == f"-\ndev\n-c\n{tricky}\n"
    assert run_with_fake_su(session_argv("dev", None), tmp_path) == "-\ndev\n"


def test_a_non_root_login_without_su_is_refused_clearly(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        session_argv("dev", "id"), capture_output=True, text=True, env={"PATH": str(empty)}
    )
    assert result.returncode == 1
    assert "cannot log in as 'dev': this container has no 'su' command" in result.stderr


def test_host_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ssh_host_key"
    key = load_or_create_host_key(path)
    assert key.algorithm == b"ssh-ed25519"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["ssh_host_key"]  # No temporary left.

    again = load_or_create_host_key(path)
    assert again.get_fingerprint() == key.get_fingerprint()

    path.chmod(0o644)
    assert load_or_create_host_key(path).get_fingerprint() == key.get_fingerprint()
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_unreadable_host_key_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    path = tmp_path / "ssh_host_key"
    path.write_text("not a key\n")
    with pytest.raises(SshGatewayError, match="cannot be read"):
        load_or_create_host_key(path)
    assert path.read_text() == "not a key\n"
    assert isinstance(asyncssh.generate_private_key("ssh-ed25519"), asyncssh.SSHKey)


# -- revocation: which logins an event sends back to the authorizer ---------------------------


def test_an_event_names_its_workload_and_the_containers_it_lists() -> None:
    assert containers_named(Event("container.ssh", workload_id="c1")) == {"c1"}
    deleted = Event("ssh_key.deleted", user_id="u", data={"container_ids": ["c1", "c2"]})
    assert containers_named(deleted) == {"c1", "c2"}
    assert containers_named(Event("run.finished", data={"container_ids": "c1"})) == set()


async def test_events_are_batched_and_an_overflow_rechecks_every_login() -> None:
    bus = EventBus()
    rechecked: list[set[str] | None] = []
    done = asyncio.Event()

    async def recheck(container_ids: Collection[str] | None) -> None:
        rechecked.append(None if container_ids is None else set(container_ids))
        done.set()

    subscription = bus.subscribe(maxsize=2)
    bus.publish(Event("workload.status", workload_id="c1"))
    bus.publish(Event("ssh_key.deleted", data={"container_ids": ["c2"]}))
    watcher = asyncio.create_task(cut_revoked_logins(subscription, recheck))
    await asyncio.wait_for(done.wait(), 5)
    assert rechecked == [{"c1", "c2"}]  # Both events in one recheck.

    done.clear()
    for name in ("c3", "c4", "c5"):  # One more than the queue holds: one is lost.
        bus.publish(Event("workload.status", workload_id=name))
    await asyncio.wait_for(done.wait(), 5)
    assert rechecked[1] is None  # Every login, since some event was lost.

    watcher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watcher
    bus.publish(Event("workload.status", workload_id="c1"))
    assert subscription.queue.empty()  # Unsubscribed when the watcher ends.
