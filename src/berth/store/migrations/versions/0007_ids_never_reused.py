"""Integer ids are never reused: SQLite's tables with integer ids get AUTOINCREMENT.

Without it SQLite gives a new row the largest id in the table plus one, so deleting the
newest SSH key handed its id to the next key. PostgreSQL's ids come from sequences, which
never go back, so only SQLite's tables are rebuilt (with their rows and ids).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("ssh_keys", "ingress_rules", "secrets", "audit_events")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
