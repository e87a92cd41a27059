"""The one table mapping domain errors to HTTP, and clear messages for malformed requests.

Every error body is JSON: `{"error": "<what went wrong, naming the field>", "code": "...",
"field": "<field or null>"}`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from berth.api.deps import bearer_credential
from berth.domain import errors
from berth.domain.auth import authenticate
from berth.runtime.base import RuntimeDriverError, RuntimeUnavailable

log = logging.getLogger("berth.api")

STATUS_BY_ERROR: dict[type[errors.DomainError], int] = {
    errors.Invalid: 422,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.QuotaExceeded: 422,
    errors.PaymentRequired: 402,
    errors.PrimitiveDisabled: 403,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.Gone: 410,
    errors.TooManyAttempts: 429,
    errors.TooLarge: 413,
}


def error_body(
    message: str, *, code: str, field: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {"error": message, "code": code, "field": field, **extra}


CONTAINERS_PREFIX = "/compute/"
"""The Containers API answers every input or quota problem with 400, as its document does."""
CONTAINERS_STATUS_BY_ERROR: dict[type[errors.DomainError], int] = {
    **STATUS_BY_ERROR,
    errors.Invalid: 400,
    errors.QuotaExceeded: 400,
}


def _status_of(request: Request, exc: errors.DomainError) -> int:
    table = (
        CONTAINERS_STATUS_BY_ERROR
        if request.url.path.startswith(CONTAINERS_PREFIX)
        else STATUS_BY_ERROR
    )
    return next((code for kind, code in table.items() if isinstance(exc, kind)), 400)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DomainError)
    status = _status_of(request, exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    extra = {}
    if isinstance(exc, errors.TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after)}
        extra = {"retry_after": exc.retry_after}
    if isinstance(exc, errors.TooLarge):
        extra = {"limit_bytes": exc.limit_bytes}
    return JSONResponse(
        error_body(exc.message, code=exc.code, field=exc.field, **extra),
        status_code=status,
        headers=headers,
    )


_PYDANTIC_TAG = re.compile(
    r"^(\[key\]|(str|int|float|bool|list|dict|none|constrained-[a-z]+|function-[a-z]+)(\[.*\])?)$"
)
"""Parts of an error's location that name a union member or a dict's key, not a field:
`command.str`, `command.list[constrained-str].0` and `env.1A.[key]` are `command`,
`command.0` and `env.1A` to a caller."""


_LOCATIONS = ("body", "query", "path", "header")


def describe_validation_error(error: dict[str, Any]) -> tuple[str, str | None, bool]:
    """(message, field, is_malformed_json) for one pydantic error of a request."""
    where = list(error.get("loc", ()))
    if where and where[0] in _LOCATIONS:
        where = where[1:]  # Only the first part is where it was: a query field may be `path`.
    loc = [str(part) for part in where if not _PYDANTIC_TAG.match(str(part))]
    field = ".".join(loc) or None
    kind = error.get("type", "")
    if kind == "json_invalid":
        detail = error.get("ctx", {}).get("error", "invalid JSON")
        return f"malformed JSON body: {detail}", None, True
    if kind == "extra_forbidden":
        return f"{field}: unknown field", field, False
    if kind == "missing":
        return (f"{field}: required" if field else "a JSON request body is required"), field, False
    if kind == "model_attributes_type" or (kind.endswith("_type") and not loc):
        return "the request body must be a JSON object", None, False
    message = str(error.get("msg", "invalid value"))
    return (f"{field}: {message}" if field else message), field, False


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors_ = sorted(exc.errors(), key=lambda err: err.get("type") != "extra_forbidden")
    described = [describe_validation_error(dict(err)) for err in errors_]
    message, field, malformed = described[0]
    if malformed:
        # The body is parsed before the credentials are checked; a caller without valid
        # credentials learns that first.
        try:
            await authenticate(request.app.state.domain, bearer_credential(request))
        except errors.Unauthenticated as denied:
            return await _domain_error(request, denied)
    details = [{"field": f, "error": m} for m, f, _ in described]
    return JSONResponse(
        error_body(
            message,
            code="malformed_json" if malformed else "invalid_request",
            field=field,
            errors=details,
        ),
        status_code=400 if malformed or request.url.path.startswith(CONTAINERS_PREFIX) else 422,
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {
        400: "malformed_json",  # FastAPI's "There was an error parsing the body"
        404: "not_found",
        405: "method_not_allowed",
    }.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(str(exc.detail), code=code), status_code=exc.status_code, headers=exc.headers
    )


ENGINE_RETRY_AFTER_SECONDS = 5


async def _engine_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """A call that needs the engine while it cannot be reached: 503 with the driver's
    message (where the engine was looked for and what to do), never a 500. Calls that only
    touch desired state never get here: they succeed and converge once the engine is back."""
    log.warning("a request needed the container engine: %s", exc)
    return JSONResponse(
        error_body(str(exc), code="engine_unavailable"),
        status_code=503,
        headers={"Retry-After": str(ENGINE_RETRY_AFTER_SECONDS)},
    )


async def _engine_error(_request: Request, exc: Exception) -> JSONResponse:
    """The engine answered a call with a failure berth has no meaning for (an exec stream
    the cluster cut, say): 502 with the driver's words, not a 500 that says nothing; the
    call can be repeated. What berth understands (a missing task, an unknown command, an
    engine away) is translated before it gets here."""
    log.warning("the container engine failed a request", exc_info=exc)
    return JSONResponse(
        error_body(f"the container engine failed this call: {exc}; try again", code="engine_error"),
        status_code=502,
    )


async def _store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """The database could not serve the call now (restarting, a lost connection, a
    transaction given up to break a deadlock): 503 with `Retry-After`, never a 500."""
    assert isinstance(exc, errors.StoreUnavailable)
    log.warning("a request found the database unavailable: %s", exc.__cause__ or exc)
    return JSONResponse(
        error_body(exc.message, code="database_unavailable"),
        status_code=503,
        headers={"Retry-After": str(exc.retry_after)},
    )


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return JSONResponse(
        error_body("internal error; the server log has the details", code="internal"),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_exception_handler(errors.DomainError, _domain_error)
    app.add_exception_handler(RuntimeDriverError, _engine_error)
    app.add_exception_handler(RuntimeUnavailable, _engine_unavailable)
    app.add_exception_handler(errors.StoreUnavailable, _store_unavailable)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
