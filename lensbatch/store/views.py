"""The SQL views, rendered from the metric registry so that a new metric appears in them.

v_results: one row per (job, document), every metric (stored, or a rate worked out per
document) with the document's corpus id, source, length, metadata (its own JSONL fields,
as JSON) and the job's model.
v_jobs: one row per job, every metric as its corpus number (sums; rates of sums), from
the job's counters (job_progress), so that it reads a few rows per job.
v_head_means: one row per (job, layer, head), every head score's mean over the job's
documents (from head_totals), as `lensbatch heads` shows it.
v_probe_heads: the probe's per-head scores with its job's model and losses.

Views are derived, not migrated: migrations/env.py drops them before any migration
runs and creates them again, from the registry as it is now, once the schema is at
the newest revision.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

from lensbatch.metrics import DOC_METRICS, HEAD_SCORE_NAMES, SUMMED_METRICS, Ratio

VIEW_NAMES = ("v_results", "v_jobs", "v_head_means", "v_probe_heads")
# Views of earlier revisions, dropped as well: v_head_scores read the per-document
# head_scores rows of migration 0002.
OLD_VIEW_NAMES = ("v_head_scores",)
DROP_STATEMENTS = tuple(f"DROP VIEW IF EXISTS {name}"
                        for name in (*reversed(VIEW_NAMES), *OLD_VIEW_NAMES))
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")


def _rate(numerator: str, denominator: str) -> str:
    return (f"CASE WHEN {denominator} > 0 THEN CAST({numerator} AS FLOAT) / {denominator} "
            "END")


def _document_column(name: str) -> str:
    corpus = next(m.corpus for m in DOC_METRICS if m.name == name)
    stored = next(m.stored for m in DOC_METRICS if m.name == name)
    if stored or not isinstance(corpus, Ratio):
        return f"r.{name}"
    return f"{_rate('r.' + corpus.numerator, 'r.' + corpus.denominator)} AS {name}"


def _job_column(name: str) -> str:
    corpus = next(m.corpus for m in DOC_METRICS if m.name == name)
    if isinstance(corpus, Ratio):
        return f"{_rate('p.' + corpus.numerator, 'p.' + corpus.denominator)} AS {name}"
    return f"COALESCE(p.{name}, 0) AS {name}"


def _sum(column: str, count: bool) -> str:
    """A sum named as its column; counts stay integers (PostgreSQL sums bigints as
    numeric)."""
    name = column.split(".")[-1]
    return f"CAST(SUM({column}) AS BIGINT) AS {name}" if count else f"SUM({column}) AS {name}"


def _head_mean(name: str) -> str:
    return f"SUM(t.{name}_sum) / NULLIF(SUM(t.{name}_count), 0) AS {name}"


def view_statements() -> list[str]:
    """CREATE VIEW statements, in VIEW_NAMES order. Column names come from the
    registry's constant declarations, never from input, and are checked to be plain
    identifiers."""
    names = [m.name for m in DOC_METRICS] + list(HEAD_SCORE_NAMES)
    bad = [name for name in names if not IDENTIFIER.fullmatch(name)]
    if bad:
        raise ValueError(f"metric names must be SQL identifiers: {bad}")
    per_document = ",\n       ".join(_document_column(m.name) for m in DOC_METRICS)
    per_job = ",\n       ".join(_job_column(m.name) for m in DOC_METRICS)
    summed = ", ".join(_sum(m.name, m.kind == "count") for m in SUMMED_METRICS)
    head_means = ",\n       ".join(_head_mean(name) for name in HEAD_SCORE_NAMES)
    return [
        f"""CREATE VIEW v_results AS
SELECT r.job_id, j.model, r.seq, jd.doc_id, jd.source, d.n_chars, jd.metadata,
       {per_document},
       r.worker, r.created_at
FROM results r
JOIN job_documents jd ON jd.job_id = r.job_id AND jd.seq = r.seq
JOIN documents d ON d.id = jd.document_id
JOIN jobs j ON j.id = r.job_id""",
        f"""CREATE VIEW v_jobs AS
SELECT j.id AS job_id, j.model, j.status, j.corpus, j.n_documents,
       COALESCE(p.documents_done, 0) AS documents_done,
       {per_job},
       j.created_at, j.started_at, j.finished_at
FROM jobs j
LEFT JOIN (SELECT job_id, {_sum("documents_done", True)}, {summed}
           FROM job_progress GROUP BY job_id) p ON p.job_id = j.id""",
        f"""CREATE VIEW v_head_means AS
SELECT t.job_id, j.model, t.layer, t.head, {_sum("t.n_documents", True)},
       {head_means}
FROM head_totals t
JOIN jobs j ON j.id = t.job_id
GROUP BY t.job_id, j.model, t.layer, t.head""",
        """CREATE VIEW v_probe_heads AS
SELECT ph.*, p.model, p.first_copy_loss, p.second_copy_loss
FROM probe_heads ph
JOIN probes p ON p.job_id = ph.job_id""",
    ]


def drop_views(connection: Connection) -> None:
    for statement in DROP_STATEMENTS:
        connection.execute(text(statement))


def create_views(connection: Connection) -> None:
    drop_views(connection)
    for statement in view_statements():
        connection.execute(text(statement))
