"""`install_dashboard(app)`: the dashboard's routes, static files and error pages.

The routes are included after the API's, none in the OpenAPI document; their paths (`/`,
`/sign-in`, `/invite`, `/approvals`, `/workloads`, `/boxes`, `/keys`, `/usage`, `/policy`,
`/operator`, `/events`, `/static`) share no prefix with the API's (`/v1`, `/compute`, `/healthz`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from berth.dashboard import (
    approval_pages,
    auth_pages,
    box_pages,
    invite_pages,
    live,
    operator_pages,
    policy_pages,
    usage_pages,
    workload_pages,
)
from berth.dashboard.render import ENV, STATIC
from berth.dashboard.session import CsrfRefused, SignInRequired, sign_in_redirect
from berth.domain.errors import DomainError


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    if request.method == "GET" and _wants_html(request):
        return sign_in_redirect(exc.next_path)
    return JSONResponse({"error": "sign in first", "code": "unauthenticated"}, status_code=401)


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    html = ENV.get_template("refused.html").render(
        viewer=None,
        pending=0,
        path=request.url.path,
        message="This form is out of date or did not come from berth's dashboard. "
        "Reload the page and try again.",
    )
    return HTMLResponse(html, status_code=403)


API_PREFIXES = ("/v1/", "/compute/", "/compute", "/healthz", "/readyz")
STATUS_BY_CODE = {"not_found": 404, "forbidden": 403, "conflict": 409, "gone": 410}


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _error_page(api_handler: Handler) -> Handler:
    """A domain refusal on a dashboard page is an HTML page; on the API, the API's answer."""

    async def handle(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(API_PREFIXES) or not isinstance(exc, DomainError):
            return await api_handler(request, exc)
        html = ENV.get_template("refused.html").render(
            viewer=None, pending=0, path=request.url.path, message=exc.message
        )
        return HTMLResponse(html, status_code=STATUS_BY_CODE.get(exc.code, 400))

    return handle


def install_dashboard(app: FastAPI) -> None:
    """Add the dashboard to `app`; call after the API's routers and error handlers."""
    api_handler = cast(Handler, app.exception_handlers[DomainError])
    app.add_exception_handler(DomainError, _error_page(api_handler))
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    for module in (
        auth_pages,
        invite_pages,
        approval_pages,
        live,
        workload_pages,
        box_pages,
        usage_pages,
        policy_pages,
        operator_pages,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="dashboard-static")
