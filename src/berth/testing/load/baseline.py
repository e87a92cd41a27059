"""The load benchmark's baseline: a bare ASGI app, and the client that drives it.

`bare_app` is the least an ASGI server can be asked to do: read the request body, answer a
small JSON body. Served by `berth.server.uvicorn.run_asgi_server` (uvicorn with berth's options),
it measures the server stack and the client harness alone; berth's requests/s are reported
as a ratio of it. `BareClient` sends GETs and small JSON POSTs in the same proportion as
the berth mix, with the same credential header, through the same `RecordingClient`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from berth.testing.load.mix import RecordingClient
from berth.testing.load.record import LoadRecord

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
BODY = json.dumps({"ok": True, "items": []}).encode()


async def bare_app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:  # drain the body, as a real handler would
        more = (await receive()).get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


class BareClient(RecordingClient):
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        record: LoadRecord,
        write_share: float,
        seed: int,
    ) -> None:
        super().__init__(http=http, record=record, credential="nv_sk_baseline")
        self.write_share = write_share
        self.rng = random.Random(seed)

    async def step(self) -> None:
        if self.rng.random() < self.write_share:
            body = {"key": "TOKEN_A", "value": f"{self.rng.getrandbits(48):x}"}
            await self.call("bare POST", "POST", "/v1/compute/bare/secrets", json=body)
        else:
            await self.call("bare GET", "GET", "/v1/compute/bare")
