"""Storage that does not grow with documents x heads: job counters, per-head totals,
packed per-document head scores and induction hits, and each job's characters.

- job_progress: per job (and shard) documents done, every summed metric, and the sums
  of products the rates' intervals need (nll_sum_x_n_predictions, ...), aggregated here
  from results;
- head_totals: per job (and shard), layer and head, each head score's sum over documents
  and count of documents where it is not null, aggregated here from head_scores;
- head_scores: one row per document, each score a packed float32 array over (layer,
  head); existing rows are packed here;
- induction_hit_tokens: one row per document with hits, positions packed as int32 and
  novelty as bits; existing rows are packed here (the token text, recovered from the
  tokenizer, is dropped: a downgrade writes it back empty);
- jobs.n_chars: the characters of a job's documents, for the progress estimate.

Revision ID: 0007_fleet_storage
Revises: 0006_crash_attempts
Create Date: 2026-11-28
"""

from collections.abc import Callable, Iterator
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from alembic import op

from lensbatch.store.packing import (
    pack_bits,
    pack_floats,
    pack_positions,
    unpack_bits,
    unpack_heads,
    unpack_positions,
)

revision = "0007_fleet_storage"
down_revision = "0006_crash_attempts"
branch_labels = None
depends_on = None

SCORES = ("prev_token_score", "induction_score", "attn_entropy", "bos_attention")
SUMMED = {"n_tokens": sa.BigInteger, "n_predictions": sa.BigInteger, "nll_sum": sa.Float,
          "n_correct": sa.BigInteger, "induction_candidates": sa.BigInteger,
          "induction_hits": sa.BigInteger, "induction_novel_hits": sa.BigInteger,
          "n_windows": sa.BigInteger}
# The products whose sums give the rates' intervals (lensbatch/metrics.py MOMENTS, as
# of this revision): loss and accuracy over n_predictions, hit rate over candidates.
MOMENTS = (("nll_sum", "nll_sum"), ("nll_sum", "n_predictions"),
           ("n_predictions", "n_predictions"), ("n_correct", "n_correct"),
           ("n_correct", "n_predictions"), ("induction_hits", "induction_hits"),
           ("induction_hits", "induction_candidates"),
           ("induction_candidates", "induction_candidates"))
BATCH = 2000


def _document_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["job_id", "seq"], ["job_documents.job_id", "job_documents.seq"],
                                   ondelete="CASCADE")


def _job_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE")


def _key() -> list[sa.Column]:
    return [sa.Column("job_id", sa.String(64), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True)]


def _copy(source: str, target: sa.Table, order: list[str],
          convert: Callable[[list[Any]], Iterator[dict[str, Any]]]) -> None:
    """Stream `source` in `order`, grouped by (job_id, seq), into `target` in batches."""
    connection = op.get_bind()
    rows = connection.execute(sa.text(f"SELECT * FROM {source} ORDER BY {', '.join(order)}"),
                              execution_options={"stream_results": True, "yield_per": BATCH})
    batch: list[dict[str, Any]] = []
    for _, group in groupby(rows, key=lambda row: (row.job_id, row.seq)):
        batch.extend(convert(list(group)))
        if len(batch) >= BATCH:
            connection.execute(target.insert(), batch)
            batch = []
    if batch:
        connection.execute(target.insert(), batch)


def _replace(old: str, new: sa.Table) -> None:
    op.drop_table(old)
    op.rename_table(new.name, old)


def _packed_heads(rows: list[Any]) -> Iterator[dict[str, Any]]:
    n_layers = max(r.layer for r in rows) + 1
    n_heads = max(r.head for r in rows) + 1
    grids = {s: [[None] * n_heads for _ in range(n_layers)] for s in SCORES}
    for r in rows:
        for s in SCORES:
            grids[s][r.layer][r.head] = r._mapping[s]
    yield {"job_id": rows[0].job_id, "seq": rows[0].seq, "n_layers": n_layers,
           "n_heads": n_heads, **{s: pack_floats(grids[s]) for s in SCORES}}


def _packed_hits(rows: list[Any]) -> Iterator[dict[str, Any]]:
    yield {"job_id": rows[0].job_id, "seq": rows[0].seq,
           "positions": pack_positions([r.position for r in rows]),
           "novel": pack_bits([bool(r.novel) for r in rows])}


def _head_rows(rows: list[Any]) -> Iterator[dict[str, Any]]:
    (row,) = rows
    for layer, head, values in unpack_heads(row.n_heads, [row._mapping[s] for s in SCORES]):
        yield {"job_id": row.job_id, "seq": row.seq, "layer": layer, "head": head,
               **dict(zip(SCORES, values, strict=True))}


