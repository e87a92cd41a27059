"""The SDK's core: a `Call` describes one request; the transports send it and decode the answer.

Every sub-client method builds a `Call` (method, path, body, the pydantic model of a success)
and hands it to `SyncTransport` or `AsyncTransport`, so the sync and async clients share one
description of each route and one way of turning responses into models or typed errors:

- `202` with `{"status": "pending_approval", "approval_id": ...}` raises `ApprovalPending`;
- `>= 400` raises the `BerthError` subclass for the status, with the server's message;
- no response at all (refused, reset, timed out) raises `NetworkError`;
- a success whose body does not fit the model raises `BerthError` ("unexpected response").
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from berth import __version__
from berth.schemas.approvals import APPROVAL_HEADER
from berth.schemas.workloads import PendingApproval
from berth.sdk.errors import ApprovalPending, BerthError, NetworkError, error_from_response

M = TypeVar("M", bound=BaseModel)

USER_AGENT = f"berth-sdk/{__version__}"

_NO_BODY = object()


@dataclass(frozen=True)
class Call(Generic[M]):
    """One API request and the model its success decodes to."""

    method: str
    path: str
    model: type[M]
    body: Any = _NO_BODY
    params: Mapping[str, str | int] | None = None
    approval_id: str | None = None
    min_read_timeout: float | None = None
    """The read timeout is at least this (exec waits for its command)."""
    unbounded_read: bool = False
    """Streams (log follow) may stay quiet for any length of time."""
    content: bytes | None = None
    """A raw body (a file's bytes), sent as `application/octet-stream` instead of `body`."""

    def with_approval(self, approval_id: str | None) -> Call[M]:
        """The same request, repeated with `Berth-Approval-Id: <approval_id>`."""
        return dataclasses.replace(self, approval_id=approval_id)

    def headers(self) -> dict[str, str]:
        headers = {APPROVAL_HEADER: self.approval_id} if self.approval_id else {}
        if self.content is not None:
            headers["Content-Type"] = "application/octet-stream"
        return headers

    def json(self) -> Any:
        return None if self.body is _NO_BODY else self.body

    def timeout(self, default: float) -> httpx.Timeout:
        if self.unbounded_read:
            return httpx.Timeout(default, read=None)
        if self.min_read_timeout is not None:
            return httpx.Timeout(default, read=max(default, self.min_read_timeout))
        return httpx.Timeout(default)


def auth_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}


def pending_approval(response: httpx.Response) -> PendingApproval | None:
    """The pending-approval body of a `202`, else `None`."""
    if response.status_code != 202:
        return None
    try:
        return PendingApproval.model_validate_json(response.content)
    except ValidationError:
        return None


def raise_for_status(response: httpx.Response) -> None:
    """Raise `ApprovalPending` or the typed error for a response whose body has been read."""
    pending = pending_approval(response)
    if pending is not None:
        raise ApprovalPending(pending.approval_id)
    if response.status_code >= 400:
        raise error_from_response(response)


def decode(call: Call[M], response: httpx.Response) -> M:
    """The success model of a read response, or the error it stands for."""
    raise_for_status(response)
    try:
        return call.model.model_validate_json(response.content)
    except ValidationError as exc:
        raise BerthError(
            f"unexpected response to {call.method} {call.path} "
            f"(HTTP {response.status_code}): {exc.errors()[0]['msg']}",
            status=response.status_code,
        ) from exc


def is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


def network_error(call: Call[Any], base_url: str, exc: httpx.TransportError) -> NetworkError:
    if isinstance(exc, httpx.TimeoutException):
        return NetworkError(f"{call.method} {base_url}{call.path} timed out ({exc!s})".rstrip())
    return NetworkError(f"cannot reach {base_url}: {exc!s}")


class SyncTransport:
    """Sends `Call`s on an `httpx.Client` whose base URL and auth headers are set."""

    def __init__(self, http: httpx.Client, *, base_url: str, timeout: float) -> None:
        self.http = http
        self.base_url = base_url
        self.timeout = timeout

    def _request(self, call: Call[Any]) -> httpx.Request:
        return self.http.build_request(
            call.method,
            call.path,
            json=call.json(),
            content=call.content,
            params=call.params,
            headers=call.headers(),
            timeout=call.timeout(self.timeout),
        )

    def call(self, call: Call[M]) -> M:
        try:
            response = self.http.send(self._request(call))
        except httpx.TransportError as exc:
            raise network_error(call, self.base_url, exc) from exc
        return decode(call, response)

    def call_raw(self, call: Call[Any]) -> httpx.Response:
        """The response of a success whatever its content (a file's bytes); errors raised."""
        try:
            response = self.http.send(self._request(call))
        except httpx.TransportError as exc:
            raise network_error(call, self.base_url, exc) from exc
        raise_for_status(response)
        return response

    @contextmanager
    def stream(self, call: Call[Any]) -> Iterator[httpx.Response]:
        """An open streamed response that is a success (errors are raised on entry)."""
        try:
            response = self.http.send(self._request(call), stream=True)
        except httpx.TransportError as exc:
            raise network_error(call, self.base_url, exc) from exc
        try:
            if response.status_code >= 400 or response.status_code == 202:
                response.read()
                raise_for_status(response)
            yield response
        except httpx.TransportError as exc:
            raise network_error(call, self.base_url, exc) from exc
        finally:
            response.close()


class AsyncTransport:
    """Sends `Call`s on an `httpx.AsyncClient` whose base URL and auth headers are set."""

    def __init__(self, http: httpx.AsyncClient, *, base_url: str, timeout: float) -> None:
        self.http = http
        self.base_url = base_url
        self.timeout = timeout

    def _request(self, call: Call[Any]) -> httpx.Request:
        return self.http.build_request(
            call.method,
            call.path,
            json=call.json(),
            content=call.content,
            params=call.params,
            headers=call.headers(),
            timeout=call.timeout(self.timeout),
        )

    async def call(self, call: Call[M]) -> M:
        try:
            response = await self.http.send(self._request(call))
        except httpx.TransportError as exc:
            raise network_error(call, self.base_url, exc) from exc
        return decode(call, response)

    async def call_raw(self, call: Call[Any]) -> httpx.Response:
        """The response of a success whatever its content (a file's bytes); errors raised."""
        try:
            response = await self.http.send(self._request(call))
        except httpx.TransportError as exc:
            raise network_error(call, self.base_url, exc) from exc
        raise_for_status(response)
        return response

    @asynccontextmanager
    async def stream(self, call: Call[Any]) -> AsyncIterator[httpx.Response]:
        """An open streamed response that is a success (errors are raised on entry)."""
        try:
            response = await self.http.send(self._request(call), stream=True)
        except httpx.TransportError as exc:
            raise network_error(call, self.base_url, exc) from exc
        try:
            if response.status_code >= 400 or response.status_code == 202:
                await response.aread()
                raise_for_status(response)
            yield response
        except httpx.TransportError as exc:
            raise network_error(call, self.base_url, exc) from exc
        finally:
            await response.aclose()
