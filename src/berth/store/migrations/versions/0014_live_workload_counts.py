"""Live workload counts on the user: a create's quota check reads them instead of counting.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("live_workloads", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("live_containers", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE users SET live_workloads = (SELECT count(*) FROM workloads "
        "WHERE workloads.user_id = users.id AND workloads.deleted_at IS NULL), "
        "live_containers = (SELECT count(*) FROM workloads WHERE workloads.user_id = users.id "
        "AND workloads.deleted_at IS NULL AND workloads.type = 'container')"
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("live_containers")
        batch.drop_column("live_workloads")
