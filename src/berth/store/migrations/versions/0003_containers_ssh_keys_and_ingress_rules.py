"""Containers (dev boxes): their columns, SSH keys, the keys selected per container, ingress rules.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import berth.store.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ssh_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=100), nullable=False),
        sa.Column("created_at", berth.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "fingerprint", name="uq_ssh_key_user_fp"),
    )
    with op.batch_alter_table("ssh_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ssh_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "container_ssh_keys",
        sa.Column("workload_id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["ssh_keys.id"],
        ),
        sa.ForeignKeyConstraint(
            ["workload_id"],
            ["workloads.id"],
        ),
        sa.PrimaryKeyConstraint("workload_id", "key_id"),
    )
    op.create_table(
        "ingress_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workload_id", sa.String(length=32), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("target_port", sa.Integer(), nullable=False),
        sa.Column("created_at", berth.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workload_id"],
            ["workloads.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workload_id", "port", name="uq_ingress_port"),
    )
    with op.batch_alter_table("ingress_rules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ingress_rules_workload_id"), ["workload_id"], unique=False
        )

    with op.batch_alter_table("account_kits", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_containers", sa.Integer(), nullable=False, server_default="3")
        )
        batch_op.add_column(
            sa.Column("max_ssh_keys", sa.Integer(), nullable=False, server_default="10")
        )

    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("instance_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("storage_gb", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("ssh_enabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("mount_paths", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("workloads", schema=None) as batch_op:
        batch_op.drop_column("mount_paths")
        batch_op.drop_column("ssh_enabled")
        batch_op.drop_column("storage_gb")
        batch_op.drop_column("instance_type")

    with op.batch_alter_table("account_kits", schema=None) as batch_op:
        batch_op.drop_column("max_ssh_keys")
        batch_op.drop_column("max_containers")

    with op.batch_alter_table("ingress_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingress_rules_workload_id"))

    op.drop_table("ingress_rules")
    op.drop_table("container_ssh_keys")
    with op.batch_alter_table("ssh_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ssh_keys_user_id"))

    op.drop_table("ssh_keys")
