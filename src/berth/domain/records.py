"""The records the domain hands to the layers above it.

api, control and gateway receive these objects from domain functions and read their fields;
they never open a session, query or write them (import contracts forbid `berth.store` there).
Naming the types here keeps that one-way: an upper layer can annotate a presenter's argument
without reaching into the store.
"""

from berth.store.models import (
    ACTIVE_RUN_STATUSES,
    FINISHED_RUN_STATUSES,
    AccountKit,
    ApiKey,
    Approval,
    AuditEvent,
    Company,
    IngressRule,
    Run,
    Secret,
    ShellSession,
    SshKey,
    User,
    Workload,
)

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "FINISHED_RUN_STATUSES",
    "AccountKit",
    "ApiKey",
    "Approval",
    "AuditEvent",
    "Company",
    "IngressRule",
    "Run",
    "Secret",
    "ShellSession",
    "SshKey",
    "User",
    "Workload",
]
