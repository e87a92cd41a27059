"""ORM models: berth's desired state and history.

The store holds what *should* be (workloads, their replica counts and generations) and what
*happened* (runs with exit codes, usage and credits). The engine's state is never stored as
truth: the reconciler reads it and converges.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC (SQLite keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


MICRO_CREDITS_PER_CREDIT = 1_000_000
"""Money is kept in integers of a millionth of a credit: sums are exact, whatever the order
of the additions, and the ledger's sum is the balance to the last unit."""


def credits_of(micro_credits: int) -> float:
    """The credits (a float, as the API shows them) of an amount of micro-credits."""
    return micro_credits / MICRO_CREDITS_PER_CREDIT


NEVER_REUSED_IDS = {"sqlite_autoincrement": True}
"""Integer ids come from a counter that only grows: SQLite's AUTOINCREMENT (without it SQLite
hands the largest id of a deleted row to the next row), a sequence on PostgreSQL."""


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


DEFAULT_GATED_ACTIONS = ["create", "exec", "shell"]


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    default_user_id: Mapped[str | None] = mapped_column(String(32))
    gated_actions: Mapped[list[Any]] = mapped_column(
        JSON, default=lambda: list(DEFAULT_GATED_ACTIONS)
    )
    """Actions an API-key caller needs a human's approval for."""
    approval_ttl_seconds: Mapped[int] = mapped_column(Integer, default=86400)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    credits_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    """The balance in micro-credits; always the sum of the user's `CreditEntry` rows (only
    `berth.domain.ledger` changes it)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A human operator: the dashboard's operator pages (users, AccountKits, credit grants)
    are theirs, for the users of their company."""
    live_workloads: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The user's workloads not deleted, of every type (dev boxes too): kept by create and
    delete under the user's lock, so a quota check reads it instead of counting rows."""
    live_containers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Of those, the dev boxes."""

    @property
    def credits(self) -> float:
        return credits_of(self.credits_micro)


class CreditEntry(Base):
    """One change of a user's balance: a grant or adjustment by the operator, or the usage
    (a charge, or a refund when settling) of one run. Written in the transaction that makes
    the change it records."""

    __tablename__ = "credit_ledger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    amount_micro: Mapped[int] = mapped_column(BigInteger)
    """Positive adds to the balance, negative takes from it."""
    kind: Mapped[str] = mapped_column(String(16))
    """`grant`, `adjustment` (the operator set the balance) or `usage`."""
    run_id: Mapped[str | None] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = NEVER_REUSED_IDS


class AccountKit(Base):
    """The primitives enabled for a user and their per-user limits."""

    __tablename__ = "account_kits"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    compute_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    max_cpu: Mapped[float] = mapped_column(Float)
    max_memory_mb: Mapped[int] = mapped_column(Integer)
    max_replicas: Mapped[int] = mapped_column(Integer)
    max_workloads: Mapped[int] = mapped_column(Integer)
    max_containers: Mapped[int] = mapped_column(Integer, default=3)
    max_ssh_keys: Mapped[int] = mapped_column(Integer, default=10)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(200), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class Workload(Base):
    """A workload's desired state.

    `generation` changes whenever what a task runs with changes (secrets today); tasks of an
    older generation are rolled onto the new one. `desired_state` is `running` or `stopped`.
    `deleted_at` marks a workload whose tasks are being torn down; it is invisible to the API
    and its row goes once nothing of it runs.
    """

    __tablename__ = "workloads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    type: Mapped[str] = mapped_column(String(16))
    image: Mapped[str] = mapped_column(String(512))
    command: Mapped[list[Any] | None] = mapped_column(JSON)
    command_text: Mapped[str | None] = mapped_column(Text)
    env: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    port: Mapped[int | None] = mapped_column(Integer)
    cpu: Mapped[float] = mapped_column(Float)
    memory_mb: Mapped[int] = mapped_column(Integer)
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    schedule_expr: Mapped[str | None] = mapped_column(String(200))
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    desired_state: Mapped[str] = mapped_column(String(16), default="running")
    generation: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    status_reason: Mapped[str | None] = mapped_column(Text)
    next_run_at: Mapped[datetime | None] = mapped_column()
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    backoff_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    scale_to_zero: Mapped[bool] = mapped_column(Boolean, default=False)
    """Services: stop every task after `idle_timeout_seconds` without requests; the gateway
    wakes the service on the next request."""
    idle_timeout_seconds: Mapped[int] = mapped_column(Integer, default=300)
    instance_type: Mapped[str | None] = mapped_column(String(32))
    """Containers: the instance type (its CPU count is in `cpu`)."""
    storage_gb: Mapped[int | None] = mapped_column(Integer)
    ssh_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    mount_paths: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Containers: absolute paths kept on persistent volumes across stops and restarts."""
    deleted_at: Mapped[datetime | None] = mapped_column()
    """Names are unique among a user's live workloads; checked in the creating transaction,
    which holds the write lock (a unique index cannot express "among rows not deleted")."""

    __table_args__ = (
        Index("ix_workloads_user_created", "user_id", "created_at", "id"),
        # A create's quota count and name check (live rows: `deleted_at IS NULL`).
        Index("ix_workloads_user_live_name", "user_id", "deleted_at", "name"),
        # The scheduler's reads: the running schedules due, and the earliest next fire
        # (paused ones keep their last `next_run_at` and are outside this range).
        Index("ix_workloads_next_run", "type", "desired_state", "next_run_at"),
    )


