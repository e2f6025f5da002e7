"""report: narrow covering indexes per kind of section instead of one wide one (issue #18)

ix_ticket_report covered 18 columns in one index 60 % the size of the table; PostgreSQL preferred the plain
created_at index and the table to it. In its place: the volumes (dimensions, organisation, contact) and the measured
times each in an index of its own, led by created_at (which makes ix_ticket_created_at redundant); the backlog at a
moment read from the unresolved tickets (a partial index) and those resolved after it (resolved_at first) rather
than from every ticket opened before it. Key columns rather than INCLUDE, so that SQLite gets covering indexes
too. The column lists are written out here, not taken from storage.models, so that this revision stays what it was.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

VOLUME_COLUMNS = ['created_at', 'type', 'sector', 'channel', 'language', 'team', 'status', 'needs_triage', 'organisation_id', 'contact_id']
MEASURE_COLUMNS = ['created_at', 'first_response_seconds', 'first_response_business_seconds', 'first_response_met',
                   'resolution_seconds', 'resolution_business_seconds', 'resolution_met', 'reopened_count']
REPORT_COLUMNS = ['type', 'sector', 'channel', 'language', 'team', 'status', 'needs_triage', 'assignee', 'resolved_at', 'contact_id',
                  'organisation_id', 'first_response_seconds', 'first_response_business_seconds', 'first_response_met',
                  'resolution_seconds', 'resolution_business_seconds', 'resolution_met', 'reopened_count']


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_report')
        batch_op.drop_index('ix_ticket_resolved_at')
        batch_op.drop_index('ix_ticket_created_at')  # ix_ticket_volumes leads with created_at
        batch_op.create_index('ix_ticket_volumes', VOLUME_COLUMNS, unique=False)
        batch_op.create_index('ix_ticket_times', MEASURE_COLUMNS, unique=False)
        batch_op.create_index('ix_ticket_unresolved', ['created_at', 'assignee'], unique=False,
                              postgresql_where=sa.text('resolved_at IS NULL'), sqlite_where=sa.text('resolved_at IS NULL'))
        batch_op.create_index('ix_ticket_resolved', ['resolved_at', 'created_at', 'assignee'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_resolved')
        batch_op.drop_index('ix_ticket_unresolved')
        batch_op.drop_index('ix_ticket_times')
        batch_op.drop_index('ix_ticket_volumes')
        batch_op.create_index('ix_ticket_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_ticket_resolved_at', ['resolved_at'], unique=False)
        batch_op.create_index('ix_ticket_report', ['created_at'], unique=False, postgresql_include=REPORT_COLUMNS)
