"""Initial schema: models, jobs, documents, job_documents, results, workers.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("weight_shapes", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("corpus", sa.Text, nullable=False),
        sa.Column("n_documents", sa.Integer, nullable=False),
        sa.Column("n_tasks", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_table(
        "documents",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("n_chars", sa.Integer, nullable=False),
    )
    op.create_table(
        "job_documents",
        sa.Column("job_id", sa.String(64), sa.ForeignKey("jobs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("doc_id", sa.String(512), nullable=False),
        sa.Column("document_id", BIGINT, sa.ForeignKey("documents.id"), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.UniqueConstraint("job_id", "doc_id", name="uq_job_documents_doc_id"),
    )
    op.create_table(
        "results",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("n_tokens", sa.Integer, nullable=False),
        sa.Column("n_predictions", sa.Integer, nullable=False),
        sa.Column("nll_sum", sa.Float, nullable=False),
        sa.Column("loss", sa.Float, nullable=True),
        sa.Column("n_correct", sa.Integer, nullable=False),
        sa.Column("accuracy", sa.Float, nullable=True),
        sa.Column("induction_candidates", sa.Integer, nullable=False),
        sa.Column("induction_hits", sa.Integer, nullable=False),
        sa.Column("induction_novel_hits", sa.Integer, nullable=False),
        sa.Column("n_windows", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["job_id", "seq"], ["job_documents.job_id", "job_documents.seq"],
                                ondelete="CASCADE"),
    )
    op.create_table(
        "workers",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("device", sa.String(32), nullable=False),
        sa.Column("queues", sa.String(255), nullable=False),
        sa.Column("current_task", sa.String(255), nullable=True),
        sa.Column("documents_done", sa.Integer, nullable=False),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("workers", "results", "job_documents", "documents", "jobs", "models"):
        op.drop_table(table)
