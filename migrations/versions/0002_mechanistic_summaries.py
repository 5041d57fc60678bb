"""Mechanistic summaries: head_scores, activation_stats, induction_hit_tokens, probes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _document_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["job_id", "seq"], ["job_documents.job_id", "job_documents.seq"],
                                   ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "head_scores",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("layer", sa.Integer, primary_key=True),
        sa.Column("head", sa.Integer, primary_key=True),
        sa.Column("prev_token_score", sa.Float, nullable=True),
        sa.Column("induction_score", sa.Float, nullable=True),
        sa.Column("attn_entropy", sa.Float, nullable=True),
        sa.Column("bos_attention", sa.Float, nullable=True),
        _document_fk(),
    )
    op.create_table(
        "activation_stats",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hook", sa.String(255), nullable=False),
        sa.Column("layer", sa.Integer, nullable=False),
        sa.Column("head", sa.Integer, nullable=False),
        sa.Column("stat", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("job_id", "seq", "hook", "layer", "head", "stat",
                                name="pk_activation_stats"),
        _document_fk(),
    )
    op.create_table(
        "induction_hit_tokens",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("token", sa.String(255), nullable=False),
        sa.Column("novel", sa.Boolean, nullable=False),
        _document_fk(),
    )
    op.create_table(
        "probes",
        sa.Column("job_id", sa.String(64), sa.ForeignKey("jobs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("n_tokens", sa.Integer, nullable=False),
        sa.Column("first_copy_loss", sa.Float, nullable=True),
        sa.Column("second_copy_loss", sa.Float, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "probe_heads",
        sa.Column("job_id", sa.String(64), sa.ForeignKey("probes.job_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("layer", sa.Integer, primary_key=True),
        sa.Column("head", sa.Integer, primary_key=True),
        sa.Column("induction_score", sa.Float, nullable=True),
        sa.Column("prev_token_score", sa.Float, nullable=True),
    )


def downgrade() -> None:
    for table in ("probe_heads", "probes", "induction_hit_tokens", "activation_stats",
                  "head_scores"):
        op.drop_table(table)
