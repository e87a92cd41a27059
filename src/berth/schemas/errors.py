"""The error body every route answers with, as the OpenAPI document declares it."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FieldError(BaseModel):
    field: str | None = Field(description="The offending field (dotted path), if any.")
    error: str = Field(description="What is wrong with it, naming the rule.")


class ErrorOut(BaseModel):
    """`{"error": "...", "code": "...", "field": ...}`; input errors add `errors`, one entry
    per offending field."""

    error: str = Field(description="What went wrong, naming the field and the rule.")
    code: str = Field(
        description="A stable code to match on: `invalid_request`, `malformed_json`, "
        "`unauthenticated`, `forbidden`, `primitive_disabled`, `not_found`, `conflict`, "
        "`quota_exceeded`, `payment_required`, `gone`, ..."
    )
    field: str | None = Field(description="The offending input field, when there is one.")
    errors: list[FieldError] | None = Field(
        default=None, description="Input errors: every offending field, not only the first."
    )
