"""the DingTalk bridge's people, acknowledged frames and cards

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dingtalk_people",
        sa.Column("dingtalk_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("language_code", sa.String(length=16), nullable=False),
        sa.Column("menu", sa.String(length=64), nullable=True),
        sa.Column("next_message_id", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dingtalk_id", name=op.f("pk_dingtalk_people")),
        sa.UniqueConstraint("user_id", name=op.f("uq_dingtalk_people_user_id")),
    )
    op.create_table(
        "dingtalk_frames",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("received_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dingtalk_frames")),
        sa.UniqueConstraint("message_id", name=op.f("uq_dingtalk_frames_message_id")),
    )

    op.create_table(
        "dingtalk_cards",
        sa.Column("out_track_id", sa.String(length=64), nullable=False),
        sa.Column("dingtalk_id", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("updated_at", storage.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dingtalk_id"],
            ["dingtalk_people.dingtalk_id"],
            name=op.f("fk_dingtalk_cards_dingtalk_id_dingtalk_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("out_track_id", name=op.f("pk_dingtalk_cards")),
    )
    op.create_index(op.f("ix_dingtalk_cards_dingtalk_id"), "dingtalk_cards", ["dingtalk_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dingtalk_cards_dingtalk_id"), table_name="dingtalk_cards")
    op.drop_table("dingtalk_cards")
    op.drop_table("dingtalk_frames")
    op.drop_table("dingtalk_people")
