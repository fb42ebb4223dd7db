"""kiosks: enrollment, device secrets, check-in answers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kiosks',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('location_id', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('enrollment_code_hash', sa.String(length=64), nullable=True),
    sa.Column('enrollment_expires_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('enrolled_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('secret_hash', sa.String(length=64), nullable=True),
    sa.Column('last_seen_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('locked_until', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant', 'location_id'], ['locations.tenant', 'locations.id'], name='fk_kiosk_location'),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.create_index('ix_kiosks_enrollment', ['enrollment_code_hash'], unique=True)
        batch_op.create_index('ix_kiosks_secret', ['secret_hash'], unique=True)

    op.create_table('kiosk_answers',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('kiosk_id', sa.String(length=64), nullable=False),
    sa.Column('correlation_hash', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.Column('appointment_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant', 'kiosk_id'], ['kiosks.tenant', 'kiosks.id'], name='fk_kiosk_answer_kiosk'),
    sa.PrimaryKeyConstraint('tenant', 'kiosk_id', 'correlation_hash')
    )
    with op.batch_alter_table('kiosk_answers', schema=None) as batch_op:
        batch_op.create_index('ix_kiosk_answers_recent', ['tenant', 'kiosk_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('kiosk_answers', schema=None) as batch_op:
        batch_op.drop_index('ix_kiosk_answers_recent')
    op.drop_table('kiosk_answers')
    with op.batch_alter_table('kiosks', schema=None) as batch_op:
        batch_op.drop_index('ix_kiosks_secret')
        batch_op.drop_index('ix_kiosks_enrollment')
    op.drop_table('kiosks')
