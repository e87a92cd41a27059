"""`berth admin ...`: operator commands on the data directory directly (no server needed).

Each prints JSON on stdout; errors go to stderr with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from berth.bootstrap import open_domain
from berth.config import Settings
from berth.domain import accounts, approvals
from berth.domain.context import Domain
from berth.store.models import AccountKit, User


def add_admin_parser(
    subparsers: Any, data_dir_args: Callable[[argparse.ArgumentParser], None]
) -> None:
    admin = subparsers.add_parser("admin", help="operator commands on the data directory")
    commands = admin.add_subparsers(dest="admin_command", required=True)

    user = commands.add_parser("create-user", help="create a user (the first founds the company)")
    user.add_argument("--email", required=True)
    user.add_argument("--name", default="")
    user.add_argument("--password")
    user.add_argument("--credits", type=float, help="starting balance (default from settings)")
    data_dir_args(user)
    user.set_defaults(admin_handler=_create_user)

    key = commands.add_parser("create-key", help="create an API key; printed once")
    key.add_argument("--user", help="the key's user id")
    key.add_argument("--operator", action="store_true", help="an operator key of the company")
    key.add_argument("--name", default="")
    data_dir_args(key)
    key.set_defaults(admin_handler=_create_key)

    token = commands.add_parser("token", help="issue a human session token (JWT)")
    token.add_argument("--user", required=True)
    token.add_argument("--ttl", type=int, help="lifetime in seconds")
    data_dir_args(token)
    token.set_defaults(admin_handler=_token)

    update = commands.add_parser("update-user", help="change a user's AccountKit or credits")
    update.add_argument("--user", required=True)
    update.add_argument("--compute", choices=["on", "off"], help="enable the compute primitive")
    update.add_argument("--credits", type=float, help="set the balance")
    update.add_argument("--add-credits", type=float, help="add to the balance")
    update.add_argument("--max-cpu", type=float)
    update.add_argument("--max-memory-mb", type=int)
    update.add_argument("--max-replicas", type=int)
    update.add_argument("--max-workloads", type=int)
    data_dir_args(update)
    update.set_defaults(admin_handler=_update_user)

    policy = commands.add_parser(
        "set-approval-policy", help="which agent actions need a human's approval"
    )
    policy.add_argument(
        "--gate",
        required=True,
        help="comma-separated actions among create,exec,shell ('' gates nothing)",
    )
    policy.add_argument("--ttl", type=int, help="seconds an approval stays open")
    data_dir_args(policy)
    policy.set_defaults(admin_handler=_set_policy)

    show = commands.add_parser("show-user", help="print a user with their AccountKit")
    show.add_argument("--user", required=True)
    data_dir_args(show)
    show.set_defaults(admin_handler=_show_user)


def run_admin(args: argparse.Namespace, settings: Settings) -> int:
    handler: Callable[[Domain, argparse.Namespace], Awaitable[dict[str, Any]]]
    handler = args.admin_handler

    async def main() -> dict[str, Any]:
        domain = await open_domain(settings)
        try:
            return await handler(domain, args)
        finally:
            await domain.store.close()

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
        "account_kit": {
            "compute": kit.compute_enabled,
            "max_cpu": kit.max_cpu,
            "max_memory_mb": kit.max_memory_mb,
            "max_replicas": kit.max_replicas,
            "max_workloads": kit.max_workloads,
        },
    }


async def _create_user(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    user, kit = await accounts.create_user(
        domain, email=args.email, name=args.name, password=args.password, credits=args.credits
    )
    return _user_json(user, kit)


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


async def _token(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    token = await accounts.issue_session_token(domain, args.user, ttl_seconds=args.ttl)
    return {"token": token, "user_id": args.user}


async def _update_user(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
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
