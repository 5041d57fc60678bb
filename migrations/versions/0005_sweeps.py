"""Sweeps: jobs of several models over the same documents, grouped under one id.

Revision ID: 0005_sweeps
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_sweeps"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("sweep_id", sa.String(64), nullable=True))
    op.add_column("jobs", sa.Column("sweep_index", sa.Integer, nullable=True))
    op.add_column("jobs", sa.Column("sweep_step", sa.BigInteger, nullable=True))
    op.create_index("ix_jobs_sweep_id", "jobs", ["sweep_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_sweep_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("sweep_step")
        batch.drop_column("sweep_index")
        batch.drop_column("sweep_id")
