"""knowledge of implementations; audit log; acknowledgement log; message signals

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('acknowledgement',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
    sa.Column('domain', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('ticket_id')
    )
    with op.batch_alter_table('acknowledgement', schema=None) as batch_op:
        batch_op.create_index('ix_acknowledgement_address_at', ['address', 'at'], unique=False)
        batch_op.create_index('ix_acknowledgement_domain_at', ['domain', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_acknowledgement_at'), ['at'], unique=False)

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signals', sa.JSON(), nullable=True))

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('surface', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)

    op.create_table('engagement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('hours', sa.Float(), server_default='0', nullable=False),
    sa.Column('link', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('note', sa.Text(), server_default='', nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('requested_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engagement_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index('ix_engagement_requested_at', ['requested_at'], unique=False)

    op.create_table('implementation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('standard', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('stage_since', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('urls', sa.JSON(), nullable=True),
    sa.Column('notes', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organisation_id', 'standard', name='uq_implementation_org_standard')
    )
    with op.batch_alter_table('implementation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_implementation_organisation_id'), ['organisation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_implementation_stage'), ['stage'], unique=False)

    op.create_table('organisation_domain',
    sa.Column('domain', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('domain')
    )
    with op.batch_alter_table('organisation_domain', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organisation_domain_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('stage_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('implementation_id', sa.Integer(), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('standard', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('from_stage', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('to_stage', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['implementation_id'], ['implementation.id'], ),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stage_change', schema=None) as batch_op:
        batch_op.create_index('ix_stage_change_at', ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_stage_change_implementation_id'), ['implementation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stage_change_organisation_id'), ['organisation_id'], unique=False)

    op.create_table('engagement_ticket',
    sa.Column('engagement_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('relation', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.ForeignKeyConstraint(['engagement_id'], ['engagement.id'], ),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('engagement_id', 'ticket_id')
    )
    with op.batch_alter_table('engagement_ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engagement_ticket_ticket_id'), ['ticket_id'], unique=False)

    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True))
        batch_op.add_column(sa.Column('added_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('updated_at', storage.models.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_column('signals')

    with op.batch_alter_table('acknowledgement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_acknowledgement_at'))
        batch_op.drop_index('ix_acknowledgement_domain_at')
        batch_op.drop_index('ix_acknowledgement_address_at')

    op.drop_table('acknowledgement')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_at')

    op.drop_table('audit_log')
    with op.batch_alter_table('organisation', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('added_by')
        batch_op.drop_column('country')

    with op.batch_alter_table('engagement_ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_engagement_ticket_ticket_id'))

    op.drop_table('engagement_ticket')
    with op.batch_alter_table('stage_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stage_change_organisation_id'))
        batch_op.drop_index(batch_op.f('ix_stage_change_implementation_id'))
        batch_op.drop_index('ix_stage_change_at')

    op.drop_table('stage_change')
    with op.batch_alter_table('organisation_domain', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organisation_domain_organisation_id'))

    op.drop_table('organisation_domain')
    with op.batch_alter_table('implementation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_implementation_stage'))
        batch_op.drop_index(batch_op.f('ix_implementation_organisation_id'))

    op.drop_table('implementation')
    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.drop_index('ix_engagement_requested_at')
        batch_op.drop_index(batch_op.f('ix_engagement_organisation_id'))

    op.drop_table('engagement')
