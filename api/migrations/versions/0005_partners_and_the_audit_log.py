"""partners and the audit log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:08:00.133191
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=160), nullable=True),
    sa.Column('details', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_tenant_id', ['tenant', 'id'], unique=False)

    op.create_table('partners',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('event_types', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=True),
    sa.Column('secret_created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('previous_secret_hash', sa.String(length=64), nullable=True),
    sa.Column('previous_secret_expires_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_seen_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('removed_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    with op.batch_alter_table('partners', schema=None) as batch_op:
        batch_op.create_index('ix_partners_previous_secret', ['previous_secret_hash'], unique=True)
        batch_op.create_index('ix_partners_secret', ['secret_hash'], unique=True)



def downgrade() -> None:
    with op.batch_alter_table('partners', schema=None) as batch_op:
        batch_op.drop_index('ix_partners_secret')
        batch_op.drop_index('ix_partners_previous_secret')

    op.drop_table('partners')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_tenant_id')
        batch_op.drop_index('ix_audit_at')

    op.drop_table('audit_log')
