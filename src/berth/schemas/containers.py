"""Wire models of the Containers API (`/compute/...`): dev-box containers, SSH keys,
SSH access, ingress rules and mount paths. Shapes follow the Containers API document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from berth.schemas.limits import PRINTABLE
from berth.schemas.paging import NextCursor
from berth.schemas.request_body import StrictModel

MAX_SSH_KEY_IDS = 100
MAX_INSTANCE_TYPE_CHARS = 64

MountPath = Annotated[str, StringConstraints(min_length=1, max_length=255)]
WholeSeconds = Annotated[datetime, AfterValidator(lambda value: value.replace(microsecond=0))]
"""A time as the Containers API document writes it: `2026-01-15T10:30:00Z`."""
MAX_KEY_ID = 2**31 - 1
"""The largest SSH key id: the ids column is a 32-bit INTEGER on PostgreSQL, so no key has a
larger id on either store, and a larger one is refused as input rather than reaching it."""
KeyId = Annotated[int, Field(ge=1, le=MAX_KEY_ID)]


class ContainerCreate(StrictModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=PRINTABLE)] = Field(
        description="Display name: 1-63 characters, no control characters."
    )
    instance_type: str = Field(
        default="nano",
        max_length=MAX_INSTANCE_TYPE_CHARS,
        description="See the instance type catalogue.",
    )
    memory_mb: int = Field(default=512, ge=64, le=65536)
    storage_gb: int = Field(default=5, ge=1, le=1024)
    ssh_key_ids: list[KeyId] = Field(
        max_length=MAX_SSH_KEY_IDS, description="At least one of your SSH keys."
    )
    ssh_enabled: bool = False
    mount_paths: list[MountPath] = Field(default_factory=lambda: ["/root"], max_length=20)
    image: str | None = Field(
        default=None,
        max_length=512,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$",
        description="Overrides the operator's default dev-box image.",
    )


class ContainerOut(BaseModel):
    id: str
    name: str
    status: str = Field(
        description="`pending`, `initializing`, `running`, `paused`, `stopped` or `failed`."
    )
    status_reason: str | None = None
    hostname: str
    ssh_command: str
    memory_mb: int
    memory_used_mb: int | None = Field(description="Measured while running; null otherwise.")
    storage_gb: int
    storage_used_gb: float | None = Field(description="Measured while running; null otherwise.")
    instance_type: str
    created_at: WholeSeconds
    ssh_enabled: bool
    https_enabled: bool


class ContainerList(BaseModel):
    """The documented list; `next_cursor` is added only for a caller that pages."""

    containers: list[ContainerOut]
    next_cursor: NextCursor = Field(None, json_schema_extra={"x-present": "paging only"})


class StatusOk(BaseModel):
    status: str = "ok"


class SshKeyCreate(StrictModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=PRINTABLE)]
    public_key: Annotated[str, StringConstraints(min_length=1, max_length=16384)]


class SshKeyOut(BaseModel):
    id: int
    name: str
    public_key: str
    fingerprint: str
    created_at: WholeSeconds


class SshKeyList(BaseModel):
    """The documented list; `next_cursor` is added only for a caller that pages."""

    ssh_keys: list[SshKeyOut]
    next_cursor: NextCursor = Field(None, json_schema_extra={"x-present": "paging only"})


class SshAccess(StrictModel):
    ssh_enabled: bool


class IngressRuleCreate(StrictModel):
    port: int = Field(ge=-(2**31), le=2**31, description="External port: 80, 443 or 8000-8999.")
    target_port: int | None = Field(
        default=None, ge=-(2**31), le=2**31, description="Container port; default `port`."
    )


class IngressRuleOut(BaseModel):
    id: int
    port: int
    target_port: int
    created_at: int = Field(description="Unix seconds.")


class IngressRuleList(BaseModel):
    rules: list[IngressRuleOut]


class MountPaths(StrictModel):
    mount_paths: list[MountPath] = Field(max_length=20)


class MountPathsUpdated(BaseModel):
    mount_paths: list[str]
    restarted: bool
