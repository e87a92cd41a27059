"""Entry point of the `berth` command."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from berth.cli.admin_parser import add_admin_parser
from berth.cli.client import CLIENT_COMMANDS, add_client_parsers, run_client, split_trailing_command
from berth.config import Settings


def _data_dir_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data directory (default: $BERTH_DATA_DIR or ./.berth)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="berth", description="berth: self-hosted compute")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API and the controllers")
    _data_dir_args(serve)
    serve.add_argument("--host", help="API address (default: $BERTH_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="API port (default: $BERTH_PORT or 7070)")
    serve.add_argument(
        "--ssh-port", type=int, help="SSH gateway port (default: $BERTH_SSH_PORT or 2222)"
    )
    serve.add_argument(
        "--gateway-port",
        type=int,
        help="HTTP gateway port (default: $BERTH_GATEWAY_PORT, else 80 if free, else 9080)",
    )
    serve.add_argument(
        "--gateway-tls-port",
        type=int,
        help="HTTPS gateway port, active with BERTH_TLS_CERT_FILE/KEY_FILE (default: 443 if "
        "free, else 9443)",
    )
    serve.add_argument(
        "--public-domain", help="domain of public URLs (default: $BERTH_PUBLIC_DOMAIN or localhost)"
    )
    serve.add_argument(
        "--runtime",
        choices=["docker", "kubernetes"],
        help="where tasks run (default: $BERTH_RUNTIME or docker)",
    )
    serve.add_argument(
        "--kubeconfig",
        type=Path,
        help="the cluster for --runtime kubernetes (default: $BERTH_KUBECONFIG, else the "
        "in-cluster service account, else ~/.kube/config)",
    )
    serve.add_argument("--log-level", default=os.environ.get("BERTH_LOG_LEVEL", "info"))
    add_admin_parser(commands, _data_dir_args)
    add_client_parsers(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in (
        "data_dir",
        "host",
        "port",
        "ssh_port",
        "gateway_port",
        "gateway_tls_port",
        "public_domain",
        "runtime",
        "kubeconfig",
    ):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def main(argv: list[str] | None = None) -> int:
    argv, trailing = split_trailing_command(sys.argv[1:] if argv is None else list(argv))
    args = build_parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        return run_client(args, trailing)
    settings = _settings(args)
    if args.command == "admin":
        admin = importlib.import_module("berth.cli.admin")
        code: int = admin.run_admin_reporting_errors(args, settings)
        return code
    # The server (FastAPI, uvicorn, SQLAlchemy, asyncssh) and the store load only for the
    # commands that need them, so client commands start fast.
    serve = importlib.import_module("berth.cli.serve")
    serve.serve(settings, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
