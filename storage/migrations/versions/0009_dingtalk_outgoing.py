"""the DingTalk bridge keeps what it must send, its plain messages and its command-menu cards

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 21:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "dingtalk_cards",
        sa.Column("kind", sa.String(length=8), server_default="message", nullable=False),
    )
    op.create_table(
        "dingtalk_plain",
        sa.Column("process_query_key", sa.String(length=200), nullable=False),
        sa.Column("dingtalk_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("updated_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dingtalk_id"],
            ["dingtalk_people.dingtalk_id"],
            name=op.f("fk_dingtalk_plain_dingtalk_id_dingtalk_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("process_query_key", name=op.f("pk_dingtalk_plain")),
    )
    op.create_index(op.f("ix_dingtalk_plain_dingtalk_id"), "dingtalk_plain", ["dingtalk_id"], unique=False)
    op.create_table(
        "dingtalk_outgoing",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dingtalk_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("media", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dingtalk_id"],
            ["dingtalk_people.dingtalk_id"],
            name=op.f("fk_dingtalk_outgoing_dingtalk_id_dingtalk_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dingtalk_outgoing")),
    )
    op.create_index(
        op.f("ix_dingtalk_outgoing_dingtalk_id"), "dingtalk_outgoing", ["dingtalk_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_dingtalk_outgoing_dingtalk_id"), table_name="dingtalk_outgoing")
    op.drop_table("dingtalk_outgoing")
    op.drop_index(op.f("ix_dingtalk_plain_dingtalk_id"), table_name="dingtalk_plain")
    op.drop_table("dingtalk_plain")
    with op.batch_alter_table("dingtalk_cards") as batch:
        batch.drop_column("kind")
