"""broker sessions hold signed tokens: kind and newest token id; no dynsec removal

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 06:10:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import hub.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sessions still on the broker were Dynamic Security clients; the api deletes those
    # clients at its next start (api/runtime.py), so their rows end here.
    sessions = sa.table(
        'broker_sessions',
        sa.column('revoked_at', hub.db.UTCDateTime()),
        sa.column('removed_at', hub.db.UTCDateTime()),
    )
    op.execute(
        sessions.update()
        .where(sessions.c.removed_at.is_(None), sessions.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    with op.batch_alter_table('broker_sessions', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('kind', sa.String(length=16), nullable=False, server_default='session')
        )
        batch_op.add_column(sa.Column('jti', sa.String(length=64), nullable=True))
        batch_op.drop_column('removed_at')
    with op.batch_alter_table('broker_sessions', schema=None) as batch_op:
        batch_op.alter_column('kind', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('broker_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('removed_at', hub.db.UTCDateTime(), nullable=True))
        batch_op.drop_column('jti')
        batch_op.drop_column('kind')
