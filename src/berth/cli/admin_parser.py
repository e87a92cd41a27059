"""The `berth admin ...` command line (argument parsing only).

Kept apart from the commands themselves (`berth.cli.admin`), which load the store, so that
building the parser for any `berth` command stays cheap.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_admin_parser(
    subparsers: Any, data_dir_args: Callable[[argparse.ArgumentParser], None]
) -> None:
    admin = subparsers.add_parser("admin", help="operator commands on the data directory")
    commands = admin.add_subparsers(dest="admin_command", required=True)

    user = commands.add_parser("create-user", help="create a user (the first founds the company)")
    user.add_argument("--email", required=True)
    user.add_argument("--name", default="")
    user.add_argument("--credits", type=float, help="starting balance (default from settings)")
    data_dir_args(user)
    user.set_defaults(admin_handler="create_user")

    password = commands.add_parser(
        "set-password",
        help="set a user's password for signing in; read from the terminal, or from stdin "
        "when it is not a terminal (never from the command line)",
    )
    password.add_argument("--user", required=True)
    data_dir_args(password)
    password.set_defaults(admin_handler="set_password")

    invite = commands.add_parser(
        "invite",
        help="print a one-time link where the user sets their password in the dashboard",
    )
    invite.add_argument("--user", required=True)
    invite.add_argument(
        "--base-url", help="where people reach berth (default: http://HOST:PORT of the settings)"
    )
    data_dir_args(invite)
    invite.set_defaults(admin_handler="invite")

    key = commands.add_parser("create-key", help="create an API key; printed once")
    key.add_argument("--user", help="the key's user id")
    key.add_argument("--operator", action="store_true", help="an operator key of the company")
    key.add_argument("--name", default="")
    data_dir_args(key)
    key.set_defaults(admin_handler="create_key")

    revoke = commands.add_parser("revoke-key", help="revoke an API key: refused from now on")
    revoke.add_argument(
        "--key", required=True, help="the key's id (key_...), as create-key printed"
    )
    data_dir_args(revoke)
    revoke.set_defaults(admin_handler="revoke_key")

    token = commands.add_parser("token", help="issue a human session token (JWT)")
    token.add_argument("--user", required=True)
    token.add_argument("--ttl", type=int, help="lifetime in seconds")
    data_dir_args(token)
    token.set_defaults(admin_handler="token")

    update = commands.add_parser(
        "update-user", help="change a user's AccountKit, credits or operator flag"
    )
    update.add_argument("--user", required=True)
    update.add_argument("--compute", choices=["on", "off"], help="enable the compute primitive")
    update.add_argument("--credits", type=float, help="set the balance")
    update.add_argument("--add-credits", type=float, help="add to the balance")
    update.add_argument("--max-cpu", type=float)
    update.add_argument("--max-memory-mb", type=int)
    update.add_argument("--max-replicas", type=int)
    update.add_argument("--max-workloads", type=int)
    update.add_argument("--max-containers", type=int, help="dev boxes (Containers API)")
    update.add_argument("--max-ssh-keys", type=int, help="SSH keys (Containers API)")
    update.add_argument(
        "--operator",
        choices=["on", "off"],
        help="a human operator of the company (the dashboard's user pages)",
    )
    data_dir_args(update)
    update.set_defaults(admin_handler="update_user")

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
    policy.set_defaults(admin_handler="set_policy")

    show = commands.add_parser("show-user", help="print a user with their AccountKit")
    show.add_argument("--user", required=True)
    data_dir_args(show)
    show.set_defaults(admin_handler="show_user")
