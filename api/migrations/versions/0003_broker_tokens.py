"""broker sessions hold signed tokens: kind and newest token id; no dynsec removal

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 06:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('broker_sessions', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('kind', sa.String(length=16), nullable=False, server_default='session')
        )
        batch_op.add_column(sa.Column('jti', sa.String(length=64), nullable=True))
        batch_op.drop_column('removed_at')


def downgrade() -> None:
    with op.batch_alter_table('broker_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('removed_at', hub.db.UTCDateTime(), nullable=True))
        batch_op.drop_column('jti')
        batch_op.drop_column('kind')
