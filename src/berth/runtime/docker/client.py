"""The Docker driver's connection to the engine: HTTP over its unix socket, errors translated.

It speaks the documented Engine API (v1.41) with httpx rather than through the `docker` SDK:
the SDK is blocking and would stall the event loop (or need a thread per call and per log
stream), while a plain async HTTP client streams logs and events natively. Sticking to
documented fields keeps it working against Podman's Docker-compatible socket too.

Every httpx error is translated here into `RuntimeUnavailable` (an engine that cannot be
reached); error *answers* are left to the caller, which knows what each status means.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping

import httpx

from berth.runtime.base import RuntimeDriverError, RuntimeUnavailable
from berth.runtime.docker.mapping import Json, engine_message
from berth.runtime.docker.upgrade import UPGRADE_FAILURES, Connection, open_upgraded

API_VERSION = "v1.41"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
PULL_TIMEOUT = httpx.Timeout(300.0, connect=5.0)
"""For a pull and for measuring volumes (the engine walks every volume)."""
STREAM_TIMEOUT = httpx.Timeout(None, connect=5.0)
"""For streams that stay open as long as their reader wants (followed logs, events)."""


class EngineClient:
    """The Engine API at `socket_path`.

    `transport` replaces the unix-socket transport (a test's scripted engine); an exec's
    hijacked connection (`upgrade`) always goes to the socket itself.
    """

    def __init__(
        self, socket_path: str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.socket_path = socket_path
        self._client = httpx.AsyncClient(
            transport=transport or httpx.AsyncHTTPTransport(uds=socket_path),
            base_url=f"http://docker/{API_VERSION}",
            timeout=DEFAULT_TIMEOUT,
        )

    def unavailable(self, exc: Exception) -> RuntimeUnavailable:
        """The error for an engine that cannot be reached (`exc` says how it failed)."""
        return RuntimeUnavailable(
            f"the container engine at {self.socket_path} cannot be reached "
            f"({type(exc).__name__}: {exc or 'no detail'}); start the engine (Docker or Podman) "
            "or point berth at the right socket"
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Json | None = None,
        limits: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> httpx.Response:
        """One call, its answer read whole (whatever its status)."""
        try:
            return await self._client.request(
                method, path, params=params, json=body, timeout=limits
            )
        except httpx.HTTPError as exc:
            raise self.unavailable(exc) from exc

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        limits: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> AsyncIterator[httpx.Response]:
        """One call whose answer is read as it comes; httpx errors while it is read, too,
        become `RuntimeUnavailable`."""
        try:
            async with self._client.stream(method, path, params=params, timeout=limits) as answer:
                yield answer
        except httpx.HTTPError as exc:
            raise self.unavailable(exc) from exc

    async def upgrade(
        self, path: str, body: Json, *, connect_timeout: float, answer_timeout: float
    ) -> Connection:
        """POST `body` to `path` on a connection of its own and return it hijacked (see
        `upgrade`); raises `upgrade.UpgradeRefused` for an error answer."""
        try:
            return await open_upgraded(
                self.socket_path,
                f"/{API_VERSION}{path}",
                json.dumps(body).encode(),
                connect_timeout=connect_timeout,
                answer_timeout=answer_timeout,
            )
        except UPGRADE_FAILURES as exc:
            raise self.unavailable(exc) from exc

    async def close(self) -> None:
        await self._client.aclose()


def unexpected(what: str, response: httpx.Response) -> RuntimeDriverError:
    """The error for an answer the caller has no meaning for."""
    return RuntimeDriverError(
        f"{what} failed: engine answered {response.status_code}: {engine_message(response)}"
    )
