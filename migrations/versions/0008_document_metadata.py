"""Documents keep the user's own fields: a corpus object's fields besides id and text.

- job_documents.metadata: the fields of each of a job's documents as JSON, or null;
- jobs.metadata_fields: the job's fields and their kinds, [[field, kind], ...] in
  first-seen order (lensbatch/docmeta.py), null for a job stored before this revision.

Revision ID: 0008_document_metadata
Revises: 0007_fleet_storage
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_document_metadata"
down_revision = "0007_fleet_storage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job_documents", sa.Column("metadata", sa.JSON(none_as_null=True),
                                             nullable=True))
    op.add_column("jobs", sa.Column("metadata_fields", sa.JSON(none_as_null=True),
                                    nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("metadata_fields")
    with op.batch_alter_table("job_documents") as batch:
        batch.drop_column("metadata")
