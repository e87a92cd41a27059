"""Shell sessions name the replica serving them, so a replica starting up or sweeping ends
only the sessions of replicas that are gone.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shell_sessions") as batch:
        batch.add_column(sa.Column("served_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shell_sessions") as batch:
        batch.drop_column("served_by")
