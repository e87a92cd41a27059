"""Entry point of the `berth` command."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import uvicorn

from berth.app import create_app
from berth.cli.admin import add_admin_parser, run_admin
from berth.cli.client import CLIENT_COMMANDS, add_client_parsers, run_client, split_trailing_command
from berth.config import Settings
from berth.domain.errors import DomainError


class RedactCredentials(logging.Filter):
    """Hides `token=...` query values (WebSocket URLs carry credentials) in every log line."""

    _PATTERN = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = self._PATTERN.sub(r"\1[redacted]", message), None
        return True


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
    serve.add_argument("--log-level", default=os.environ.get("BERTH_LOG_LEVEL", "info"))
    add_admin_parser(commands, _data_dir_args)
    add_client_parsers(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("data_dir", "host", "port", "ssh_port"):
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
        try:
            return run_admin(args, settings)
        except DomainError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactCredentials())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    print(
        f"berth serving the API on http://{settings.host}:{settings.port}, SSH on "
        f"{settings.ssh_host}:{settings.ssh_port} "
        f"(data in {settings.data_dir.resolve()}, engine {settings.docker_host})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn logs through the root logger, and so through the filter
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
