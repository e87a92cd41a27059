"""Entry point of the `berth` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from berth.cli.admin_parser import add_admin_parser
from berth.cli.client import CLIENT_COMMANDS, add_client_parsers, run_client, split_trailing_command
from berth.cli.serve import add_serve_parser, run_serve
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
    add_serve_parser(commands, _data_dir_args)
    add_admin_parser(commands, _data_dir_args)
    add_client_parsers(commands)
    commands.add_parser("mcp", help="serve berth's tools to an AI agent over MCP (stdio)")
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
    if argv[:1] == ["mcp"]:
        # The MCP server (and its SDK) loads only for `berth mcp`, so other commands start fast.
        mcp = importlib.import_module("berth.mcp.stdio")
        mcp_parser = argparse.ArgumentParser(prog="berth")
        mcp.add_mcp_parser(mcp_parser.add_subparsers(dest="command", required=True))
        mcp_code: int = mcp.run_mcp(mcp_parser.parse_args(argv))
        return mcp_code
    args = build_parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        return run_client(args, trailing)
    settings = _settings(args)
    # The admin commands load the store, and `berth serve` the whole server, only when run,
    # so client commands start fast.
    if args.command == "admin":
        admin = importlib.import_module("berth.cli.admin")
        code: int = admin.run_admin_reporting_errors(args, settings)
        return code
    return run_serve(args, settings)


if __name__ == "__main__":
    sys.exit(main())
