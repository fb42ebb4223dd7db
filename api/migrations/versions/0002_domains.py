"""clinical and billing domains, notifications

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 05:40:26.431001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hub.db


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notifications',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.String(length=1000), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('escalation_of', sa.String(length=64), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('escalated', sa.Boolean(), nullable=False),
    sa.Column('next_action_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('escalate_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_due', ['next_action_at'], unique=False)
        batch_op.create_index('ix_notifications_entity', ['tenant', 'entity_id'], unique=False)
        batch_op.create_index('ix_notifications_user', ['tenant', 'user_id', 'acknowledged_at'], unique=False)

    op.create_table('prior_auths',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('payer_id', sa.String(length=64), nullable=False),
    sa.Column('item', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('requested_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant', 'patient_id'], ['patients.tenant', 'patients.id'], name='fk_pa_patient'),
    sa.ForeignKeyConstraint(['tenant', 'requested_by'], ['staff.tenant', 'staff.id'], name='fk_pa_requester'),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    with op.batch_alter_table('prior_auths', schema=None) as batch_op:
        batch_op.create_index('ix_prior_auths_patient', ['tenant', 'patient_id'], unique=False)
        batch_op.create_index('ix_prior_auths_status', ['tenant', 'status'], unique=False)

    op.create_table('encounters',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=False),
    sa.Column('appointment_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('chief_complaint', sa.String(length=1000), nullable=True),
    sa.Column('assessment', sa.Text(), nullable=True),
    sa.Column('plan', sa.Text(), nullable=True),
    sa.Column('completed_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('signed_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('signed_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant', 'appointment_id'], ['appointments.tenant', 'appointments.id'], name='fk_enc_appointment'),
    sa.ForeignKeyConstraint(['tenant', 'patient_id'], ['patients.tenant', 'patients.id'], name='fk_enc_patient'),
    sa.ForeignKeyConstraint(['tenant', 'provider_id'], ['staff.tenant', 'staff.id'], name='fk_enc_provider'),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    with op.batch_alter_table('encounters', schema=None) as batch_op:
        batch_op.create_index('ix_encounters_patient', ['tenant', 'patient_id'], unique=False)

    op.create_table('biopsies',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('ordering_provider_id', sa.String(length=64), nullable=False),
    sa.Column('encounter_id', sa.String(length=64), nullable=True),
    sa.Column('site', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('diagnosis', sa.String(length=1000), nullable=True),
    sa.Column('concerning', sa.Boolean(), nullable=True),
    sa.Column('critical', sa.Boolean(), nullable=False),
    sa.Column('resulted_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reviewed_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reviewed_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant', 'encounter_id'], ['encounters.tenant', 'encounters.id'], name='fk_bx_encounter'),
    sa.ForeignKeyConstraint(['tenant', 'ordering_provider_id'], ['staff.tenant', 'staff.id'], name='fk_bx_provider'),
    sa.ForeignKeyConstraint(['tenant', 'patient_id'], ['patients.tenant', 'patients.id'], name='fk_bx_patient'),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    with op.batch_alter_table('biopsies', schema=None) as batch_op:
        batch_op.create_index('ix_biopsies_patient', ['tenant', 'patient_id'], unique=False)
        batch_op.create_index('ix_biopsies_status', ['tenant', 'status'], unique=False)

    op.create_table('claims',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('payer_id', sa.String(length=64), nullable=False),
    sa.Column('encounter_id', sa.String(length=64), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('paid_amount_cents', sa.BigInteger(), nullable=True),
    sa.Column('patient_responsibility_cents', sa.BigInteger(), nullable=False),
    sa.Column('submitted_at', hub.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant', 'encounter_id'], ['encounters.tenant', 'encounters.id'], name='fk_claim_encounter'),
    sa.ForeignKeyConstraint(['tenant', 'patient_id'], ['patients.tenant', 'patients.id'], name='fk_claim_patient'),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.create_index('ix_claims_patient', ['tenant', 'patient_id'], unique=False)
        batch_op.create_index('ix_claims_status', ['tenant', 'status'], unique=False)

    op.create_table('payments',
    sa.Column('tenant', sa.String(length=40), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('claim_id', sa.String(length=64), nullable=True),
    sa.Column('reference', sa.String(length=100), nullable=True),
    sa.Column('received_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', hub.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant', 'claim_id'], ['claims.tenant', 'claims.id'], name='fk_payment_claim'),
    sa.ForeignKeyConstraint(['tenant', 'patient_id'], ['patients.tenant', 'patients.id'], name='fk_payment_patient'),
    sa.PrimaryKeyConstraint('tenant', 'id')
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_patient', ['tenant', 'patient_id'], unique=False)

    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('insurance_payer_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('insurance_member_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('insurance_eligible', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('insurance_verified_at', hub.db.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_column('insurance_verified_at')
        batch_op.drop_column('insurance_eligible')
        batch_op.drop_column('insurance_member_id')
        batch_op.drop_column('insurance_payer_id')

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_patient')

    op.drop_table('payments')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_index('ix_claims_status')
        batch_op.drop_index('ix_claims_patient')

    op.drop_table('claims')
    with op.batch_alter_table('biopsies', schema=None) as batch_op:
        batch_op.drop_index('ix_biopsies_status')
        batch_op.drop_index('ix_biopsies_patient')

    op.drop_table('biopsies')
    with op.batch_alter_table('encounters', schema=None) as batch_op:
        batch_op.drop_index('ix_encounters_patient')

    op.drop_table('encounters')
    with op.batch_alter_table('prior_auths', schema=None) as batch_op:
        batch_op.drop_index('ix_prior_auths_status')
        batch_op.drop_index('ix_prior_auths_patient')

    op.drop_table('prior_auths')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_user')
        batch_op.drop_index('ix_notifications_entity')
        batch_op.drop_index('ix_notifications_due')

    op.drop_table('notifications')
