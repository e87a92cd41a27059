"""Indexes for keyset pages: a user's workloads and a company's approvals by creation time.

A page of a list is read as `WHERE owner = :o AND (created_at, id) < (:c, :i) ORDER BY
created_at DESC, id DESC LIMIT :n`; these indexes let that read start at the cursor instead
of sorting the owner's every row.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_workloads_user_created", "workloads", ["user_id", "created_at", "id"], unique=False
    )
    op.create_index("ix_approvals_company_created", "approvals", ["company_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_approvals_company_created", table_name="approvals")
    op.drop_index("ix_workloads_user_created", table_name="workloads")
