"""Signing in: a human's e-mail address and password for a session token."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from berth.schemas.request_body import StrictModel


class SignInRequest(StrictModel):
    email: str = Field(max_length=320, description="The e-mail address the user was created with.")
    password: str = Field(max_length=1024, description="The user's password.")


class SignInResponse(BaseModel):
    token: str = Field(
        description="A session token: send it as `Authorization: Bearer <token>` until "
        "`expires_at`."
    )
    user_id: str = Field(description="The signed-in user.")
    expires_at: datetime = Field(description="When the token stops being accepted (UTC).")
