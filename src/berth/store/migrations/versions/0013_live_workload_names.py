"""An index for the checks of every create: a user's live workloads, and a name among them.

A create counts the user's workloads not deleted (the `max_workloads` quota) and looks for
a live workload of the same name. With only `user_id` indexed, both read every row of the
user's, twice (validation, then the create itself): about 15 ms a create at 10,000.
With `(user_id, deleted_at, name)` the count reads this index alone and the name is one
lookup.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_workloads_user_live_name", "workloads", ["user_id", "deleted_at", "name"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_workloads_user_live_name", table_name="workloads")
