"""`berth serve`: its command line; the server itself is `berth.server`.

Building the parser stays cheap: the server (FastAPI, uvicorn, SQLAlchemy, asyncssh) is
imported only when the command runs, so client commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from berth.config import Settings


def add_serve_parser(
    subparsers: Any, data_dir_args: Callable[[argparse.ArgumentParser], None]
) -> None:
    serve = subparsers.add_parser("serve", help="run the API and the controllers")
    data_dir_args(serve)
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


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until interrupted (`berth.server.uvicorn.serve`); its exit status."""
    server = importlib.import_module("berth.server.uvicorn")
    code: int = server.serve(settings, log_level=args.log_level)
    return code
