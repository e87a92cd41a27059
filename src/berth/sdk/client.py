"""`Client` (sync) and `AsyncClient` (async): one httpx connection pool and the sub-clients.

```python
from berth.sdk import Client

with Client("http://127.0.0.1:7070", "nv_sk_...") as client:
    job = client.compute.create(name="hello", type="job", image="busybox", command="echo hi")
    done = client.compute.wait_for(job.id, predicate=lambda w: w.status == "succeeded")
    print(client.compute.logs(job.id).events[0].message)
```

Pass `user_id=` to act through the per-user routes (`/v1/users/{user_id}/compute`: an
operator key for any user of its company, a user's own credential for that user only).
`from_env()` resolves the URL and credential as `berth.sdk.config` says (argument >
environment > config file).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import httpx

from berth.schemas.usage import UsageOut
from berth.sdk._transport import AsyncTransport, Call, SyncTransport, auth_headers
from berth.sdk.approvals import ApprovalsAPI, AsyncApprovalsAPI
from berth.sdk.compute import ComputeAPI
from berth.sdk.compute_async import AsyncComputeAPI
from berth.sdk.config import resolve_credentials
from berth.sdk.containers_async import AsyncContainersAPI

USAGE = "/v1/usage"
DEFAULT_TIMEOUT = 30.0
"""Seconds for connecting and for each read (exec waits longer: its own timeout + 15 s)."""


class Client:
    """The synchronous client. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        user_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=auth_headers(api_key),
            timeout=timeout,
            transport=transport,
        )
        core = SyncTransport(self._http, base_url=self.base_url, timeout=timeout)
        self._core = core
        self.compute = ComputeAPI(core, user_id)
        self.approvals = ApprovalsAPI(core)

    def usage(self, days: int = 30) -> UsageOut:
        """The balance, and credits per day and per workload over the last `days` days."""
        return self._core.call(Call("GET", USAGE, UsageOut, params={"days": days}))

    @classmethod
    def from_env(
        cls,
        *,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        user_id: str | None = None,
        env: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> Client:
        """A client for the URL and credential found by precedence argument >
        `BERTH_URL`/`BERTH_API_KEY` > config file. Raises `ConfigError` if one is missing."""
        found = resolve_credentials(url=url, api_key=api_key, env=env)
        return cls(found.url, found.api_key, timeout=timeout, user_id=user_id, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """The asynchronous client. Use as an async context manager, or `await aclose()`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        user_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=auth_headers(api_key),
            timeout=timeout,
            transport=transport,
        )
        core = AsyncTransport(self._http, base_url=self.base_url, timeout=timeout)
        self._core = core
        self.compute = AsyncComputeAPI(core, user_id)
        self.approvals = AsyncApprovalsAPI(core)
        self.containers = AsyncContainersAPI(core)

    async def usage(self, days: int = 30) -> UsageOut:
        """As `Client.usage`."""
        return await self._core.call(Call("GET", USAGE, UsageOut, params={"days": days}))

    @classmethod
    def from_env(
        cls,
        *,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        user_id: str | None = None,
        env: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> AsyncClient:
        """As `Client.from_env`."""
        found = resolve_credentials(url=url, api_key=api_key, env=env)
        return cls(found.url, found.api_key, timeout=timeout, user_id=user_id, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
