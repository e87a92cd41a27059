"""Runs remember when their task was paused and for how long, so a paused task is billed
for its memory alone and stays paused across a restart of berth.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import berth.store.models

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("paused_at", berth.store.models.UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("paused_seconds", sa.Float(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("paused_seconds")
        batch.drop_column("paused_at")
