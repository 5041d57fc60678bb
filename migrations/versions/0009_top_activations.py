"""Max-activating contexts: top_activations, one row of packed arrays per neuron of the
hooks a job names with --top-activations (lensbatch/store/schema.py describes it).

Revision ID: 0009_top_activations
Revises: 0008_document_metadata
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_top_activations"
down_revision = "0008_document_metadata"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "top_activations",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("hook", sa.String(255), nullable=False),
        sa.Column("layer", sa.Integer, nullable=False),
        sa.Column("head", sa.Integer, nullable=False),
        sa.Column("neuron", sa.Integer, nullable=False),
        sa.Column("n_positions", sa.BigInteger, nullable=False),
        sa.Column("n_positive", sa.BigInteger, nullable=False),
        sa.Column("max_value", sa.Float, nullable=True),
        sa.Column("top_values", sa.LargeBinary, nullable=False),
        sa.Column("seqs", sa.LargeBinary, nullable=False),
        sa.Column("positions", sa.LargeBinary, nullable=False),
        sa.Column("histogram", sa.LargeBinary, nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "hook", "layer", "head", "neuron",
                                name="pk_top_activations"),
    )


def downgrade() -> None:
    op.drop_table("top_activations")