def _hit_rows(rows: list[Any]) -> Iterator[dict[str, Any]]:
    (row,) = rows
    positions = unpack_positions(row.positions)
    for position, novel in zip(positions, unpack_bits(row.novel, len(positions)), strict=True):
        yield {"job_id": row.job_id, "seq": row.seq, "position": position, "token": "",
               "novel": novel}


def upgrade() -> None:
    # The 0004 view reads head_scores' per-document rows; env.py creates the views of
    # the newest revision once the schema is there.
    op.execute("DROP VIEW IF EXISTS v_head_scores")
    op.add_column("jobs", sa.Column("n_chars", sa.BigInteger, nullable=False,
                                    server_default="0"))
    op.execute("UPDATE jobs SET n_chars = (SELECT COALESCE(SUM(d.n_chars), 0) "
               "FROM job_documents jd JOIN documents d ON d.id = jd.document_id "
               "WHERE jd.job_id = jobs.id)")
    op.create_table(
        "job_progress",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("documents_done", sa.BigInteger, nullable=False),
        *(sa.Column(name, kind, nullable=False) for name, kind in SUMMED.items()),
        *(sa.Column(f"{a}_x_{b}", sa.Float, nullable=False, server_default="0")
          for a, b in MOMENTS),
        _job_fk(),
    )
    sums = ", ".join([f"SUM({name})" for name in SUMMED]
                     + [f"SUM(CAST({a} AS DOUBLE PRECISION) * {b})" for a, b in MOMENTS])
    names = ", ".join([*SUMMED, *(f"{a}_x_{b}" for a, b in MOMENTS)])
    op.execute(f"INSERT INTO job_progress (job_id, shard, documents_done, {names}) "
               f"SELECT job_id, 0, COUNT(*), {sums} FROM results GROUP BY job_id")
    op.create_table(
        "head_totals",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("layer", sa.Integer, primary_key=True),
        sa.Column("head", sa.Integer, primary_key=True),
        sa.Column("n_documents", sa.BigInteger, nullable=False),
        *(column for s in SCORES for column in (sa.Column(f"{s}_sum", sa.Float, nullable=False),
                                                 sa.Column(f"{s}_count", sa.BigInteger,
                                                           nullable=False))),
        _job_fk(),
    )
    totals = ", ".join(f"{s}_sum, {s}_count" for s in SCORES)
    aggregates = ", ".join(f"COALESCE(SUM({s}), 0), COUNT({s})" for s in SCORES)
    op.execute(f"INSERT INTO head_totals (job_id, shard, layer, head, n_documents, {totals}) "
               f"SELECT job_id, 0, layer, head, COUNT(*), {aggregates} FROM head_scores "
               "GROUP BY job_id, layer, head")
    packed = op.create_table(
        "head_scores_packed", *_key(),
        sa.Column("n_layers", sa.Integer, nullable=False),
        sa.Column("n_heads", sa.Integer, nullable=False),
        *(sa.Column(s, sa.LargeBinary, nullable=False) for s in SCORES),
        _document_fk(),
    )
    _copy("head_scores", packed, ["job_id", "seq", "layer", "head"], _packed_heads)
    _replace("head_scores", packed)
    hits = op.create_table(
        "induction_hits_packed", *_key(),
        sa.Column("positions", sa.LargeBinary, nullable=False),
        sa.Column("novel", sa.LargeBinary, nullable=False),
        _document_fk(),
    )
    _copy("induction_hit_tokens", hits, ["job_id", "seq", "position"], _packed_hits)
    _replace("induction_hit_tokens", hits)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_head_means")
    op.execute("DROP VIEW IF EXISTS v_jobs")
    rows = op.create_table(
        "head_score_rows", *_key(),
        sa.Column("layer", sa.Integer, primary_key=True),
        sa.Column("head", sa.Integer, primary_key=True),
        *(sa.Column(s, sa.Float, nullable=True) for s in SCORES),
        _document_fk(),
    )
    _copy("head_scores", rows, ["job_id", "seq"], _head_rows)
    _replace("head_scores", rows)
    hits = op.create_table(
        "hit_token_rows", *_key(),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("token", sa.String(255), nullable=False),
        sa.Column("novel", sa.Boolean, nullable=False),
        _document_fk(),
    )
    _copy("induction_hit_tokens", hits, ["job_id", "seq"], _hit_rows)
    _replace("induction_hit_tokens", hits)
    op.drop_table("head_totals")
    op.drop_table("job_progress")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("n_chars")
