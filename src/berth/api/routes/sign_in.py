"""`POST /v1/auth/sign-in`: a human's e-mail address and password for a session token.

The route takes no Bearer credential (it is how a human gets one). Its failures are the
domain's (`berth.domain.sign_in`): one 401 for a wrong address or password alike, 429 once an
e-mail address has used up its failures; the API's rate limit counts it against the client
address like any request without credentials.
"""

from __future__ import annotations

from fastapi import Request

from berth.api.deps import DomainDep
from berth.api.middleware.strict_json import StrictJsonRoute
from berth.api.responses import workload_errors
from berth.api.routing import PrefixedRouter
from berth.domain.sign_in import SignInFailures, sign_in
from berth.schemas.auth import SignInRequest, SignInResponse
from berth.schemas.errors import ErrorOut

router = PrefixedRouter(prefix="/v1/auth", tags=["auth"], route_class=StrictJsonRoute)


@router.post(
    "/sign-in",
    response_model=SignInResponse,
    summary="Sign in with an e-mail address and password; returns a session token",
    responses={
        **workload_errors(400, 422),
        401: {"model": ErrorOut, "description": "Wrong e-mail address or password."},
        429: {
            "model": ErrorOut,
            "description": "Too many failed sign-ins for this e-mail address, or too many "
            "requests from this client address; code `too_many_attempts` or `rate_limited`. "
            "Retry after the seconds in `Retry-After`.",
            "headers": {
                "Retry-After": {
                    "description": "Whole seconds (at least 1) until a request is accepted.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
        },
    },
    openapi_extra={"security": []},
)
async def sign_in_route(body: SignInRequest, request: Request, domain: DomainDep) -> SignInResponse:
    failures: SignInFailures = request.app.state.sign_in_failures
    signed_in = await sign_in(domain, email=body.email, password=body.password, failures=failures)
    return SignInResponse(
        token=signed_in.token, user_id=signed_in.user_id, expires_at=signed_in.expires_at
    )
