"""Serving berth on uvicorn: logging with credentials redacted, the request-head cap, and
the one function that starts the ASGI server (`berth serve` and the load benchmark use it)."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
from typing import Any

import uvicorn

from berth.config import Settings
from berth.server.app import create_app
from berth.server.bootstrap import DatabaseUnreachable, reach_database
from berth.server.http_head_limit import head_limited_protocol
from berth.store.sqlite_owner import DatabaseInUse, hold_sqlite_database

KEEP_ALIVE_SECONDS = 75
"""How long an idle keep-alive connection to the API stays open. Longer than the idle
timeouts of common load balancers and clients (60 s for nginx's and the cloud balancers'
upstream connections, 5 s for httpx and many SDKs), so the peer closes an idle connection
first: when the server closes one just as the peer sends a request on it, that request
meets a reset. uvicorn's own default is 5 s, the same as httpx's, which made such races
routine."""


class RedactCredentials(logging.Filter):
    """Hides `token=...` query values (WebSocket URLs carry credentials) in every log line."""

    _PATTERN = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = self._PATTERN.sub(r"\1[redacted]", message), None
        return True


def serve(settings: Settings, *, log_level: str) -> int:
    """Run until interrupted; logs go to stderr with credentials in URLs redacted. First
    takes an SQLite database's serving lock (`berth.store.sqlite_owner`: one process serves
    it) or waits for a PostgreSQL it cannot reach yet (`berth.store.reachable`); the exit
    status is 1 when the database cannot be had, with one line saying why."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactCredentials())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    try:
        owner = hold_sqlite_database(settings.resolved_database_url())
        asyncio.run(_reach_database(settings))
    except (DatabaseInUse, DatabaseUnreachable) as exc:
        print(f"berth: {exc}", file=sys.stderr, flush=True)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        print("berth: stopped while waiting for the database", file=sys.stderr, flush=True)
        return 130 if isinstance(exc, KeyboardInterrupt) else 0
    print(
        f"berth serving the API on http://{settings.host}:{settings.port}, SSH on "
        f"{settings.ssh_host}:{settings.ssh_port} "
        f"(data in {settings.data_dir.resolve()}, engine {_engine(settings)})",
        file=sys.stderr,
        flush=True,
    )
    try:
        run_asgi_server(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            max_head_bytes=settings.max_request_head_bytes,
            max_message_bytes=settings.max_request_bytes,
        )
    finally:
        if owner is not None:
            owner.close()
    return 0


async def _reach_database(settings: Settings) -> None:
    """`reach_database` with its wait ended by SIGTERM (an orchestrator stopping a replica
    whose database never came; as PID 1 in a container, berth has no default handler)."""
    waiting = asyncio.current_task()
    assert waiting is not None
    loop = asyncio.get_running_loop()
    before = signal.getsignal(signal.SIGTERM)
    loop.add_signal_handler(signal.SIGTERM, waiting.cancel)
    try:
        await reach_database(settings, wait_seconds=settings.database_wait_seconds)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        if before is not None:  # (None: a handler not set from Python, left as it is)
            signal.signal(signal.SIGTERM, before)


def _engine(settings: Settings) -> str:
    if settings.runtime == "kubernetes":
        return f"kubernetes ({settings.kubeconfig or 'in-cluster or ~/.kube/config'})"
    return settings.docker_host


def run_asgi_server(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str,
    max_head_bytes: int,
    max_message_bytes: int,
) -> None:
    """Serve an ASGI app on uvicorn as berth does (its loop and HTTP implementation with
    berth's request-head cap, no access log, logging through the root logger); the load
    benchmark's bare-app baseline calls this too, so both sides of its ratio run on the same
    server stack."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn logs through the root logger, and so through the filter
        http=head_limited_protocol(max_head_bytes),
        ws_max_size=max_message_bytes,  # one WebSocket message, like one body
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
