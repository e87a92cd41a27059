"""A list's query parameters read as one model, in one validation, by berth.

FastAPI reads each declared query parameter on its own, introspecting the parameter's type
on every request: for the workload list's five parameters that was about 30% of the
request's cost, paid even when none was sent. A `QueryModel` validates the query string
once against a frozen pydantic model (hashable, so it can key a cached answer) and declares
the same parameters to the OpenAPI document (`openapi`, given to the route's
`openapi_extra`), so callers and the document see no difference: a bad value is the same
422 (400 on the Containers API) naming the parameter, through `RequestValidationError`.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError


class QueryParameters(BaseModel):
    """Base of a query model: frozen (hashable), unknown parameters ignored as FastAPI
    ignores them."""

    model_config = ConfigDict(frozen=True, extra="ignore")


Q = TypeVar("Q", bound=QueryParameters)


class QueryModel(Generic[Q]):
    """How a route reads its query parameters: `parse(request)`; declared with
    `openapi_extra=query.openapi`."""

    def __init__(self, model: type[Q]) -> None:
        self._model = model
        self._defaults = model()
        self.openapi: dict[str, Any] = {"parameters": _parameters(model)}
        """The route's `openapi_extra`: the model's fields as optional query parameters."""

    def parse(self, request: Request) -> Q:
        """The request's query parameters (the last of a repeated one), validated."""
        if not request.scope.get("query_string"):
            return self._defaults
        try:
            return self._model.model_validate(dict(request.query_params))
        except ValidationError as exc:
            errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
            raise RequestValidationError(errors) from None


def _parameters(model: type[QueryParameters]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    parameters = []
    for name, field in schema["properties"].items():
        if name in schema.get("required", ()):
            raise TypeError(f"query parameter {name} must be optional (have a default)")
        field = {key: value for key, value in field.items() if key != "default"}
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": field,
                "description": field.get("description", ""),
            }
        )
    return parameters
