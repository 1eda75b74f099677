"""the gate's shared limits in the database (PostgreSQL without Redis)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One admission in one round trip: under a per-bot advisory lock (held to the end of the
# statement's transaction, so two processes never both take the last place), the pause, a
# waiting reply and every window are read and, if all allow, the places taken. A place is
# counted from its send's answer (the caller sets `t` then); until then it holds its place for
# at most `p_open` seconds (a process that died with sends on the wire). Returns
# {seconds to wait, why, ids of the places taken...}: why 0 taken, 1 paused by a 429, 2 a reply
# goes first, 3 the bot's window is full, 4 the chat's. Each query in a VOLATILE function sees
# what others committed before it, so what the lock's previous holder inserted is counted.
GATE_TAKE = """
CREATE OR REPLACE FUNCTION gate_take(
    p_scope text, p_names text[], p_limits integer[], p_seconds double precision[],
    p_bulk boolean, p_open double precision
) RETURNS double precision[] LANGUAGE plpgsql AS $$
DECLARE
    v_now double precision;
    v_wait double precision;
    v_why double precision := 0;
    v_nth double precision;
    v_ids double precision[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('branchbot-gate:' || p_scope));
    v_now := extract(epoch FROM clock_timestamp());
    SELECT max(t) - v_now INTO v_wait FROM gate_marks WHERE scope = p_scope AND name = 'pause';
    IF v_wait > 0 THEN
        RETURN ARRAY[v_wait, 1];
    END IF;
    IF p_bulk AND EXISTS (
        SELECT 1 FROM gate_marks WHERE scope = p_scope AND name = 'reply' AND t > v_now
    ) THEN
        RETURN ARRAY[0.05, 2];
    END IF;
    v_wait := 0;
    FOR i IN 1 .. coalesce(array_length(p_names, 1), 0) LOOP
        SELECT t INTO v_nth FROM gate_marks
         WHERE scope = p_scope AND name = p_names[i] AND t > v_now - p_seconds[i]
         ORDER BY t DESC OFFSET p_limits[i] - 1 LIMIT 1;
        IF FOUND AND v_nth + p_seconds[i] - v_now > v_wait THEN
            v_wait := v_nth + p_seconds[i] - v_now;
            v_why := CASE WHEN p_names[i] = 'all' THEN 3 ELSE 4 END;
        END IF;
    END LOOP;
    IF v_wait > 0 THEN
        RETURN ARRAY[v_wait, v_why];
    END IF;
    WITH taken AS (
        INSERT INTO gate_marks (scope, name, t)
        SELECT p_scope, n, v_now + p_open FROM unnest(p_names) AS n
        RETURNING id
    )
    SELECT array_agg(id::double precision) INTO v_ids FROM taken;
    RETURN ARRAY[0, 0]::double precision[] || v_ids;
END
$$;
"""
GATE_TAKE_ARGS = "text, text[], integer[], double precision[], boolean, double precision"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "gate_marks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_marks")),
        # Rows that matter for a minute: no write-ahead log on PostgreSQL.
        prefixes=["UNLOGGED"] if postgres else [],
    )
    op.create_index("ix_gate_marks_scope_name_t", "gate_marks", ["scope", "name", "t"], unique=False)
    if postgres:
        op.execute(GATE_TAKE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS gate_take({GATE_TAKE_ARGS})")
    op.drop_index("ix_gate_marks_scope_name_t", table_name="gate_marks")
    op.drop_table("gate_marks")
