"""Crash loops end: attempts counted when a task claims documents, who claimed a document
alone, and how a pool process exited.

Revision ID: 0006_crash_attempts
Revises: 0005_sweeps
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_crash_attempts"
down_revision = "0005_sweeps"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job_documents", sa.Column("attempts", sa.Integer, nullable=False,
                                             server_default="0"))
    op.add_column("job_documents", sa.Column("claimed_by", sa.String(255), nullable=True))
    op.add_column("workers", sa.Column("exit_status", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("exit_status")
    with op.batch_alter_table("job_documents") as batch:
        batch.drop_column("claimed_by")
        batch.drop_column("attempts")
