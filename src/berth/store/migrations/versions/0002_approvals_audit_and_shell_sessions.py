"""Approvals, the audit log, shell sessions, and the approval policy of companies.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import berth.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("company_id", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", berth.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_events_company_id"), ["company_id"], unique=False
        )

    op.create_table(
        "approvals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("company_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_digest", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", berth.store.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", berth.store.models.UTCDateTime(), nullable=False),
        sa.Column("decided_at", berth.store.models.UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("executed_at", berth.store.models.UTCDateTime(), nullable=True),
        sa.Column("result_status", sa.Integer(), nullable=True),
        sa.Column("result_body", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approvals_company_id"), ["company_id"], unique=False)

    op.create_table(
        "shell_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workload_id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("cols", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", berth.store.models.UTCDateTime(), nullable=False),
        sa.Column("connect_by", berth.store.models.UTCDateTime(), nullable=False),
        sa.Column("connected_at", berth.store.models.UTCDateTime(), nullable=True),
        sa.Column("ended_at", berth.store.models.UTCDateTime(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["workload_id"],
            ["workloads.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("shell_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_shell_sessions_workload_id"), ["workload_id"], unique=False
        )

    with op.batch_alter_table("companies", schema=None) as batch_op:
        # Existing companies get the default policy: create, exec and shell are gated.
        batch_op.add_column(
            sa.Column(
                "gated_actions",
                sa.JSON(),
                nullable=False,
                server_default='["create", "exec", "shell"]',
            )
        )
        batch_op.add_column(
            sa.Column("approval_ttl_seconds", sa.Integer(), nullable=False, server_default="86400")
        )


def downgrade() -> None:
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.drop_column("approval_ttl_seconds")
        batch_op.drop_column("gated_actions")

    with op.batch_alter_table("shell_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shell_sessions_workload_id"))

    op.drop_table("shell_sessions")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approvals_company_id"))

    op.drop_table("approvals")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_company_id"))

    op.drop_table("audit_events")