class SshKey(Base):
    __tablename__ = "ssh_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_id", "fingerprint", name="uq_ssh_key_user_fp"),
        NEVER_REUSED_IDS,
    )


class ContainerSshKey(Base):
    """The keys selected for a container: the only keys its SSH access accepts."""

    __tablename__ = "container_ssh_keys"

    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"), primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("ssh_keys.id"), primary_key=True)


class IngressRule(Base):
    __tablename__ = "ingress_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"), index=True)
    port: Mapped[int] = mapped_column(Integer)
    target_port: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("workload_id", "port", name="uq_ingress_port"),
        NEVER_REUSED_IDS,
    )


class Secret(Base):
    __tablename__ = "secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"), index=True)
    key: Mapped[str] = mapped_column(String(128))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("workload_id", "key", name="uq_secret_key"),
        NEVER_REUSED_IDS,
    )


class Run(Base):
    """One task's life: a job or scheduled run, or one incarnation of a service replica.

    Status moves `pending -> running -> succeeded | failed | stopped | timed_out`
    (a `standby` run waits in `pending` with its task created until a wake promotes it);
    `stop_requested` (with `stop_reason`) asks the reconciler to end it. A run's result is
    written before its task is removed, and its logs are archived first.
    """

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    trigger: Mapped[str] = mapped_column(String(16))
    slot: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    status_reason: Mapped[str | None] = mapped_column(Text)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(80))
    cpu: Mapped[float] = mapped_column(Float)
    memory_mb: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    metered_until: Mapped[datetime | None] = mapped_column()
    vcpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    gb_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    credits_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    """What the run's usage cost so far, in micro-credits (`billing` keeps it equal to the
    sum of its `usage` ledger entries)."""
    logs_archived: Mapped[bool] = mapped_column(Boolean, default=False)
    standby: Mapped[bool] = mapped_column(Boolean, default=False)
    """A run kept ready for a scaled-to-zero service: its task is created, not started, so
    a wake only starts it. Hidden from readers until promoted (`standby` false)."""
    paused_at: Mapped[datetime | None] = mapped_column()
    """When its running task was frozen (the engine's pause), while it is; None otherwise.
    A paused run stays `running`: its processes and memory are kept, only frozen."""
    paused_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    """How long the task was frozen in pauses that ended (the current one is not in it):
    those seconds accrue memory but no vCPU time (`domain.billing`)."""

    @property
    def credits(self) -> float:
        return credits_of(self.credits_micro)

    __table_args__ = (
        Index("ix_runs_workload_created", "workload_id", "created_at"),
        Index("ix_runs_status", "status"),
    )


class Approval(Base):
    """A gated request waiting for (or decided by) a human.

    The request is kept exactly (method, path, body and its digest) with the principal that
    made it; on approval it is replayed once as that principal and its response kept here.
    """

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(1000))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    executed_at: Mapped[datetime | None] = mapped_column()
    result_status: Mapped[int | None] = mapped_column(Integer)
    result_body: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_approvals_company_created", "company_id", "created_at", "id"),)


class AuditEvent(Base):
    """Who did what, when: every approval request and decision."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    company_id: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = NEVER_REUSED_IDS


class ShellSession(Base):
    """A brokered shell: a single-use token (stored hashed) for one task of one workload."""

    __tablename__ = "shell_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workload_id: Mapped[str] = mapped_column(ForeignKey("workloads.id"), index=True)
    run_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    cols: Mapped[int] = mapped_column(Integer, default=80)
    rows: Mapped[int] = mapped_column(Integer, default=24)
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    connect_by: Mapped[datetime] = mapped_column()
    connected_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    exit_code: Mapped[int | None] = mapped_column(Integer)
    served_by: Mapped[str | None] = mapped_column(String(128))
    """The replica holding the session's WebSocket while it is active
    (`berth.domain.replicas`)."""


ACTIVE_RUN_STATUSES = ("pending", "running")
FINISHED_RUN_STATUSES = ("succeeded", "failed", "stopped", "timed_out")


class Lease(Base):
    """Which replica runs a controller, until when (`berth.domain.leases`)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column()
