"""The error responses each route declares, so the OpenAPI document names every status a
route can answer, with the error body's model.

The statuses come from the one error table (`api/errors.py`): the Workloads and approvals
routes answer invalid input with 422 and a malformed JSON body with 400; the Containers API
answers both, and its limits, with 400. Routers declare what every one of their routes can
answer (credentials, the acting user); routes add what their own domain call can raise.
"""

from __future__ import annotations

from typing import Any

from berth.schemas.errors import ErrorOut

Responses = dict[int | str, dict[str, Any]]

ERROR_BODY: dict[str, Any] = {
    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}
}
"""The error body as a response's `content`, for answers not made by a route's own
response class (a plain-text route's errors, the middleware's refusals)."""

_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "`Bearer`: the credentials this API takes.",
        "schema": {"type": "string"},
    }
}

_WORKLOADS_MEANING = {
    400: "Malformed JSON body.",
    401: "Missing, unknown, expired or revoked credentials.",
    402: "No credits left for work that would start a task.",
    403: "Not allowed: the AccountKit disables compute, or the call needs a human.",
    404: "No such resource for this caller (other tenants' ids included).",
    409: "The call does not fit the resource's current state.",
    410: "The approval expired.",
    422: "Invalid input or a limit reached: the error names the field and the rule.",
}

_CONTAINERS_MEANING = {
    **_WORKLOADS_MEANING,
    400: "Malformed JSON, invalid input or a limit reached: the error names the field and "
    "the rule.",
}


def _declare(meanings: dict[int, str], statuses: tuple[int, ...]) -> Responses:
    declared: Responses = {}
    for status in statuses:
        response: dict[str, Any] = {"model": ErrorOut, "description": meanings[status]}
        if status == 401:
            response["headers"] = _WWW_AUTHENTICATE
        declared[status] = response
    return declared


def workload_errors(*statuses: int) -> Responses:
    """Error responses of Workloads and approvals routes (input errors are 422)."""
    return _declare(_WORKLOADS_MEANING, statuses)


def container_errors(*statuses: int) -> Responses:
    """Error responses of Containers API routes (input errors and limits are 400)."""
    return _declare(_CONTAINERS_MEANING, statuses)


GATE_ERRORS = (403, 404, 409, 410)
"""A gated call repeated with `Berth-Approval-Id` answers from its approval: rejected (403),
unknown (404), still running (409) or expired (410)."""
