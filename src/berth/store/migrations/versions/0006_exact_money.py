"""Exact money: balances and run costs in integer micro-credits, and a ledger of every change.

Each existing balance becomes a `grant` entry of the ledger, so the balance equals the
ledger's sum from the start. Amounts are rounded to the nearest micro-credit.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MICRO = 1_000_000


def upgrade() -> None:
    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("amount_micro", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credit_ledger_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_credit_ledger_run_id"), ["run_id"], unique=False)
    for table in ("users", "runs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("credits_micro", sa.BigInteger(), nullable=False, server_default="0")
            )
        op.execute(f"UPDATE {table} SET credits_micro = CAST(ROUND(credits * {MICRO}) AS BIGINT)")
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("credits")
            batch_op.alter_column("credits_micro", server_default=None)
    op.get_bind().execute(
        sa.text(
            "INSERT INTO credit_ledger (user_id, amount_micro, kind, at) "
            "SELECT id, credits_micro, 'grant', :now FROM users WHERE credits_micro != 0"
        ),
        {"now": datetime.now(UTC).replace(tzinfo=None)},
    )


def downgrade() -> None:
    for table in ("users", "runs"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("credits", sa.Float(), nullable=False, server_default="0")
            )
        op.execute(f"UPDATE {table} SET credits = credits_micro / {float(MICRO)}")
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("credits_micro")
            batch_op.alter_column("credits", server_default=None)
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credit_ledger_run_id"))
        batch_op.drop_index(batch_op.f("ix_credit_ledger_user_id"))
    op.drop_table("credit_ledger")
