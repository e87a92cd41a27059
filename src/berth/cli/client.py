"""The client commands of `berth`: `login`, `compute ...` and `approvals ...`, on the SDK.

`login` stores the server URL with an API key, or (`--email`) signs a human in with a
password and stores the session token instead.

Every command takes `--url` and `--key` (else `BERTH_URL` / `BERTH_API_KEY`, else the config
file written by `berth login`) and `--json` (the API's JSON instead of tables); `compute`
commands take `--user USER_ID` for the per-user routes. Errors print `error: <message>` on
stderr, never a traceback; exit statuses are listed in `berth.cli.context`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
from typing import Any

from berth.cli.approvals import add_approvals_parser
from berth.cli.compute import add_compute_parser
from berth.cli.context import (
    EXIT_PENDING_APPROVAL,
    EXIT_USAGE,
    CliError,
    Context,
    pending_message,
)
from berth.cli.terminal import SignalExit
from berth.sdk import (
    ApprovalPending,
    BerthError,
    Client,
    ConfigError,
    config_path,
    resolve_credentials,
    sign_in,
    write_config,
)
from berth.sdk.config import KEY_ENV, URL_ENV

CLIENT_COMMANDS = frozenset({"login", "compute", "approvals"})
EXIT_INTERRUPTED = 128 + signal.SIGINT


def split_trailing_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """For `compute exec ... -- CMD...`: the arguments before the first `--`, and CMD (kept
    verbatim, `--` and options included). Other commands are left as they are."""
    if argv[:2] == ["compute", "exec"] and "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, None


def _connection_options(*, per_user: bool) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("server and output")
    group.add_argument("--url", help=f"server URL (default: ${URL_ENV} or the config file)")
    group.add_argument("--key", help=f"API key or session token (default: ${KEY_ENV} or config)")
    group.add_argument("--json", action="store_true", help="print the API's JSON")
    if per_user:
        group.add_argument("--user", metavar="USER_ID", help="act for this user (per-user routes)")
    return options


def add_client_parsers(subparsers: Any) -> None:
    """Register `login`, `compute` and `approvals` on the `berth` command's subparsers."""
    login = subparsers.add_parser(
        "login", help="store the server URL and an API key, or sign in as a human"
    )
    login.add_argument("--url", help=f"server URL (default: ${URL_ENV})")
    credential = login.add_mutually_exclusive_group()
    credential.add_argument(
        "--key", help=f"API key or session token (default: ${KEY_ENV}, or asked)"
    )
    credential.add_argument(
        "--email",
        help="sign in with this e-mail address and a password (asked on the terminal, else "
        "read from stdin) and store the session token",
    )
    add_compute_parser(subparsers, [_connection_options(per_user=True)])
    add_approvals_parser(subparsers, [_connection_options(per_user=False)])


def run_client(args: argparse.Namespace, trailing: list[str] | None = None) -> int:
    """Run a client command; its exit status. Prints errors, never raises them."""
    if trailing is not None and hasattr(args, "cmd"):
        args.cmd = [*args.cmd, *trailing]
    try:
        if args.command == "login":
            return _login(args)
        credentials = resolve_credentials(url=args.url, api_key=args.key)
        with Client(
            credentials.url, credentials.api_key, user_id=getattr(args, "user", None)
        ) as client:
            ctx = Context(client=client, json=args.json, out=sys.stdout, err=sys.stderr)
            status: int = args.client_handler(ctx, args)
            return status
    except ApprovalPending as pending:
        _error_line(pending_message(pending.approval_id))
        return EXIT_PENDING_APPROVAL
    except ConfigError as exc:
        _error_line(f"error: {exc.message}")
        return EXIT_USAGE
    except BerthError as exc:
        _error_line(f"error: {exc.message}")
        return 1
    except CliError as exc:
        _error_line(f"error: {exc.message}")
        return exc.exit_code
    except KeyboardInterrupt:
        _error_line("")
        return EXIT_INTERRUPTED
    except SignalExit as exc:
        return 128 + exc.signum
    except BrokenPipeError:
        # The reader of our output went away (`| head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _error_line(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _login(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get(URL_ENV)
    if not url:
        raise CliError(f"login needs --url (or ${URL_ENV})", EXIT_USAGE)
    if args.email:
        return _sign_in(url.rstrip("/"), args.email)
    key = args.key or os.environ.get(KEY_ENV)
    if not key and sys.stdin.isatty():
        key = getpass.getpass("API key: ").strip()
    if not key:
        raise CliError(f"login needs --key (or ${KEY_ENV})", EXIT_USAGE)
    url = url.rstrip("/")
    with Client(url, key) as client:
        workloads = client.compute.list()
    path = config_path()
    write_config(path, url=url, api_key=key)
    print(f"logged in to {url} ({len(workloads)} workloads); credentials saved to {path}")
    return 0


def _sign_in(url: str, email: str) -> int:
    """`login --email`: a session token for the e-mail address and password, stored like a key.

    The password is never an argument (argv is visible in the process list): it is asked on
    a terminal, else read as stdin's first line.
    """
    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {email}: ")
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise CliError("login --email needs a password (on the terminal or stdin)", EXIT_USAGE)
    signed_in = sign_in(url, email=email, password=password)
    path = config_path()
    write_config(path, url=url, api_key=signed_in.token)
    print(
        f"signed in to {url} as {signed_in.user_id} until "
        f"{signed_in.expires_at:%Y-%m-%d %H:%M:%S} UTC; session token saved to {path}"
    )
    return 0
