"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 03:56:26.796643
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('broker_sessions',
    sa.Column('client_id', sa.String(length=128), nullable=False),
    sa.Column('username', sa.String(length=160), nullable=False),
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', hub.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', hub.db.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', hub.db.UTCDateTime(), nullable=True),
    sa.Column('removed_at', hub.db.UTCDateTime(), nullable=True),
    sa.Column('ttl_seconds', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('client_id'),
    sa.UniqueConstraint('username')
    )
    with op.batch_alter_table('broker_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_broker_sessions_expires', ['expires_at'], unique=False)
        batch_op.create_index('ix_broker_sessions_user', ['tenant', 'user_id'], unique=False)

    op.create_table('events',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', hub.db.UTCDateTime(), nullable=False),
    sa.Column('topic', sa.String(length=255), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('snapshot_topic', sa.String(length=255), nullable=True),
    sa.Column('snapshot_payload', sa.Text(), nullable=True),
    sa.Column('snapshot_expires_at', hub.db.UTCDateTime(), nullable=True),
    sa.Column('published_at', hub.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('tenant', 'seq', name='uq_events_tenant_seq')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_entity', ['tenant', 'entity_id', 'seq'], unique=False)
        batch_op.create_index('ix_events_published_at', ['published_at'], unique=False)
        batch_op.create_index('ix_events_unpublished', ['pk'], unique=False, sqlite_where=sa.text('published_at IS NULL'), postgresql_where=sa.text('published_at IS NULL'))

    op.create_table('locations',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    op.create_table('patients',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('first_name', sa.String(length=100), nullable=False),
    sa.Column('last_name', sa.String(length=100), nullable=False),
    sa.Column('date_of_birth', sa.Date(), nullable=False),
    sa.Column('sex', sa.String(length=16), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('balance_cents', sa.BigInteger(), nullable=False),
    sa.Column('created_at', hub.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', hub.db.UTCDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    op.create_table('staff',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=True),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('is_provider', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    op.create_table('tenant_sequences',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('tenant')
    )
    op.create_table('appointments',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=False),
    sa.Column('location_id', sa.String(length=64), nullable=False),
    sa.Column('scheduled_start', hub.db.UTCDateTime(), nullable=False),
    sa.Column('scheduled_end', hub.db.UTCDateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('cancel_reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', hub.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', hub.db.UTCDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant', 'location_id'], ['locations.tenant', 'locations.id'], name='fk_appt_location'),
    sa.ForeignKeyConstraint(['tenant', 'patient_id'], ['patients.tenant', 'patients.id'], name='fk_appt_patient'),
    sa.ForeignKeyConstraint(['tenant', 'provider_id'], ['staff.tenant', 'staff.id'], name='fk_appt_provider'),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index('ix_appointments_day', ['tenant', 'scheduled_start'], unique=False)
        batch_op.create_index('ix_appointments_patient', ['tenant', 'patient_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('ix_appointments_patient')
        batch_op.drop_index('ix_appointments_day')

    op.drop_table('appointments')
    op.drop_table('tenant_sequences')
    op.drop_table('staff')
    op.drop_table('patients')
    op.drop_table('locations')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_unpublished', sqlite_where=sa.text('published_at IS NULL'), postgresql_where=sa.text('published_at IS NULL'))
        batch_op.drop_index('ix_events_published_at')
        batch_op.drop_index('ix_events_entity')

    op.drop_table('events')
    with op.batch_alter_table('broker_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_broker_sessions_user')
        batch_op.drop_index('ix_broker_sessions_expires')

    op.drop_table('broker_sessions')
