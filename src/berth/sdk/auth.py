"""Signing in with an e-mail address and password, for a human's session token.

```python
from berth.sdk import Client, sign_in

signed_in = sign_in("http://127.0.0.1:7070", email="ada@example.com", password=password)
with Client("http://127.0.0.1:7070", signed_in.token) as client:
    ...
```

A wrong address or password raises `Unauthorized` (the server does not say which); too many
failures for one address raise `BerthError` with status 429 and code `too_many_attempts`.
"""

from __future__ import annotations

import httpx

from berth.schemas.auth import SignInRequest, SignInResponse
from berth.sdk._transport import USER_AGENT, Call, SyncTransport
from berth.sdk.client import DEFAULT_TIMEOUT

SIGN_IN_PATH = "/v1/auth/sign-in"


def _call(email: str, password: str) -> Call[SignInResponse]:
    body = SignInRequest(email=email, password=password).model_dump()
    return Call("POST", SIGN_IN_PATH, SignInResponse, body=body)


def sign_in(
    base_url: str,
    *,
    email: str,
    password: str,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> SignInResponse:
    """A session token for this e-mail address and password (no credential needed)."""
    base_url = base_url.rstrip("/")
    headers = {"User-Agent": USER_AGENT}
    with httpx.Client(
        base_url=base_url, headers=headers, timeout=timeout, transport=transport
    ) as http:
        core = SyncTransport(http, base_url=base_url, timeout=timeout)
        return core.call(_call(email, password))
