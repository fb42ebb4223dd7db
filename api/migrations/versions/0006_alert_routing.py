"""alert routing: per-tenant rules, the router's cursor, delivery receipts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

ALERTING = "type IN ('biopsy:result_received', 'claim:denied', 'prior_auth:denied')"


def upgrade() -> None:
    op.create_table('alert_rules',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('natural_recipient', sa.Boolean(), nullable=False),
    sa.Column('covering_provider_id', sa.String(length=64), nullable=True),
    sa.Column('care_team', sa.JSON(), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('on_call', sa.JSON(), nullable=False),
    sa.Column('resend_seconds', sa.Float(), nullable=True),
    sa.Column('max_resends', sa.Integer(), nullable=False),
    sa.Column('escalate_after_seconds', sa.Float(), nullable=True),
    sa.Column('escalate_to_roles', sa.JSON(), nullable=False),
    sa.Column('escalate_to_staff', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tenant', 'kind')
    )
    op.create_table('alert_cursors',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('tenant')
    )
    op.create_table('alert_routed',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('tenant', 'event_id')
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resend_seconds', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('max_resends', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', hub.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('displayed_at', hub.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(
            'ix_events_alerting', ['tenant', 'seq'], unique=False,
            sqlite_where=sa.text(ALERTING), postgresql_where=sa.text(ALERTING),
        )
    # Events committed before the router existed were routed by their own routes.
    op.execute(
        "INSERT INTO alert_cursors (tenant, last_seq) SELECT tenant, last_seq FROM tenant_sequences"
    )


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_alerting')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('displayed_at')
        batch_op.drop_column('delivered_at')
        batch_op.drop_column('max_resends')
        batch_op.drop_column('resend_seconds')
    op.drop_table('alert_routed')
    op.drop_table('alert_cursors')
    op.drop_table('alert_rules')
