"""The Kubernetes driver's connection to the API server: JSON calls and streams over httpx,
subresource WebSockets (exec, attach, port-forward) over `websockets`, errors translated.

Every transport error becomes `RuntimeUnavailable` (an API server that cannot be reached is
an engine outage); error *answers* are left to the caller, which knows what each status
means, with `api_message` to word them.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from berth.runtime.base import RuntimeDriverError, RuntimeUnavailable
from berth.runtime.kubernetes.config import ClusterConfig

Json = dict[str, Any]
Params = Mapping[str, str]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
STREAM_TIMEOUT = httpx.Timeout(None, connect=5.0)
"""For streams that stay open as long as their reader wants (followed logs, watches)."""
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


class SubresourceRefused(RuntimeDriverError):
    """The API server answered a WebSocket upgrade with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    """The API server of `config`."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self._client = httpx.AsyncClient(
            base_url=config.server,
            verify=config.ssl_context,
            timeout=DEFAULT_TIMEOUT,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )

    def unavailable(self, exc: BaseException) -> RuntimeUnavailable:
        return RuntimeUnavailable(
            f"the Kubernetes API server at {self.config.server} cannot be reached "
            f"({type(exc).__name__}: {exc or 'no detail'}); check the cluster and "
            f"{self.config.source}"
        )

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        token = self.config.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: Json | None = None,
        headers: Mapping[str, str] | None = None,
        limits: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> httpx.Response:
        """One call, its answer read whole (whatever its status)."""
        try:
            return await self._client.request(
                method,
                path,
                params=params,
                json=body,
                headers=self._headers(headers),
                timeout=limits,
            )
        except httpx.HTTPError as exc:
            raise self.unavailable(exc) from exc

    async def get_json(self, path: str, *, params: Params | None = None) -> Json | None:
        """The object at `path`, or None when it does not exist (404)."""
        response = await self.request("GET", path, params=params)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise unexpected(f"reading {path}", response)
        data: Json = response.json()
        return data

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, *, params: Params | None = None, limits: httpx.Timeout = STREAM_TIMEOUT
    ) -> AsyncIterator[httpx.Response]:
        """A GET whose answer is read as it comes; transport errors while reading it become
        `RuntimeUnavailable`."""
        try:
            async with self._client.stream(
                "GET", path, params=params, headers=self._headers(), timeout=limits
            ) as answer:
                yield answer
        except httpx.HTTPError as exc:
            raise self.unavailable(exc) from exc

    async def websocket(
        self,
        path: str,
        params: Params | Sequence[tuple[str, str]],
        protocols: Sequence[str],
        *,
        queue_messages: int | None = 16,
    ) -> ClientConnection:
        """A WebSocket to a subresource (`.../exec`, `.../portforward`) speaking one of
        `protocols`. Raises `SubresourceRefused` for an error answer.

        `queue_messages`: how many received messages may wait for the reader before the
        connection stops reading (None: it never stops). Under uvloop (which `berth serve`
        runs on), a TLS connection that stops reading loses what it had not yet decrypted
        when the API server closes it then, cutting the end of a command's output; a reader
        that drains every message at once into its own queue (an exec's) passes None."""
        url = "wss://" + self.config.server.removeprefix("https://") + path
        url += "?" + urlencode(list(params.items()) if isinstance(params, Mapping) else params)
        try:
            return await connect(
                url,
                ssl=self.config.ssl_context,
                additional_headers=self._headers(),
                subprotocols=[Subprotocol(p) for p in protocols],
                open_timeout=10,
                max_size=None,
                compression=None,
                ping_interval=20,
                ping_timeout=60,
                max_queue=queue_messages,
            )
        except InvalidStatus as refused:
            body = bytes(refused.response.body or b"").decode("utf-8", "replace")
            raise SubresourceRefused(
                refused.response.status_code, _status_message(body) or body[:300]
            ) from None
        except (OSError, TimeoutError, InvalidHandshake, ssl.SSLError) as exc:
            raise self.unavailable(exc) from exc

    async def close(self) -> None:
        await self._client.aclose()


def _status_message(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return ""


def api_message(response: httpx.Response) -> str:
    """The API server's error text (a `Status` object's message) from a read answer."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return response.text.strip()[:500] or f"HTTP {response.status_code}"


def api_reason(response: httpx.Response) -> str:
    """A `Status` answer's machine-readable reason (`AlreadyExists`, `Expired`...)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("reason") or "") if isinstance(body, dict) else ""


def unexpected(what: str, response: httpx.Response) -> RuntimeDriverError:
    """The error for an answer the caller has no meaning for."""
    if response.status_code == 401:
        return RuntimeDriverError(
            f"{what} was refused by the API server (401): {api_message(response)}; it does "
            "not accept berth's credentials (an expired or revoked token, or a certificate "
            "it does not trust)"
        )
    if response.status_code == 403:
        return RuntimeDriverError(
            f"{what} was refused by the API server (403): "
            f"{api_message(response)}; the credentials lack a permission berth needs"
        )
    return RuntimeDriverError(
        f"{what} failed: API server answered {response.status_code}: {api_message(response)}"
    )


def selector_param(selector: Mapping[str, str]) -> str:
    """A label selector for `labelSelector=`: every pair must match."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
