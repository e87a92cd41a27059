"""The served OpenAPI document, made to tell the truth about berth's responses.

FastAPI adds a 422 with its own `HTTPValidationError` body to every route with parameters;
berth answers input errors with its own body (`ErrorOut`), and the Containers API with 400,
so routes declare their errors themselves (`api/responses.py`) and the default is dropped.
Routes that declare 401 take credentials: the document says how (`Authorization: Bearer`),
unless the route says it takes none (`security: []`, as sign-in does).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_FASTAPI_VALIDATION_REF = "#/components/schemas/HTTPValidationError"
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key (`nv_sk_...`) or a session token.",
}


def install_openapi(app: FastAPI) -> None:
    """Serve `build_openapi(app)` at `/openapi.json` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    secured = False
    for item in document.get("paths", {}).values():
        for operation in item.values():
            responses: dict[str, Any] = operation.get("responses", {})
            if _is_fastapi_default(responses.get("422")):
                del responses["422"]
            if "401" in responses and "security" not in operation:
                operation["security"] = [{"bearer": []}]
                secured = True
    components = document.setdefault("components", {})
    schemas = components.get("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    if secured:
        components.setdefault("securitySchemes", {})["bearer"] = BEARER_SCHEME
    return document


def _is_fastapi_default(response: dict[str, Any] | None) -> bool:
    if response is None:
        return False
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == _FASTAPI_VALIDATION_REF)
