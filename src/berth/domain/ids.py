"""Typed identifiers and their generators.

Workload ids are short lowercase hex so they can serve as DNS labels in public URLs
(`<id>.<public domain>`).
"""

from __future__ import annotations

import secrets
from typing import NewType

UserId = NewType("UserId", str)
CompanyId = NewType("CompanyId", str)
WorkloadId = NewType("WorkloadId", str)
RunId = NewType("RunId", str)
ApiKeyId = NewType("ApiKeyId", str)


def new_user_id() -> UserId:
    return UserId("usr_" + secrets.token_hex(6))


def new_company_id() -> CompanyId:
    return CompanyId("co_" + secrets.token_hex(6))


def new_workload_id() -> WorkloadId:
    return WorkloadId(secrets.token_hex(6))


def new_run_id() -> RunId:
    return RunId("run_" + secrets.token_hex(8))


def new_api_key_id() -> ApiKeyId:
    return ApiKeyId("key_" + secrets.token_hex(6))


def new_approval_id() -> str:
    return "apr_" + secrets.token_hex(8)


def new_shell_session_id() -> str:
    return "ses_" + secrets.token_hex(8)


def is_workload_id(name: str) -> bool:
    """Whether `name` has the form `new_workload_id` gives (12 lowercase hex digits)."""
    return len(name) == 12 and all(c in "0123456789abcdef" for c in name)
