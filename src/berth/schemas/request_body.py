"""The base of every request body model, shared by both dialects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def _open_to_unknown_fields(schema: dict[str, Any]) -> None:
    schema.pop("additionalProperties", None)


class StrictModel(BaseModel):
    """A request body: values must have the JSON type the document states (`false` is not a
    count, `"3"` is not a number, `0` is not a boolean).

    The model itself refuses unknown fields, so a misspelt keyword in the SDK (which builds
    bodies from these models) fails before anything is sent. The server is more liberal:
    it drops unknown fields before validating and names them in `Warning` headers, unless
    the caller asks for strictness (see `berth.api.middleware.unknown_fields`). The JSON schema says
    what the server accepts, so it leaves `additionalProperties` open.
    """

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra=_open_to_unknown_fields
    )
