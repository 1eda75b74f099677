"""service entries keep the path of their photo's local copy

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_entries") as batch:
        batch.add_column(sa.Column("evidence_path", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("service_entries") as batch:
        batch.drop_column("evidence_path")
