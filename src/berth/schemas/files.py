"""Wire models of the files API (`.../files?path=...` of workloads and dev boxes): a
directory's listing and the answers to a write and a delete. A file's own content travels
as raw bytes (`application/octet-stream`), never inside JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

MAX_PATH_CHARS = 4096
"""The longest `path` (Linux's `PATH_MAX`)."""
MAX_LIST_ENTRIES = 10000
"""A listing holds at most this many entries; `truncated` says when a directory has more."""


class FileEntryOut(BaseModel):
    name: str = Field(description="The entry's name in the directory (not a path).")
    type: Literal["file", "dir", "link", "other"] = Field(
        description="`file`, `dir`, `link` (a symbolic link, not followed) or `other` (a "
        "device, pipe or socket)."
    )
    size: int = Field(description="Bytes (a link: the length of its target's path).")
    mode: str = Field(description="Permission bits in octal, e.g. `0644`.")
    modified_at: datetime = Field(description="Last modification, UTC, whole seconds.")


class FileListOut(BaseModel):
    path: str = Field(description="The directory listed.")
    entries: list[FileEntryOut] = Field(description="Sorted by name; `.` and `..` left out.")
    truncated: bool = Field(
        description=f"True when the directory has more than {MAX_LIST_ENTRIES} entries "
        "(the rest are left out)."
    )


class FileWrittenOut(BaseModel):
    path: str
    size: int = Field(description="Bytes now in the file.")
    created: bool = Field(description="True when no file was at `path` before.")


class FileDeletedOut(BaseModel):
    path: str
    deleted: Literal[True] = True
