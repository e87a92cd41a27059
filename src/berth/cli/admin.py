"""`berth admin ...`: operator commands on the data directory directly (no server needed).

Each prints JSON on stdout; errors go to stderr with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from berth.config import Settings
from berth.domain import accounts, approvals, invitations, operators, sign_in
from berth.domain.context import Domain
from berth.domain.errors import DomainError, Invalid
from berth.domain.records import AccountKit, User
from berth.server.bootstrap import DatabaseUnreachable, open_domain, reach_database


def run_admin_reporting_errors(args: argparse.Namespace, settings: Settings) -> int:
    """`run_admin`, with a domain error, or a database it cannot reach, printed as
    `error: ...` and exit status 1."""
    try:
        return run_admin(args, settings)
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except DatabaseUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def run_admin(args: argparse.Namespace, settings: Settings) -> int:
    """Run the admin command the parser chose (`args.admin_handler` names it)."""
    handler = HANDLERS[args.admin_handler]
    args.served_at = f"http://{settings.host}:{settings.port}"  # for links (`invite`)

    async def main() -> dict[str, Any]:
        await reach_database(settings)  # no waiting: an operator at the prompt sees why
        domain = await open_domain(settings)
        try:
            return await handler(domain, args)
        finally:
            await domain.close()

    print(json.dumps(asyncio.run(main()), indent=2, default=str))
    return 0


def _user_json(user: User, kit: AccountKit) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "company_id": user.company_id,
        "credits": round(user.credits, 8),
        "created_at": user.created_at.isoformat(),
        "operator": user.is_operator,
        "account_kit": {
            "compute": kit.compute_enabled,
            "max_cpu": kit.max_cpu,
            "max_memory_mb": kit.max_memory_mb,
            "max_replicas": kit.max_replicas,
            "max_workloads": kit.max_workloads,
            "max_containers": kit.max_containers,
            "max_ssh_keys": kit.max_ssh_keys,
        },
    }


async def _create_user(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    user, kit = await accounts.create_user(
        domain, email=args.email, name=args.name, credits=args.credits
    )
    return _user_json(user, kit)


def read_password() -> str:
    """The new password: asked twice on a terminal, else stdin's first line.

    Never a command-line argument: those are visible to every user of the machine in the
    process list.
    """
    if sys.stdin.isatty():
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise Invalid("password: the two entries differ", field="password")
        return password
    return sys.stdin.readline().removesuffix("\n").removesuffix("\r")


async def _set_password(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    await sign_in.set_password(domain, args.user, read_password())
    return {"user_id": args.user, "password_set": True}


async def _invite(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    invitation = await invitations.invite(domain, args.user)
    base = (args.base_url or args.served_at).rstrip("/")
    return {
        "user_id": invitation.user_id,
        "email": invitation.email,
        "link": f"{base}/invite/{invitation.token}",
        "expires_at": invitation.expires_at.isoformat(),
    }


async def _create_key(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    created = await accounts.create_api_key(
        domain, user_id=args.user, operator=args.operator, name=args.name
    )
    return {
        "key": created.key,
        "id": created.row.id,
        "user_id": created.row.user_id,
        "company_id": created.row.company_id,
        "operator": created.row.is_operator,
        "name": created.row.name,
    }


async def _revoke_key(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    key = await accounts.revoke_api_key(domain, args.key)
    revoked = key.revoked_at.isoformat() if key.revoked_at else None
    return {"id": key.id, "user_id": key.user_id, "revoked_at": revoked}


async def _token(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    token = await accounts.issue_session_token(domain, args.user, ttl_seconds=args.ttl)
    return {"token": token, "user_id": args.user}


async def _update_user(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    if args.operator is not None:
        await operators.set_operator(domain, args.user, args.operator == "on")
    user, kit = await accounts.update_user(
        domain,
        args.user,
        compute_enabled=None if args.compute is None else args.compute == "on",
        credits=args.credits,
        add_credits=args.add_credits,
        max_cpu=args.max_cpu,
        max_memory_mb=args.max_memory_mb,
        max_replicas=args.max_replicas,
        max_workloads=args.max_workloads,
        max_containers=args.max_containers,
        max_ssh_keys=args.max_ssh_keys,
    )
    return _user_json(user, kit)


async def _show_user(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    user, kit = await accounts.get_user(domain, args.user)
    return _user_json(user, kit)


async def _set_policy(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    actions = [part.strip() for part in args.gate.split(",") if part.strip()]
    company = await approvals.update_policy(
        domain, None, gated_actions=actions, ttl_seconds=args.ttl, actor="admin-cli"
    )
    return {
        "company_id": company.id,
        "gated_actions": company.gated_actions,
        "ttl_seconds": company.approval_ttl_seconds,
    }


HANDLERS: dict[str, Callable[[Domain, argparse.Namespace], Awaitable[dict[str, Any]]]] = {
    "create_user": _create_user,
    "create_key": _create_key,
    "set_password": _set_password,
    "invite": _invite,
    "revoke_key": _revoke_key,
    "token": _token,
    "update_user": _update_user,
    "set_policy": _set_policy,
    "show_user": _show_user,
}
