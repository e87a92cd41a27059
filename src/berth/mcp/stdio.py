"""`berth mcp`: the MCP server over stdio, and `berth mcp config`, the client snippet.

Over stdio the server is a plain API client: it resolves the server URL and credential as
every client command does (`--url`/`--key`, else `BERTH_URL`/`BERTH_API_KEY`, else the file
`berth login` wrote) and sends each tool call to that server with that key. Nothing but MCP
messages is written to stdout; problems go to stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from typing import Any

import anyio

from berth.mcp.calls import fixed_client
from berth.mcp.server import build_server
from berth.sdk import AsyncClient, ConfigError, resolve_credentials
from berth.sdk.config import KEY_ENV, URL_ENV

MCP_PATH = "/mcp"


def add_mcp_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "mcp", help="serve berth's tools to an AI agent over MCP (stdio)"
    )
    parser.add_argument("--url", help=f"server URL (default: ${URL_ENV} or the config file)")
    parser.add_argument("--key", help=f"API key (default: ${KEY_ENV} or the config file)")
    actions = parser.add_subparsers(dest="mcp_action")
    config = actions.add_parser("config", help="print the JSON an MCP client needs")
    config.add_argument(
        "--transport", choices=("stdio", "http"), default="stdio", help="default: stdio"
    )


def client_config(transport: str, url: str, key_in_file: bool) -> dict[str, Any]:
    """The `mcpServers` entry for an MCP client. The key is never printed: over stdio
    `berth mcp` reads it where `berth login` stored it (else the snippet leaves a place for
    it); over HTTP the snippet shows where the caller's own key goes."""
    if transport == "http":
        return {
            "mcpServers": {
                "berth": {
                    "type": "http",
                    "url": url + MCP_PATH,
                    "headers": {"Authorization": f"Bearer ${{{KEY_ENV}}}"},
                }
            }
        }
    installed = shutil.which("berth")
    # Without `berth` on PATH (a virtual environment not activated), the interpreter that
    # runs this command starts the server the same way.
    command, args = (
        (installed, ["mcp"]) if installed else (sys.executable, ["-m", "berth.cli.main", "mcp"])
    )
    entry: dict[str, Any] = {"command": command, "args": args, "env": {URL_ENV: url}}
    if not key_in_file:
        entry["env"][KEY_ENV] = "nv_sk_..."
    return {"mcpServers": {"berth": entry}}


def run_mcp(args: argparse.Namespace) -> int:
    try:
        found = resolve_credentials(url=args.url, api_key=args.key)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.mcp_action == "config":
        key_in_file = found.key_source not in ("--key", KEY_ENV)
        print(json.dumps(client_config(args.transport, found.url, key_in_file), indent=2))
        return 0
    anyio.run(_serve, found.url, found.api_key)
    return 0


async def _serve(url: str, api_key: str) -> None:
    async with AsyncClient(url, api_key) as client:
        await build_server(fixed_client(client)).run_stdio_async()
